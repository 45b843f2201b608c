"""The ``skpapers`` command: reproduce the papers' headline experiments."""

import argparse
import math
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

from skpapers import __version__
from skpapers._reproduce import (
    BUSY_SLOWDOWN,
    environment,
    parallel_jobs,
    registered_experiments,
    verdict,
    write_report,
)


def _parser(names):
    parser = argparse.ArgumentParser(
        prog="skpapers",
        description="Landmark machine-learning papers as scikit-learn estimators.",
    )
    parser.add_argument(
        "--version", action="version", version=f"skpapers {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    reproduce = commands.add_parser(
        "reproduce",
        help="run the papers' headline experiments and write a report",
        description=(
            "Run each paper's headline experiment on data available offline, "
            "print the results and write report.md and report.html, each with "
            "a summary of the papers' claims against the measurements, and "
            "the figures as PNG files."
        ),
    )
    reproduce.add_argument(
        "experiments",
        nargs="*",
        # A string, not ["all"]: Python 3.11's argparse checks a list default
        # against the choices as one value, and refuses it.
        default="all",
        choices=[*names, "all"],
        metavar="EXPERIMENT",
        help=f"which to run: {', '.join(names)} or all (default: all)",
    )
    reproduce.add_argument(
        "--quick", action="store_true", help="smaller runs that finish in minutes"
    )
    reproduce.add_argument(
        "--out",
        type=_folder,
        default=Path("skpapers-report"),
        help="folder for the reports and the figures (default: skpapers-report)",
    )
    reproduce.add_argument(
        "--seed", type=_count, default=0, help="random seed, 0 or more (default: 0)"
    )
    reproduce.add_argument(
        "--jobs",
        type=_count,
        default=None,
        help=(
            "processes to spread the trainings over (default, or 0: one per CPU "
            "core); the numbers do not depend on it"
        ),
    )
    return parser


def _count(value):
    """A whole number of at least 0 (``--seed``) or 1 (``--jobs``)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative")
    return number


def _folder(value):
    """``--out`` as a Path, refused at once where a file stands in the way."""
    path = Path(value)
    # the folder, or the first part of it that exists, must be a folder
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise argparse.ArgumentTypeError(
                    f"{part} is a file, not a folder; give a folder for the "
                    "reports (it is made if missing)"
                )
            break
    return path


def main(argv=None):
    """Entry point of the ``skpapers`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments; None reads them from ``sys.argv``.

    Returns
    -------
    int
        The exit status: 0 when the command ran, 2 when no command was
        given (the help is printed to stderr). Bad arguments exit with
        status 2 and a one-line error, through :mod:`argparse`.
    """
    experiments = registered_experiments()
    parser = _parser(list(experiments))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    requested = (
        [args.experiments] if isinstance(args.experiments, str) else args.experiments
    )
    names = list(experiments) if "all" in requested else dict.fromkeys(requested)
    chosen = [experiments[name] for name in names]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # no permission, a file made since the check, ...
        parser.error(
            f"argument --out: cannot make the folder {args.out}: "
            f"{error.strerror or error}"
        )
    ran_on = environment()
    print(_plan(chosen, args.quick), flush=True)
    busy = _busy_note()
    if busy:
        print(busy, flush=True)
    runs = []
    for k, exp in enumerate(chosen, start=1):
        expected = exp.expected(args.quick)
        about = "no estimate" if expected is None else f"expected ~{expected:.0f} s"
        print(f"[{k}/{len(chosen)}] {exp.name} ({about})", flush=True)
        print(f"== {exp.title} ({exp.paper})", flush=True)
        start = time.perf_counter()
        with parallel_jobs(args.jobs or None):
            result = exp.run(quick=args.quick, out_dir=args.out, random_state=args.seed)
        seconds = time.perf_counter() - start
        _print_result(result)
        print(f"[{exp.name}: {seconds:.1f} s]\n", flush=True)
        result.setup["time"] = f"{seconds:.0f} s"
        if expected is not None:
            result.setup["time"] += f" (expected ~{expected:.0f} s on 2 quiet cores)"
        runs.append((exp, result))
    command = shlex.join(["skpapers", *(sys.argv[1:] if argv is None else argv)])
    reports = write_report(
        args.out / "report.md", runs, command=command, environment=ran_on
    )
    counts = Counter(
        verdict(claim.holds) for _, result in runs for claim in result.claims
    )
    print(
        f"Claims: {counts['yes']} hold, {counts['no']} do not, "
        f"{counts['unclear']} unclear."
    )
    print("Report written to " + " and ".join(str(report) for report in reports))
    return 0


def _print_result(result):
    for name, value in result.setup.items():
        print(f"{name}: {value}")
    for table in result.tables:
        print(table.to_text(), end="\n\n")
    for note in result.notes:
        print(f"* {note}")
    for claim in result.claims:
        print(
            f"+ {claim.claim} [{verdict(claim.holds)}]: paper {claim.paper_value}; "
            f"ours {claim.ours}"
        )


def _plan(chosen, quick):
    """What will run and for about how long, said before it starts."""
    kind = "quick" if quick else "full"
    plan = f"Running {', '.join(exp.name for exp in chosen)} ({kind})"
    expected = {exp.name: exp.expected(quick) for exp in chosen}
    known = [seconds for seconds in expected.values() if seconds is not None]
    if not known:
        return plan + "; no time estimate"
    plan += (
        f"; expected time: about {_duration(sum(known))} on 2 quiet cores, up to "
        f"{_duration(BUSY_SLOWDOWN * sum(known))} on busy ones"
    )
    unknown = [name for name, seconds in expected.items() if seconds is None]
    if unknown:
        plan += f", not counting {', '.join(unknown)} (no estimate)"
    return plan


def _busy_note():
    """A line when other work already keeps the cores busy, else None."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average on this system
        return None
    cores = os.cpu_count() or 1
    if load <= cores / 2:
        return None
    return (
        f"The cores are busy (load average {load:.1f} on {cores} cores): expect "
        "the longer time."
    )


def _duration(seconds):
    """``"40 s"`` under two minutes, ``"7 min"`` (rounded up) from there."""
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    return f"{math.ceil(seconds / 60)} min"


if __name__ == "__main__":
    sys.exit(main())

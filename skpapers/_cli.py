"""The ``skpapers`` command: reproduce the papers' headline experiments."""

import argparse
import sys
import time
from pathlib import Path

from skpapers import __version__
from skpapers._reproduce import registered_experiments, write_report


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
            "print the results and write report.md with PNG figures."
        ),
    )
    reproduce.add_argument(
        "experiments",
        nargs="*",
        default=["all"],
        choices=[*names, "all"],
        metavar="EXPERIMENT",
        help=f"which to run: {', '.join(names)} or all (default: all)",
    )
    reproduce.add_argument(
        "--quick", action="store_true", help="smaller runs that finish in minutes"
    )
    reproduce.add_argument(
        "--out",
        type=Path,
        default=Path("skpapers-report"),
        help="folder for report.md and the figures (default: skpapers-report)",
    )
    reproduce.add_argument(
        "--seed", type=int, default=0, help="random seed (default: 0)"
    )
    return parser


def main(argv=None):
    """Entry point of the ``skpapers`` command."""
    experiments = registered_experiments()
    parser = _parser(list(experiments))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    chosen = list(experiments) if "all" in args.experiments else args.experiments
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in dict.fromkeys(chosen):
        exp = experiments[name]
        print(f"== {exp.title} ({exp.paper})", flush=True)
        start = time.perf_counter()
        result = exp.run(quick=args.quick, out_dir=args.out, random_state=args.seed)
        for table in result.tables:
            print(table.to_text(), end="\n\n")
        for note in result.notes:
            print(f"* {note}")
        print(f"[{name}: {time.perf_counter() - start:.1f} s]\n", flush=True)
        runs.append((exp, result))
    report = write_report(args.out / "report.md", runs)
    print(f"Report written to {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

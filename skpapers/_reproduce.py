"""Registry of the papers' headline experiments, run by ``skpapers reproduce``.

Each estimator's subpackage registers its experiment in a module named
``_experiment`` with the :func:`experiment` decorator; the registry imports
those modules when asked, so adding a paper needs no change here.
:func:`write_report` turns what the experiments measured into ``report.md``
and a self-contained ``report.html``.
"""

import base64
import contextlib
import contextvars
import html
import importlib
import itertools
import mimetypes
import os
import pkgutil
import platform
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Table:
    """A small table: a title, column names and rows of cells."""

    title: str
    columns: list
    rows: list = field(default_factory=list)

    def to_markdown(self):
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += [
            "| " + " | ".join(_md_escape(_cell(c)) for c in row) + " |"
            for row in self.rows
        ]
        return "\n".join(lines)

    def to_text(self):
        cells = [self.columns] + [[_cell(c) for c in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title, "-" * len(self.title)]
        for i, row in enumerate(cells):
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            )
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def mean_std(values, digits=2):
    """``"mean ± std"`` of repeated measurements (the std over runs, ddof 1);
    the mean alone for a single run."""
    if len(values) < 2:
        return f"{values.mean():.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def ranked_beyond_spread(runs, *, higher_is_better=True):
    """Whether repeated measurements rank as claimed, beyond seed noise.

    ``runs`` holds one array per method (the measure over seeds), in the
    claimed order, best first. True if each beats the next by more than the
    larger of their two standard deviations; False if one is beaten by its
    successor by more than that; None (unclear) otherwise, with fewer than
    two seeds, where no spread is measured, and where a measure is NaN.
    """
    if min(len(run) for run in runs) < 2:
        return None
    verdicts = set()
    for first, second in itertools.pairwise(runs):
        margin = first.mean() - second.mean()
        if not higher_is_better:
            margin = -margin
        spread = max(first.std(ddof=1), second.std(ddof=1))
        if not (np.isfinite(margin) and np.isfinite(spread)) or abs(margin) <= spread:
            verdicts.add(None)
        else:
            verdicts.add(bool(margin > 0))
    if False in verdicts:
        return False
    return None if None in verdicts else True


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Claim:
    """One of a paper's claims next to what an experiment measured.

    ``holds`` is True when our measurement agrees with the claim, False when
    it contradicts it and None when the run cannot tell (one seed, a tie).
    The experiment derives it from its numbers.
    """

    claim: str
    paper_value: str
    ours: str
    holds: bool | None = None


_VERDICTS = {True: "yes", False: "no", None: "unclear"}


def verdict(holds):
    """``"yes"``, ``"no"`` or ``"unclear"`` for a :attr:`Claim.holds`."""
    return _VERDICTS[holds]


@dataclass
class Result:
    """What one experiment measured: claims, tables, figure files and notes.

    ``setup`` says how it ran, by name: its seeds, processes and threads,
    and (added by the command) how long it took.
    """

    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    claims: list = field(default_factory=list)
    setup: dict = field(default_factory=dict)


# -- the same command, the same numbers ---------------------------------------


def training_seed(seed, experiment, index, variant=None):
    """The seed of one training of an experiment.

    A function of the run's ``seed`` (``--seed``), the experiment's name, the
    training's seed ``index`` (0, 1, ... over the seeds it is repeated with)
    and, if given, its ``variant``; never of the order in which the trainings
    happen to run or of the process that runs them. Leave ``variant`` out to
    give every variant the same seeds, so that they differ only in what they
    ablate (a paired comparison).

    Parameters
    ----------
    seed : int
        The run's seed, at least 0.
    experiment : str
        The experiment's name, such as ``"bn"``.
    index : int
        Which of the training's seeds.
    variant : str, optional
        What is trained, such as ``"tau=0.7"``.

    Returns
    -------
    int
        A seed in ``[0, 2**31 - 1]``, for ``random_state``.
    """
    words = [experiment] if variant is None else [experiment, str(variant)]
    entropy = [int(seed), int(index), *(zlib.crc32(word.encode()) for word in words)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


_N_JOBS = contextvars.ContextVar("n_jobs", default=None)


@contextlib.contextmanager
def parallel_jobs(n_jobs):
    """Run the experiments in the block with at most ``n_jobs`` processes.

    ``None`` is one per CPU core. Set by the command's ``--jobs``; the
    numbers do not depend on it (see :func:`n_jobs`).
    """
    token = _N_JOBS.set(n_jobs)
    try:
        yield
    finally:
        _N_JOBS.reset(token)


def n_jobs(n_tasks):
    """How many processes an experiment spreads its ``n_tasks`` trainings over.

    At most the ``--jobs`` of the command (:func:`parallel_jobs`; one per CPU
    core by default) and at most ``n_tasks``. A training's numbers must not
    depend on it: each takes its seed from :func:`training_seed` and runs
    inside :func:`~skpapers.utils._torch.reproducible_training`.
    """
    limit = _N_JOBS.get() or os.cpu_count() or 1
    return max(1, min(n_tasks, limit))


def training_setup(seeds, n_jobs, n_threads=1):
    """A :attr:`Result.setup` for trainings run as :func:`n_jobs` advises:
    their seeds, processes and threads, with torch's deterministic algorithms
    (:func:`~skpapers.utils._torch.reproducible_training`)."""
    return {
        "seeds": ", ".join(str(seed) for seed in seeds),
        "processes": n_jobs,
        "torch threads per training": n_threads,
        "deterministic algorithms": "on",
    }


#: How much longer than their expected time the experiments take with other
#: work on the same two cores: a full run announced at 19 minutes took 25
#: (1.3x); the full bn run took 489 s at a load average of 3 to 5, 2.7
#: times its CPU seconds over two cores (803 s, 3x, at 5 to 8).
BUSY_SLOWDOWN = 3


def _skpapers_version():
    """skpapers' version and, from a git checkout, its commit: the numbers of
    a seed change with the code."""
    import skpapers

    version = skpapers.__version__
    folder = Path(skpapers.__file__).parent
    try:
        commit, changes = (
            subprocess.run(
                ["git", "-C", str(folder), *command],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            for command in (
                ["rev-parse", "--short", "HEAD"],
                ["status", "--porcelain", "--untracked-files=no", "."],
            )
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return version
    return f"{version}, commit {commit}" + (", with changes" if changes else "")


_VERSIONS = ("numpy", "torch", "torchvision", "sklearn", "skorch", "joblib")


def environment():
    """What the run ran on: versions, the machine, its cores and load.

    Returns
    -------
    dict
        ``"python"``, ``"skpapers"`` (with the git commit when it runs from a
        checkout) and each of numpy, torch, torchvision, scikit-learn, skorch
        and joblib that imports, by name, with their versions; the
        machine, its CPU count, torch's default thread count and the load
        average over the last minute, where the system gives one.
    """
    env = {"python": platform.python_version(), "skpapers": _skpapers_version()}
    for name in _VERSIONS:
        try:
            env[name] = importlib.import_module(name).__version__
        except ImportError:
            continue
    env["machine"] = f"{platform.system()} {platform.machine()}"
    env["CPU cores"] = os.cpu_count()
    if "torch" in env:
        torch = importlib.import_module("torch")
        env["torch threads (default)"] = torch.get_num_threads()
    with contextlib.suppress(OSError, AttributeError):
        env["load average (1 min, at start)"] = f"{os.getloadavg()[0]:.2f}"
    return env


@dataclass
class Experiment:
    """A paper's headline experiment.

    ``run(quick=..., out_dir=..., random_state=...)`` returns a :class:`Result`;
    figures are written into ``out_dir``. ``expected_seconds`` is
    ``(quick, full)``, the run's time on two quiet CPU cores, or None if
    unknown; on a busy machine it takes up to :data:`BUSY_SLOWDOWN` times as
    long.
    """

    name: str
    title: str
    paper: str
    run: callable
    expected_seconds: tuple | None = None

    def expected(self, quick):
        """Expected seconds of a quick or full run, or None."""
        if self.expected_seconds is None:
            return None
        return self.expected_seconds[0 if quick else 1]


_REGISTRY = {}


def experiment(name, *, title, paper, expected_seconds=None):
    """Register the decorated function as the experiment ``name``.

    ``expected_seconds`` is ``(quick, full)``: how long the run takes on two
    quiet CPU cores, announced before it starts.
    """

    def register(run):
        _REGISTRY[name] = Experiment(
            name=name,
            title=title,
            paper=paper,
            run=run,
            expected_seconds=expected_seconds,
        )
        return run

    return register


def registered_experiments():
    """All experiments, by name, after importing every ``_experiment`` module."""
    import skpapers

    for package in pkgutil.iter_modules(skpapers.__path__, "skpapers."):
        if package.ispkg:
            try:
                importlib.import_module(f"{package.name}._experiment")
            except ModuleNotFoundError as error:
                if error.name != f"{package.name}._experiment":
                    raise
    return dict(sorted(_REGISTRY.items()))


_CLAIMS_TITLE = "Claims: the papers against our runs"
_CLAIMS_COLUMNS = ["paper", "claim", "paper's number", "ours", "holds"]


def claims_table(runs):
    """The claims of every run, one row each, as a :class:`Table`."""
    return Table(_CLAIMS_TITLE, _CLAIMS_COLUMNS, [row for _, row in _claim_rows(runs)])


def _claim_rows(runs):
    """(experiment, row) per claim; a run that measured none gets a row saying so."""
    for exp, result in runs:
        paper = f"{exp.title} ({exp.paper.split(', ')[0]})"
        if not result.claims:
            yield exp, [paper, "none measured: see its section", "", "", ""]
        for claim in result.claims:
            yield (
                exp,
                [
                    paper,
                    claim.claim,
                    claim.paper_value,
                    claim.ours,
                    verdict(claim.holds),
                ],
            )


def write_report(path, runs, *, command=None, environment=None):
    """Write ``report.md`` at ``path`` and ``report.html`` next to it.

    ``runs`` is a list of (Experiment, Result) pairs; ``command``, if given,
    the command line that ran them; ``environment``, if given, what they ran
    on (as :func:`environment` gives it), shown as a table at the end.
    The Markdown links the figures by file name; the HTML page embeds them,
    so it can be sent on its own. Returns the paths of both.
    """
    path = Path(path)
    path.write_text(_markdown(runs, command, environment))
    html_path = path.with_suffix(".html")
    html_path.write_text(_html(runs, command, environment))
    return path, html_path


def _environment_table(environment):
    rows = [[name, str(value)] for name, value in environment.items()]
    return Table("Versions, machine and load", ["what", "value"], rows)


def _setup_text(result):
    """The ``setup`` of a result in one line: ``"seeds: 1, 2; processes: 2"``."""
    return "; ".join(f"{name}: {value}" for name, value in result.setup.items())


def _markdown(runs, command, environment):
    lines = ["# skpapers: reproduction report", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += [claims_table(runs).to_markdown(), ""]
    for exp, result in runs:
        lines += [f"## {exp.title}", "", f"*{exp.paper}*", ""]
        if result.setup:
            lines += [f"Setup: {_setup_text(result)}.", ""]
        for table in result.tables:
            lines += [table.to_markdown(), ""]
        for figure in result.figures:
            figure = Path(figure)
            lines += [f"![{figure.stem}]({figure.name})", ""]
        lines += [f"- {note}" for note in result.notes]
        lines.append("")
    if environment:
        lines += ["## Ran on", "", _environment_table(environment).to_markdown(), ""]
    return "\n".join(lines)


def _md_escape(text):
    # a pipe in a cell would end it
    return text.replace("|", "\\|")


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
  padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
code { background: #f3f3f3; padding: 0 0.25em; }
.paper { font-style: italic; color: #444; }
.scroll { overflow-x: auto; margin: 0 0 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
.table-title { font-weight: bold; margin: 1.2rem 0 0.3rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left;
  vertical-align: top; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
td.yes { background: #dff3e0; } td.no { background: #f9dcdc; }
td.unclear { background: #f1f1f1; color: #555; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _html(runs, command, environment):
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>skpapers: reproduction report</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        "<h1>skpapers: reproduction report</h1>",
    ]
    if command:
        parts.append(f"<p><code>{html.escape(command)}</code></p>")
    parts.append(_html_claims(runs))
    for exp, result in runs:
        parts += [
            f'<section id="{html.escape(exp.name)}">',
            f"<h2>{html.escape(exp.title)}</h2>",
            f'<p class="paper">{html.escape(exp.paper)}</p>',
        ]
        if result.setup:
            parts.append(f"<p>Setup: {html.escape(_setup_text(result))}.</p>")
        parts += [
            *(_html_table(table) for table in result.tables),
            *(_html_figure(Path(figure)) for figure in result.figures),
        ]
        if result.notes:
            parts.append("<ul>")
            parts += [f"<li>{html.escape(note)}</li>" for note in result.notes]
            parts.append("</ul>")
        parts.append("</section>")
    if environment:
        parts += [
            '<section id="ran-on">',
            "<h2>Ran on</h2>",
            _html_table(_environment_table(environment)),
            "</section>",
        ]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _html_claims(runs):
    """The claims table: verdicts coloured, each paper once, linking its section."""
    rows = []
    by_experiment = itertools.groupby(_claim_rows(runs), key=lambda pair: pair[0].name)
    for name, group in by_experiment:
        group = [row for _, row in group]
        for i, (paper, *cells, holds) in enumerate(group):
            row = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            row += f'<td class="{holds}">{html.escape(holds)}</td>'
            if i == 0:
                link = f'<a href="#{html.escape(name)}">{html.escape(paper)}</a>'
                row = f'<td rowspan="{len(group)}">{link}</td>' + row
            rows.append(f"<tr>{row}</tr>")
    return _html_table_markup(_CLAIMS_TITLE, _CLAIMS_COLUMNS, rows)


def _html_table(table):
    rows = [
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>"
        for row in table.rows
    ]
    return _html_table_markup(table.title, table.columns, rows)


def _html_table_markup(title, columns, rows):
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    return "\n".join(
        [
            f'<p class="table-title">{html.escape(title)}</p>',
            '<div class="scroll"><table>',
            f"<thead><tr>{head}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table></div>",
        ]
    )


def _html_figure(figure):
    """The figure as an ``<img>`` with its bytes inline, as a data: URI."""
    mime = mimetypes.guess_type(figure.name)[0] or "application/octet-stream"
    data = base64.b64encode(figure.read_bytes()).decode("ascii")
    name = html.escape(figure.name)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )

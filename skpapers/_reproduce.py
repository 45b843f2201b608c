"""Registry of the papers' headline experiments, run by ``skpapers reproduce``.

Each estimator's subpackage registers its experiment in a module named
``_experiment`` with the :func:`experiment` decorator; the registry imports
those modules when asked, so adding a paper needs no change here.
"""

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path


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
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
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


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Result:
    """What one experiment measured: tables, figure files and notes."""

    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class Experiment:
    """A paper's headline experiment.

    ``run(quick=..., out_dir=..., random_state=...)`` returns a :class:`Result`;
    figures are written into ``out_dir``.
    """

    name: str
    title: str
    paper: str
    run: callable


_REGISTRY = {}


def experiment(name, *, title, paper):
    """Register the decorated function as the experiment ``name``."""

    def register(run):
        _REGISTRY[name] = Experiment(name=name, title=title, paper=paper, run=run)
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


def write_report(path, runs):
    """Write ``report.md`` for ``runs``, a list of (Experiment, Result) pairs."""
    path = Path(path)
    lines = ["# skpapers: reproduction report", ""]
    for exp, result in runs:
        lines += [f"## {exp.title}", "", f"*{exp.paper}*", ""]
        for table in result.tables:
            lines += [table.to_markdown(), ""]
        for figure in result.figures:
            figure = Path(figure)
            lines += [f"![{figure.stem}]({figure.name})", ""]
        lines += [f"- {note}" for note in result.notes]
        lines.append("")
    path.write_text("\n".join(lines))
    return path

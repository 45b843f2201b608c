"""The documentation builds without a warning.

The user guide, the API reference and the gallery pages are built as ``make
docs`` builds them, warnings as errors, but without executing the examples:
``test_examples.py`` runs each of them already, and ``make docs`` executes
them for the gallery's figures.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_gallery")
    for folder in ("docs", "examples"):  # sphinx writes generated pages beside
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("_build", "generated", "auto_examples"),
        )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            str(tmp_path / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    pages = {
        p.relative_to(tmp_path / "html").as_posix()
        for p in (tmp_path / "html").rglob("*.html")
    }
    assert {"index.html", "user_guide/scaling.html", "api.html"} <= pages
    assert any(page.startswith("auto_examples/") for page in pages)

"""Sphinx configuration for the skpapers documentation.

Build (what ``make docs`` runs)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

The build needs no network: no intersphinx, no remote images, no binder.
"""

import os
import re
import sys
from datetime import date

# A plain checkout builds without `pip install -e .`: the repository root
# comes first, so autodoc documents the code next to these docs.
sys.path.insert(0, os.path.abspath(".."))

# Examples are executed while the docs build: never open a window.
import matplotlib

matplotlib.use("Agg")

import skpapers

# -- Project information -----------------------------------------------------

project = "skpapers"
author = "The skpapers developers"
copyright = f"{date.today().year}, {author}"
# One source of truth for the version: the package itself.
release = skpapers.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary ---------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": False, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc docstrings already state the types

# -- numpydoc ----------------------------------------------------------------

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_show_inherited_class_members = False
# No style validation: the build fails only on real rendering problems.
numpydoc_validation_checks = set()
# Types are rendered as written; see _escape_shape_underscores below.
numpydoc_xref_param_type = False

# -- sphinx-gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Execute every plot_*.py example; anything else is only rendered.
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # Links from the examples' code to the API pages, and the per-object
    # mini-galleries on those pages; both are local, no network.
    "doc_module": ("skpapers",),
    "reference_url": {"skpapers": None},
    "backreferences_dir": "generated/backreferences",
    # Record examples under the documented paths (skpapers.decomposition.NMF),
    # not only the shortest import path (skpapers.NMF).
    "prefer_full_module": {r"^skpapers\."},
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    "show_signature": False,
}

# -- HTML output -------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skpapers {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    # Nothing that would reach the network: no icon links, no version switcher,
    # no analytics; the theme ships its own fonts and icons.
    "icon_links": [],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_prev_next": True,
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {
    "index": [],
    "install": [],
    "changelog": [],
    "reproduce": [],
}


# -- Docstring tweaks --------------------------------------------------------

_SHAPE = re.compile(r"shape \(([^()]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=[\s,)+\-*/]|$)")


def _escape_shape_underscores(app, what, name, obj, options, lines):
    """Escape trailing underscores in ``of shape (n_components_, ...)``.

    Following scikit-learn, docstrings may give shapes in terms of fitted
    attributes (``n_features_in_``). numpydoc passes types through as reST, where
    ``word_`` is a hyperlink reference to an undefined target, an error under
    ``-W``. Runs before numpydoc (priority 400 < its 500).
    """
    for i, line in enumerate(lines):
        if "shape (" in line:
            lines[i] = _SHAPE.sub(
                lambda m: "shape (" + _TRAILING_UNDERSCORE.sub(r"\\_", m[1]) + ")",
                line,
            )


_REF_WITH_TEXT = re.compile(r":ref:`([^`<]+?)\s*<[^`<>]+>`")


def _unlink_scikit_learn_refs(app, what, name, obj, options, lines):
    """Keep only the text of ``:ref:`` links in scikit-learn's docstrings.

    Methods inherited from scikit-learn link to labels of its own docs, such
    as ``accuracy_score`` in ``ClassifierMixin.score``; undefined here, each
    is an error under ``-W``.
    """
    if not (getattr(obj, "__module__", None) or "").startswith("sklearn."):
        return
    for i, line in enumerate(lines):
        lines[i] = _REF_WITH_TEXT.sub(r"\1", line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_shape_underscores, priority=400)
    app.connect("autodoc-process-docstring", _unlink_scikit_learn_refs)

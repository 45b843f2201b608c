"""Sphinx configuration for the skpapers documentation.

Build (what ``make docs`` runs)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

The build needs no network: no intersphinx, no remote images, no binder.
"""

import os
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
# Docstring style is checked by the test suite, not by every docs build.
numpydoc_validation_checks = set()
# Render "array-like of shape (n, k)" etc. literally instead of guessing links.
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

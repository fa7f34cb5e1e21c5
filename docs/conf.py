"""Sphinx configuration for the sklearn_overseg documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the
repository root (the package does not need to be installed).
"""

import re
import sys
from pathlib import Path

# The package is used from the source tree (tests and docs run from the repository root
# without installing it), so autodoc must find it there.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sklearn_overseg  # noqa: E402

project = "sklearn_overseg"
author = "sklearn_overseg developers"
copyright = "2026, sklearn_overseg developers"
version = release = sklearn_overseg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# docs/README.md is the GitHub landing page of this folder; index.rst replaces it here.
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]

# -- autodoc / numpydoc --------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections already give the types
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False  # no autosummary stub per method
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- MyST (the existing Markdown pages stay plain GitHub Markdown) -------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- intersphinx: links only; the build never needs them to succeed -----------------------
intersphinx_mapping = {}

# -- HTML ----------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"sklearn_overseg {release}"
html_static_path = []


# scikit-learn generates ``set_fit_request``/``set_score_request``/... on every estimator
# for metadata routing; their docstrings cross-reference sklearn's own glossary, which this
# build does not have, and they are not part of this package's API.
_SKLEARN_REQUEST_METHOD = re.compile(r"^set_\w+_request$")


def _skip_sklearn_request_methods(app, what, name, obj, skip, options):
    if _SKLEARN_REQUEST_METHOD.match(name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_request_methods)

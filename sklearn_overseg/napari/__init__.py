"""napari plugin: read/write label volumes and review the corrector's merges.

Install with ``pip install "sklearn_overseg[napari]"``; napari then finds the plugin
through the ``napari.manifest`` entry point (``napari.yaml`` in this package).

Only :func:`apply_decisions` is imported here: it is pure NumPy, so the review logic is
usable (and tested) without napari or Qt. The reader, writer and widget modules import
napari lazily, when napari calls them.
"""

from ._review import apply_decisions, review_order

__all__ = ["apply_decisions", "review_order"]

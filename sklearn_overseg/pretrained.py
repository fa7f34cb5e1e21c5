"""The pretrained corrector shipped inside the package.

It is stored as JSON + NumPy arrays (see :mod:`sklearn_overseg.persistence`) and rebuilt
on load: nothing in the file is executed or unpickled. ``docs/model_card.md`` says what
it was trained on and how well it does.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["PRETRAINED_DIR", "load_pretrained"]

#: Where the default model lives inside the installed package.
PRETRAINED_DIR = Path(str(resources.files("sklearn_overseg") / "models" / "default"))


def load_pretrained(path=None):
    """Load a fitted :class:`~sklearn_overseg.corrector.SegmentationCorrector`.

    Parameters
    ----------
    path : str or Path, optional
        A model directory written by :func:`~sklearn_overseg.persistence.save_estimator`
        (``overseg train -o DIR``). Defaults to the model shipped with the package.

    Returns
    -------
    corrector : SegmentationCorrector
        Ready for ``correct`` / ``transform``.

    Raises
    ------
    FileNotFoundError
        If the directory does not exist.
    """
    from .persistence import load_estimator

    path = Path(path) if path is not None else PRETRAINED_DIR
    if not path.exists():
        raise FileNotFoundError(f"no model directory at {path}")
    return load_estimator(path)

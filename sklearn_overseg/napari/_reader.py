"""napari reader: open label volumes in the formats of :mod:`sklearn_overseg.io.volumes`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io.volumes import SUPPORTED_EXTENSIONS, load_volume

__all__ = ["get_reader", "read_labels"]

LayerData = tuple[Any, dict, str]


def _supported(path: Any) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        return False
    path = Path(os.fspath(path))
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        return False
    # A Zarr store is a directory; every other format is one file.
    return path.is_dir() if path.suffix.lower() == ".zarr" else path.is_file()


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_labels` when every path has a supported extension, else None.

    Parameters
    ----------
    path : str or list of str
        What napari asks to open.

    Returns
    -------
    reader : callable or None
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(_supported(p) for p in paths):
        return None
    return read_labels


def _read_one(path: str | os.PathLike) -> LayerData | None:
    try:
        volume, spacing = load_volume(path, return_spacing=True)
    except (TypeError, ValueError):
        # Not a 3D integer label volume (e.g. a float TIFF image): let another reader try.
        return None
    meta: dict[str, Any] = {"name": Path(os.fspath(path)).stem}
    if spacing is not None:
        meta["scale"] = tuple(float(s) for s in spacing)
    meta["metadata"] = {"source_path": os.fspath(path), "spacing": spacing}
    return volume, meta, "labels"


def read_labels(path: str | Sequence[str]) -> list[LayerData] | None:
    """Read one or several label volumes as napari Labels layers.

    Parameters
    ----------
    path : str or list of str
        Files (or ``.zarr`` directories) with a supported extension.

    Returns
    -------
    layers : list of (data, kwargs, "labels") or None
        ``kwargs`` holds the layer name (the file stem) and, when the file stores a voxel
        spacing, ``scale = (z, y, x)`` spacing. ``None`` when a file is not a label volume,
        so that napari falls back to another reader.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = [_read_one(p) for p in paths]
    if any(layer is None for layer in layers):
        return None
    return layers

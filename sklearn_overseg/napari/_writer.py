"""napari writer: save a Labels layer in the formats of :mod:`sklearn_overseg.io.volumes`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io.volumes import save_volume

__all__ = ["write_labels"]


def _spacing(meta: dict[str, Any]) -> tuple[float, ...] | None:
    scale = meta.get("scale")
    if scale is None:
        return None
    scale = tuple(float(s) for s in np.asarray(scale, dtype=float).ravel())
    # A flipped or 2D layer has no valid voxel size to store; the voxels are still written.
    if len(scale) != 3 or not all(np.isfinite(s) and s > 0 for s in scale):
        return None
    return scale


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer, with its ``scale`` stored as the voxel spacing.

    Parameters
    ----------
    path : str
        Output path; the extension picks the format (``.tif``, ``.h5``, ``.zarr``, ...).
    data : array-like of int, shape (Z, Y, X)
        The layer's labels.
    meta : dict
        The layer's attributes (napari passes ``scale``, ``name``, ...).

    Returns
    -------
    paths : list of str
        The written path.

    Notes
    -----
    An existing file is replaced, as napari's own writers do: napari's save dialog has
    already asked the user to confirm.
    """
    spacing = _spacing(meta)
    if spacing == (1.0, 1.0, 1.0) and os.fspath(path).lower().endswith(".npy"):
        spacing = None  # napari's default scale: nothing lost, so no "cannot store" warning
    written = save_volume(path, np.asarray(data), spacing=spacing, overwrite=True)
    return [os.fspath(written)]

"""Checks applied once at the door of every public entry point.

Every function that accepts a label volume calls :func:`check_label_volume` so that a
wrong input fails early with a message naming the problem, instead of failing deep
inside numpy or scipy with a traceback the user cannot act on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "MIN_ROWS_PER_WORKER",
    "check_label_volume",
    "check_lazy_label_volume",
    "check_n_jobs",
    "check_spacing",
    "effective_n_jobs",
]


def _describe(volume: Any) -> str:
    return f"{type(volume).__name__}"


def check_label_volume(
    volume: Any,
    *,
    name: str = "volume",
    allow_empty: bool = False,
    check_negative: bool = True,
) -> np.ndarray:
    """Validate a 3D integer label volume and return it as an ndarray (never copied).

    Parameters
    ----------
    volume : array-like of shape (Z, Y, X)
        Integer labels, ``0`` is background. Anything exposing ``__array__``
        (NumPy, memory-mapped, Zarr or Dask arrays) is accepted; it is read, never
        written.
    name : str, default="volume"
        How the argument is called in error messages.
    allow_empty : bool, default=False
        Accept a volume with no labelled voxel (all background). A volume with zero
        voxels is always refused.
    check_negative : bool, default=True
        Scan signed volumes for negative labels. Turn off only for out-of-core arrays
        whose slabs are checked one at a time.

    Returns
    -------
    volume : ndarray
        The same data; a view of the input when it already was an ndarray.

    Raises
    ------
    TypeError
        If ``volume`` is not array-like, or its dtype is boolean, floating point,
        complex or object.
    ValueError
        If it is not 3D, has no voxels, has negative labels, or (unless
        ``allow_empty``) has no labelled voxel.
    """
    if volume is None or isinstance(volume, (str, bytes, dict)):
        raise TypeError(f"{name} must be a 3D integer array, got {_describe(volume)}.")
    if not isinstance(volume, np.ndarray):
        try:
            volume = np.asarray(volume)
        except Exception as exc:  # pragma: no cover - exotic array-likes
            raise TypeError(
                f"{name} must be a 3D integer array, got {_describe(volume)} "
                f"that cannot be converted: {exc}"
            ) from None
    if volume.dtype == object:
        raise TypeError(f"{name} must be a 3D integer array, got an object array.")
    if volume.ndim != 3:
        raise ValueError(
            f"{name} must be 3D with axes (Z, Y, X), got ndim={volume.ndim} "
            f"with shape {volume.shape}."
        )
    kind = volume.dtype.kind
    if kind == "b":
        raise TypeError(
            f"{name} has dtype bool: a label volume needs one integer id per cell. "
            "Convert a binary mask with skimage.measure.label(mask) or mask.astype(np.uint32)."
        )
    if kind in "fc":
        raise TypeError(
            f"{name} has dtype {volume.dtype}: labels must be integers. If the values are "
            "whole numbers, convert with volume.astype(np.uint32)."
        )
    if kind not in "iu":
        raise TypeError(f"{name} has dtype {volume.dtype}: labels must be integers.")
    if volume.size == 0:
        raise ValueError(f"{name} is empty: shape {volume.shape} has no voxels.")
    if check_negative and kind == "i":
        lowest = volume.min()
        if lowest < 0:
            raise ValueError(
                f"{name} has negative labels (minimum {int(lowest)}); labels must be >= 0 "
                "with 0 as background."
            )
    if not allow_empty and not volume.any():
        raise ValueError(f"{name} has no labelled voxel: every voxel is 0 (background).")
    return volume


def check_lazy_label_volume(volume: Any, name: str = "volume") -> Any:
    """Check the shape and dtype of a lazily read label volume, reading no voxel.

    Scanning the values would read every chunk of a Zarr or HDF5 array; negative labels
    are found later, slab by slab, when the volume is indexed.

    Parameters
    ----------
    volume : array-like with ``shape`` and ``dtype``
    name : str, default="volume"
        How messages call the volume.

    Returns
    -------
    volume
        The same object.

    Raises
    ------
    ValueError
        If it is not 3D or has no voxel.
    TypeError
        If its dtype is not an integer one.
    """
    shape = tuple(volume.shape)
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be 3D with axes (Z, Y, X), got ndim={len(shape)} with shape {shape}."
        )
    if 0 in shape:
        raise ValueError(f"{name} is empty: shape {shape} has no voxels.")
    check_label_volume(
        np.zeros((1, 1, 1), dtype=volume.dtype), name=name, allow_empty=True, check_negative=False
    )
    return volume


def check_spacing(spacing: Sequence[Real] | Real | None, *, ndim: int = 3) -> tuple[float, ...]:
    """Validate a voxel spacing and return it as a tuple of ``ndim`` positive floats.

    Parameters
    ----------
    spacing : sequence of float, float or None
        Physical size of a voxel along each axis, (z, y, x) for 3D. A scalar applies to
        every axis; ``None`` means unit spacing.
    ndim : int, default=3
        Number of axes.

    Returns
    -------
    spacing : tuple of float
    """
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (str, bytes)):
        raise TypeError(
            f"spacing must be a number or a sequence of {ndim} numbers, got {spacing!r}."
        )
    if isinstance(spacing, Real) and not isinstance(spacing, bool):
        values = (float(spacing),) * ndim
    else:
        try:
            values = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
        except TypeError:
            raise TypeError(
                f"spacing must be a number or a sequence of {ndim} numbers, got "
                f"{_describe(spacing)}."
            ) from None
    if len(values) != ndim:
        raise ValueError(f"spacing must have {ndim} values, got {len(values)}: {values}.")
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing values must be finite and > 0, got {values}.")
    return values


def check_n_jobs(n_jobs) -> None:
    """Refuse an ``n_jobs`` that joblib would reject only deep inside a parallel call.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` defers to joblib's ``parallel_config``; any non-zero int is valid.

    Raises
    ------
    TypeError
        If ``n_jobs`` is neither None nor an integer.
    ValueError
        If ``n_jobs`` is 0.
    """
    if n_jobs is None:
        return
    if not isinstance(n_jobs, Integral) or isinstance(n_jobs, bool):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs must be a non-zero integer or None, got 0.")


#: Candidate rows (or contact pairs) per worker below which starting a process pool, and
#: importing the package in it, costs more than it saves (measured: a pool of 2 takes
#: 10-25 s to start on a 2-core machine, a candidate 10-70 ms to judge).
MIN_ROWS_PER_WORKER = 500


def _local_cores() -> int:
    """Cores this process may use: the machine's, fewer under an affinity or cgroup limit."""
    import joblib

    return max(1, min(os.cpu_count() or 1, joblib.cpu_count()))


def _backend_is_distributed() -> bool:
    """Whether the active joblib backend runs tasks on a cluster, not on this machine."""
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return "dask" in type(backend).__name__.lower()


def effective_n_jobs(n_jobs: int | None = None, n_tasks: int | None = None) -> int:
    """Workers to start: ``min(requested, cores, tasks)``, at least 1.

    Every parallel call of the package goes through this, so that ``n_jobs=1000`` on a
    2-core machine starts 2 workers, not 1000, and a stage with a single task (a small
    volume) runs in the calling process without starting a pool. Under a Dask backend
    (``joblib.parallel_config(backend="dask")``) the workers are the cluster's, so the
    local core count does not bound them.

    Parameters
    ----------
    n_jobs : int or None
        As joblib reads it: ``None`` defers to the active ``parallel_config`` (1 by
        default), negative values count back from the number of cores (-1: all).
    n_tasks : int, optional
        Independent tasks the call has; no more workers than tasks are started.

    Returns
    -------
    n_workers : int

    Raises
    ------
    TypeError, ValueError
        As :func:`check_n_jobs`.
    """
    import joblib

    check_n_jobs(n_jobs)
    requested = max(1, int(joblib.effective_n_jobs(n_jobs)))
    if not _backend_is_distributed():
        requested = min(requested, _local_cores())
    if n_tasks is not None:
        requested = min(requested, max(1, int(n_tasks)))
    return requested

"""Volume file formats by extension: standard library only.

Kept apart from :mod:`sklearn_overseg.io.volumes` so that the command line can refuse a bad file
name before numpy (or anything heavier) is imported; :mod:`~sklearn_overseg.io.volumes`
re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["KEYED_FORMATS", "SUPPORTED_EXTENSIONS", "volume_format"]

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".h5", ".hdf5", ".zarr", ".npy", ".npz")

FORMAT_BY_EXTENSION = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".zarr": "zarr",
    ".npy": "npy",
    ".npz": "npz",
}
#: Formats whose files hold several arrays, so that ``key`` means something.
KEYED_FORMATS = ("hdf5", "zarr", "npz")


def volume_format(path: str | os.PathLike[str]) -> str:
    """Return the format a path is read and written in, from its extension.

    Parameters
    ----------
    path : str or os.PathLike
        File name; only its last suffix matters, case-insensitively.

    Returns
    -------
    fmt : {'tiff', 'hdf5', 'zarr', 'npy', 'npz'}

    Raises
    ------
    ValueError
        If the extension is missing or not one of :data:`SUPPORTED_EXTENSIONS`.
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    try:
        return FORMAT_BY_EXTENSION[suffix]
    except KeyError:
        shown = f"extension '{suffix}'" if suffix else "no extension"
        raise ValueError(
            f"Cannot tell the volume format of '{os.fspath(path)}': it has {shown}. "
            f"Supported extensions: {', '.join(SUPPORTED_EXTENSIONS)}."
        ) from None

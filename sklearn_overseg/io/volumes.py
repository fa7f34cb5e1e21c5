"""Read and write 3D label volumes with their voxel spacing.

One pair of functions covers the formats cell segmentations are shipped in: TIFF
(``.tif``/``.tiff``), HDF5 (``.h5``/``.hdf5``), Zarr 3 directory stores (``.zarr``) and
NumPy (``.npy``/``.npz``). The format is chosen from the file extension, case-insensitively.

Voxel spacing is always a ``(z, y, x)`` tuple of floats, in micrometres where the file says
so, and travels with the data wherever the format can hold it:

========  =============================================================================
format    where the spacing is read from / written to
========  =============================================================================
TIFF      JSON ImageDescription key ``spacing_zyx_um`` (tifffile "shaped" metadata, as in
          the project's shared data), or ImageJ metadata ``spacing`` (z) plus the
          X/YResolution tags (y, x), converted to µm when the ImageJ unit is nm or mm
HDF5      dataset attribute ``element_size_um`` (also read: ``spacing``, ``resolution``)
Zarr      array attribute ``spacing``
NPZ       an extra array named ``spacing``
NPY       cannot hold a spacing: it is dropped on save with a :class:`UserWarning`
========  =============================================================================

Writes are atomic: the file (or the ``.zarr`` directory) is written under a hidden
temporary name in the destination directory and renamed into place only once complete, so
a crash or an exception never leaves a partial output behind (see
:mod:`sklearn_overseg.io._paths`, which also removes what a killed writer left).

Every failure to read a file is reported where the file is opened, as a
:class:`VolumeReadError` (a ``ValueError``) whose one-line message names the file and what
is wrong with it: a truncated or corrupt TIFF, an empty ``.npy``, a corrupt Zarr chunk, a
missing key (:class:`VolumeReadError` and ``KeyError``), a Zarr store with chunk files
missing inside its labelled extent (:class:`ZarrChunkError`, unless
``allow_missing_chunks=True``), or ids above ``2**63 - 1``. Lazily read arrays (Zarr,
:class:`HDF5Volume`) report a chunk that fails later, when it is read, the same way
(:func:`read_region`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_label_volume, check_lazy_label_volume, check_spacing
from ._formats import KEYED_FORMATS, SUPPORTED_EXTENSIONS, volume_format
from ._paths import atomic_output

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "HDF5Volume",
    "VolumeReadError",
    "ZarrChunkError",
    "atomic_output",
    "load_volume",
    "open_volume",
    "read_region",
    "save_volume",
    "volume_format",
]

PathLike = str | os.PathLike[str]
Spacing = tuple[float, float, float]

_DEFAULT_KEY = "volume"
_H5_SPACING_ATTRS = ("element_size_um", "spacing", "resolution")
# ImageJ writes whatever unit string the user typed; these are the common length units.
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
}


class VolumeReadError(ValueError):
    """A volume file that cannot be read; the message names the file and the problem."""


class ZarrChunkError(VolumeReadError):
    """Chunk files of a Zarr store are missing inside the extent its other chunks cover.

    Zarr reads a missing chunk as its fill value (background), so a store that lost
    files would silently load with cells cut away. Stores written sparsely on purpose
    (zarr's ``write_empty_chunks=False``) are read with ``allow_missing_chunks=True``
    (CLI: ``--sparse``).
    """


class _MissingKeyError(KeyError, VolumeReadError):
    """A dataset key is missing or ambiguous; catchable as KeyError or ValueError."""

    # KeyError.__str__ would repr() the message and show it in quotes.
    __str__ = Exception.__str__


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_volume(
    path: PathLike,
    *,
    key: str | None = None,
    return_spacing: bool = False,
    mmap: bool = False,
    validate: bool = True,
    allow_missing_chunks: bool = False,
) -> Any:
    """Load a 3D label volume, and optionally its voxel spacing, from a file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff``, ``.h5``/``.hdf5``, ``.zarr`` (directory), ``.npy`` or ``.npz``
        file; see :data:`SUPPORTED_EXTENSIONS`.
    key : str, optional
        Which array to read from a file holding several: an HDF5 dataset path
        (``"group/labels"``), an array path inside a Zarr group, or an array name in an
        ``.npz``. By default the file's only array is read (an ``.npz`` entry named
        ``spacing`` does not count). Must be ``None`` for TIFF and ``.npy``.
    return_spacing : bool, default=False
        Also return the voxel spacing stored in the file.
    mmap : bool, default=False
        Avoid reading the voxels into memory where the format allows it:

        - ``.npy``, uncompressed ``.tif`` and contiguous uncompressed HDF5 datasets are
          returned as read-only :class:`numpy.memmap`;
        - ``.zarr`` returns the :class:`zarr.Array` itself, whose chunks are read on
          access (it is not an ndarray: index it or use ``np.asarray`` to get one);
        - anything else (compressed TIFF/HDF5, chunked HDF5, ``.npz``) is read into
          memory as if ``mmap=False``.
    validate : bool, default=True
        Check the data are a 3D non-negative integer label volume with
        :func:`~sklearn_overseg._validation.check_label_volume` (an all-background volume
        is accepted). For a lazy Zarr array only the shape and dtype are checked, so that
        validation does not read the whole array.
    allow_missing_chunks : bool, default=False
        Accept a Zarr store with chunk files missing inside the extent its other chunks
        cover (read as background). By default that is a :class:`ZarrChunkError`: a store
        that lost files would otherwise load with cells cut away. Set it for stores
        written sparsely on purpose (zarr's ``write_empty_chunks=False``); missing chunks
        outside that extent (background borders) are always accepted.

    Returns
    -------
    volume : ndarray, numpy.memmap or zarr.Array
        The stored array, with its stored dtype.
    spacing : tuple of 3 floats or None
        Only when ``return_spacing``: the ``(z, y, x)`` voxel size stored in the file, or
        ``None`` when the file has none. A stored spacing that is not 3 positive numbers
        is reported with a :class:`UserWarning` and returned as ``None``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    VolumeReadError
        A ``ValueError``: if the file cannot be read (truncated, corrupt, empty, not of
        its extension's format), if ``key`` is missing from the file or needed but not
        given (the message lists the available keys; the error is also a
        :class:`KeyError`), or if ``validate`` and a uint64 volume holds ids above
        ``2**63 - 1``.
    ZarrChunkError
        A :class:`VolumeReadError`: chunk files are missing inside a Zarr store's
        labelled extent and ``allow_missing_chunks`` is False.
    ValueError
        If the extension is not supported, or if ``validate`` and the data are not a
        label volume.
    TypeError
        If ``validate`` and the dtype is not an integer one.

    See Also
    --------
    save_volume : the inverse operation.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(os.fspath(path))
    fmt = volume_format(path)
    if not path.exists():
        raise FileNotFoundError(f"Volume file not found: '{path}'.")
    if fmt != "zarr" and path.is_dir():
        raise VolumeReadError(f"'{path}' is a directory, not a {fmt} file.")
    _check_key_use(fmt, key, path)
    if path.is_file() and path.stat().st_size == 0:
        raise VolumeReadError(f"cannot read '{path}' as {fmt}: the file is empty (0 bytes).")
    with _reporting_read_errors(path, fmt):
        if fmt == "zarr":
            volume, raw_spacing, where = _read_zarr(path, key, mmap, allow_missing_chunks)
        else:
            volume, raw_spacing, where = _READERS[fmt](path, key, mmap)
    if validate:
        name = f"volume loaded from '{path}'" + (f" (key '{key}')" if key is not None else "")
        if fmt == "zarr" and mmap:
            check_lazy_label_volume(volume, name)
        else:
            volume = check_label_volume(volume, name=name, allow_empty=True)
            _check_id_range(volume, name)
    if not return_spacing:
        return volume
    return volume, _clean_spacing(raw_spacing, where)


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong, also for exceptions with an empty message."""
    text = " ".join(str(exc).split())
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{text} ({name})" if text else name


@contextlib.contextmanager
def _reporting_read_errors(path: Path, fmt: str):
    """Turn whatever a reader raises on a bad file into one :class:`VolumeReadError`.

    Readers fail deep inside tifffile, h5py, zarr or numpy with messages that omit the
    path and with exception types of their own (``zlib.error``, ``EOFError``, a codec's
    ``RuntimeError``, ``BadZipFile``); all of them mean the file cannot be read.
    """
    try:
        yield
    except (VolumeReadError, MemoryError):
        raise
    except Exception as exc:
        raise VolumeReadError(f"cannot read '{path}' as {fmt}: {_reason(exc)}") from exc


def _check_id_range(volume: np.ndarray, name: str) -> None:
    # Cells are indexed with int64 ids; uint64 ids above that would wrap to negatives.
    if volume.dtype == np.uint64 and volume.size and volume.max() > np.iinfo(np.int64).max:
        raise VolumeReadError(
            f"{name} has label {int(volume.max())}, above the largest supported id "
            "2**63 - 1; relabel it (e.g. skimage.segmentation.relabel_sequential)."
        )


def read_region(source: Any, region: Any = Ellipsis) -> np.ndarray:
    """Read part of a lazily read volume as an ndarray, reporting read failures.

    A Zarr chunk or HDF5 block that fails to decompress is found only when it is read,
    possibly in a worker process; this turns that failure into the same
    :class:`VolumeReadError` as :func:`load_volume` gives, naming the store.

    Parameters
    ----------
    source : ndarray or lazily read array
        A numpy array (read as is: its errors are bugs, not bad files), a
        ``zarr.Array`` or an :class:`HDF5Volume`.
    region : index, default=Ellipsis
        What to read, e.g. a tuple of slices.

    Returns
    -------
    data : ndarray

    Raises
    ------
    VolumeReadError
        If a lazy ``source`` fails to read the region.
    """
    if isinstance(source, np.ndarray):
        return np.asarray(source) if region is Ellipsis else np.asarray(source[region])
    try:
        return np.asarray(source[region])
    except (VolumeReadError, MemoryError, IndexError):
        raise
    except Exception as exc:
        raise VolumeReadError(
            f"cannot read {_source_name(source)} at {_region_text(region)}: {_reason(exc)}"
        ) from exc


def _source_name(source: Any) -> str:
    if isinstance(source, HDF5Volume):
        return f"'{source.path}' (dataset '{source.key}')"
    store = getattr(source, "store", None)
    root = getattr(store, "root", None)
    if root is not None:
        inner = getattr(source, "path", "")
        return f"'{root}'" + (f" (array '{inner}')" if inner else "")
    return type(source).__name__


def _region_text(region: Any) -> str:
    if region is Ellipsis:
        return "the whole array"
    parts = region if isinstance(region, tuple) else (region,)
    shown = [
        f"{p.start or 0}:{'' if p.stop is None else p.stop}" if isinstance(p, slice) else str(p)
        for p in parts
    ]
    return "[" + ", ".join(shown) + "]"


def _check_key_use(fmt: str, key: str | None, path: Path) -> None:
    if key is None:
        return
    if fmt not in KEYED_FORMATS:
        raise ValueError(
            f"key={key!r} was given but '{path.name}' is a {fmt} file, which holds a single "
            "array; key is only used for .h5/.hdf5, .zarr and .npz files."
        )
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty string, got {key!r}.")


def _pick_key(path: Path, keys: Sequence[str], key: str | None, what: str) -> str:
    """Resolve ``key`` against the array names of a file, with errors that list them."""
    listed = ", ".join(repr(k) for k in keys) if keys else "none"
    if key is None:
        if len(keys) == 1:
            return keys[0]
        if not keys:
            raise VolumeReadError(f"'{path}' contains no {what}.")
        raise _MissingKeyError(
            f"'{path}' contains {len(keys)} {what}s; choose one with key=. "
            f"Available keys: {listed}."
        )
    if key not in keys:
        raise _MissingKeyError(f"'{path}' has no {what} {key!r}. Available keys: {listed}.")
    return key


def _read_tiff(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    import tifffile

    with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
        raw_spacing, where = _tiff_spacing(tif)
        volume = None
        if mmap:
            # Only uncompressed, contiguously stored images can be mapped.
            with contextlib.suppress(ValueError):
                volume = tifffile.memmap(path, mode="r")
        if volume is None:
            volume = tif.asarray()
    return volume, raw_spacing, where


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's log lines about a damaged file: the error raised says it once."""
    import logging

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tiff_spacing(tif: Any) -> tuple[Any, str]:
    where = f"'{tif.filehandle.path}'"
    for meta in tif.shaped_metadata or ():
        for name in ("spacing_zyx_um", "spacing"):
            if isinstance(meta, dict) and meta.get(name) is not None:
                return meta[name], f"{where} (JSON description '{name}')"
    ij = tif.imagej_metadata
    if not ij:
        return None, where
    page = tif.pages[0]
    x_ppu, y_ppu = page.resolution
    has_res = (x_ppu, y_ppu) != (1.0, 1.0) and x_ppu > 0 and y_ppu > 0
    if ij.get("spacing") is None and not has_res:
        return None, where
    z = float(ij.get("spacing", 1.0))
    y, x = (1.0 / y_ppu, 1.0 / x_ppu) if has_res else (1.0, 1.0)
    factor = _UNIT_TO_UM.get(str(ij.get("unit", "")).strip().lower(), 1.0)
    return (z * factor, y * factor, x * factor), f"{where} (ImageJ metadata)"


def _locate_hdf5(f: Any, path: Path, key: str | None) -> tuple[str, Any, str]:
    """The dataset key to read in an open HDF5 file, its raw spacing and where it was."""
    import h5py

    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    key = _pick_key(path, sorted(names), key.strip("/") if key else None, "dataset")
    ds = f[key]
    for attr in _H5_SPACING_ATTRS:
        if attr in ds.attrs:
            return key, ds.attrs[attr], f"'{path}' (dataset '{key}' attribute '{attr}')"
    return key, None, f"'{path}'"


def _read_hdf5(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    import h5py

    with h5py.File(path, "r") as f:
        key, raw_spacing, where = _locate_hdf5(f, path, key)
        ds = f[key]
        offset = ds.id.get_offset() if mmap and ds.chunks is None else None
        dtype, shape = ds.dtype, ds.shape
        if offset is None:
            volume = ds[()]
    if offset is not None:
        # A contiguous dataset is a plain C-order block at a fixed offset of the file.
        volume = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return volume, raw_spacing, where


class HDF5Volume:
    """An HDF5 dataset read on access, which worker processes can share.

    h5py datasets cannot be pickled, so joblib or Dask workers could not receive one.
    This holds the file path and dataset name instead and opens the file (read-only) in
    each process on first access. Slicing returns numpy arrays.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5``/``.hdf5`` file.
    key : str
        Path of the dataset inside the file.

    Attributes
    ----------
    shape, dtype, chunks, ndim
        Those of the dataset.
    """

    def __init__(self, path: PathLike, key: str) -> None:
        import h5py

        # Absolute: worker processes may run in another directory (or on another node).
        self.path = os.path.abspath(os.fspath(path))
        self.key = key
        with h5py.File(self.path, "r") as f:
            ds = f[key]
            self.shape = tuple(int(n) for n in ds.shape)
            self.dtype = np.dtype(ds.dtype)
            self.chunks = ds.chunks
        self._file = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, item: Any) -> np.ndarray:
        try:
            if self._file is None:
                import h5py

                self._file = h5py.File(self.path, "r")
            return np.asarray(self._file[self.key][item])
        except (MemoryError, IndexError):
            raise
        except Exception as exc:
            raise VolumeReadError(
                f"cannot read '{self.path}' (dataset '{self.key}') at {_region_text(item)}: "
                f"{_reason(exc)}"
            ) from exc

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self[()], dtype=dtype)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # an open h5py file cannot travel; the receiver reopens it
        return state

    def close(self) -> None:
        """Close the file handle of this process (reopened on the next access)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __repr__(self) -> str:
        return (
            f"HDF5Volume('{self.path}', key='{self.key}', shape={self.shape}, dtype={self.dtype})"
        )


def open_volume(
    path: PathLike,
    *,
    key: str | None = None,
    return_spacing: bool = False,
    allow_missing_chunks: bool = False,
) -> Any:
    """Open a label volume for out-of-core processing, reading no voxel yet.

    Parameters
    ----------
    path : str or os.PathLike
        Any format of :data:`SUPPORTED_EXTENSIONS`.
    key : str, optional
        As in :func:`load_volume`.
    return_spacing : bool, default=False
        Also return the stored ``(z, y, x)`` voxel size (or ``None``).
    allow_missing_chunks : bool, default=False
        As in :func:`load_volume`.

    Returns
    -------
    volume : zarr.Array, HDF5Volume, numpy.memmap or ndarray
        A Zarr store gives its array; an HDF5 dataset a picklable :class:`HDF5Volume`;
        ``.npy`` and uncompressed TIFF a read-only memmap; other files, which cannot be
        read piecewise, are loaded. Pass it to ``SegmentationCorrector.correct`` with
        ``out=`` a Zarr array to correct volumes larger than memory.
    spacing : tuple of 3 floats or None
        Only when ``return_spacing``.

    Raises
    ------
    FileNotFoundError, VolumeReadError, ZarrChunkError, ValueError, TypeError
        As :func:`load_volume`; only shape and dtype are checked here (values are
        checked slab by slab when the volume is processed, and a chunk that fails to
        read then raises :class:`VolumeReadError`).
    """
    # Absolute, so that the lazy array still points at the file from a worker process
    # running in another directory.
    path = Path(os.path.abspath(os.fspath(path)))
    if volume_format(path) != "hdf5" or not path.is_file():
        volume, spacing = load_volume(
            path,
            key=key,
            return_spacing=True,
            mmap=True,
            validate=False,
            allow_missing_chunks=allow_missing_chunks,
        )
        name = f"volume in '{path}'"
        if isinstance(volume, np.memmap) or not isinstance(volume, np.ndarray):
            check_lazy_label_volume(volume, name)  # values are checked slab by slab later
        else:
            volume = check_label_volume(volume, name=name, allow_empty=True)
        return (volume, spacing) if return_spacing else volume
    import h5py

    _check_key_use("hdf5", key, path)
    with _reporting_read_errors(path, "hdf5"):
        with h5py.File(path, "r") as f:
            key, raw_spacing, where = _locate_hdf5(f, path, key)
        volume = HDF5Volume(path, key)
    check_lazy_label_volume(volume, f"volume in '{path}' (key '{key}')")
    if not return_spacing:
        return volume
    return volume, _clean_spacing(raw_spacing, where)


def _read_zarr(
    path: Path, key: str | None, mmap: bool, allow_missing_chunks: bool = False
) -> tuple[Any, Any, str]:
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise VolumeReadError(f"'{path}' is not a readable Zarr store: {_reason(exc)}") from None
    if isinstance(node, zarr.Array):
        if key is not None:
            raise VolumeReadError(
                f"'{path}' is a single Zarr array, not a group: leave key=None (got {key!r})."
            )
        array = node
    else:
        names = sorted(
            name for name, obj in node.members(max_depth=None) if isinstance(obj, zarr.Array)
        )
        key = _pick_key(path, names, key.strip("/") if key else None, "array")
        array = node[key]
    where = f"'{path}' (" + (f"array '{key}' " if key else "") + "attribute 'spacing')"
    raw_spacing = array.attrs.get("spacing")
    if not allow_missing_chunks:
        _check_zarr_chunks(path, array)
    volume = array if mmap else array[...]
    return volume, raw_spacing, where


def _check_zarr_chunks(path: Path, array: Any) -> None:
    """Refuse chunk files missing inside the box spanned by the chunks present."""
    import itertools

    outer = array.shards or array.chunks
    grid = tuple(-(-int(n) // int(c)) for n, c in zip(array.shape, outer, strict=True))
    folder = Path(getattr(array.store, "root", path)) / (array.path or "")
    present = set()
    for root, _, files in os.walk(folder):
        rel = Path(root).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        present.update(prefix + name for name in files)
    found = []
    for coords in itertools.product(*(range(n) for n in grid)):
        if array.metadata.encode_chunk_key(coords) in present:
            found.append(coords)
    if not found:
        return  # an all-background store: nothing to cut cells from
    lo = np.min(found, axis=0)
    hi = np.max(found, axis=0) + 1
    inside = int(np.prod(hi - lo))
    missing = inside - len(found)
    if missing:
        have = set(found)
        first = next(
            c
            for c in itertools.product(*(range(a, b) for a, b in zip(lo, hi, strict=True)))
            if c not in have
        )
        raise ZarrChunkError(
            f"'{path}' is missing {missing} of the {inside} chunk files inside its labelled "
            f"extent (first: chunk {tuple(int(v) for v in first)} of the {grid} grid); they "
            "would read as background. If the store was written sparsely on purpose, pass "
            "allow_missing_chunks=True (CLI: --sparse)."
        )


def _read_npy(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    volume = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    return volume, None, f"'{path}'"


def _read_npz(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    with np.load(path, allow_pickle=False) as npz:
        names = [n for n in npz.files if n != "spacing"]
        if key == "spacing":
            names.append("spacing")
        key = _pick_key(path, names, key, "array")
        volume = npz[key]
        raw_spacing = npz["spacing"] if "spacing" in npz.files else None
    return volume, raw_spacing, f"'{path}' (array 'spacing')"


_READERS: dict[str, Callable[[Path, str | None, bool], tuple[Any, Any, str]]] = {
    "tiff": _read_tiff,
    "hdf5": _read_hdf5,
    "zarr": _read_zarr,
    "npy": _read_npy,
    "npz": _read_npz,
}


def _clean_spacing(raw: Any, where: str) -> Spacing | None:
    if raw is None:
        return None
    try:
        value = np.asarray(raw).tolist()
        return check_spacing(value)  # type: ignore[return-value]
    except (TypeError, ValueError) as exc:
        warnings.warn(
            f"Ignoring the voxel spacing stored in {where}: {exc}", UserWarning, stacklevel=3
        )
        return None


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save_volume(
    path: PathLike,
    volume: Any,
    *,
    spacing: Sequence[float] | float | None = None,
    key: str | None = None,
    overwrite: bool = False,
    compression: bool = True,
) -> Path:
    """Write a 3D label volume, and its voxel spacing, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its extension picks the format (see :data:`SUPPORTED_EXTENSIONS`).
        ``.zarr`` writes a Zarr 3 directory store. The parent directory must exist.
    volume : array-like of shape (Z, Y, X)
        Integer labels; its dtype is kept. An all-background volume is accepted. Never
        modified.
    spacing : sequence of 3 floats or float, optional
        ``(z, y, x)`` voxel size in µm, stored so that :func:`load_volume` reads it back.
        TIFF files of dtype uint8/uint16 with more than one slice are written as ImageJ
        hyperstacks (spacing in the ImageJ metadata and resolution tags, readable by
        Fiji); other TIFFs carry a JSON description with ``spacing_zyx_um``. ``.npy``
        cannot store it: it is dropped with a :class:`UserWarning`.
    key : str, optional
        Name of the array in an HDF5, Zarr or ``.npz`` file. Defaults to ``"volume"`` for
        HDF5 and ``.npz``; for Zarr the store itself is the array unless a key is given,
        in which case the store is a group holding the array at ``key``. ``"spacing"`` is
        reserved in ``.npz``. Must be ``None`` for TIFF and ``.npy``.
    overwrite : bool, default=False
        Replace an existing output. The old output stays untouched until the new one is
        complete. The whole file or store is replaced, so an existing HDF5 file, Zarr
        group or ``.npz`` holding arrays other than ``key`` is refused even then: this
        function never adds an array into an existing container.
    compression : bool, default=True
        Compress losslessly (zlib for TIFF, gzip for HDF5, Zarr's default codec,
        ``savez_compressed`` for ``.npz``; ``.npy`` is never compressed).

    Returns
    -------
    path : pathlib.Path
        The written path.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or it is a container holding
        other arrays than ``key`` (which replacing it would delete).
    FileNotFoundError
        If the parent directory does not exist.
    ValueError, TypeError
        If the extension is not supported, ``key`` does not apply, ``spacing`` is
        invalid, or ``volume`` is not a 3D non-negative integer array.

    See Also
    --------
    load_volume : the inverse operation.
    """
    path = Path(os.fspath(path))
    fmt = volume_format(path)
    volume = check_label_volume(volume, name="volume", allow_empty=True)
    if spacing is not None:
        spacing = check_spacing(spacing)
    _check_key_use(fmt, key, path)
    if fmt == "npz" and key == "spacing":
        raise ValueError("key='spacing' is reserved in .npz files for the voxel spacing.")
    if fmt in ("hdf5", "npz") and key is None:
        key = _DEFAULT_KEY
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"'{path}' already exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    _refuse_container_with_others(path, fmt, key)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Output directory does not exist: '{path.parent}'.")
    if fmt == "npy" and spacing is not None:
        warnings.warn(
            f"'.npy' files cannot store a voxel spacing; spacing={spacing} is not written to "
            f"'{path}'. Use .npz, .tif, .h5 or .zarr to keep it.",
            UserWarning,
            stacklevel=2,
        )

    with atomic_output(path, directory=fmt == "zarr", overwrite=overwrite) as tmp:
        _WRITERS[fmt](tmp, volume, spacing, key, compression)
    return path


def _container_arrays(path: Path, fmt: str) -> list[str] | None:
    """The array names an existing HDF5/Zarr/npz file holds, or None if unreadable."""
    try:
        if fmt == "hdf5":
            import h5py

            names: list[str] = []
            with h5py.File(path, "r") as f:
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            return names
        if fmt == "zarr":
            import zarr

            node = zarr.open(store=str(path), mode="r")
            if isinstance(node, zarr.Array):
                return []
            return [n for n, obj in node.members(max_depth=None) if isinstance(obj, zarr.Array)]
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as npz:
                return [n for n in npz.files if n != "spacing"]
    except Exception:  # a corrupt file holds nothing that could be kept
        return None
    return []


def _refuse_container_with_others(path: Path, fmt: str, key: str | None) -> None:
    if fmt not in KEYED_FORMATS or not path.exists():
        return
    others = sorted(set(_container_arrays(path, fmt) or ()) - {key})
    if others:
        shown = ", ".join(repr(n) for n in others[:5]) + (" ..." if len(others) > 5 else "")
        raise FileExistsError(
            f"'{path}' holds other arrays ({shown}) that replacing it would delete; "
            "refusing even with overwrite=True. Write to a new file."
        )


def _write_tiff(
    target: Path, volume: np.ndarray, spacing: Spacing | None, key: str | None, compress: bool
) -> None:
    import tifffile

    compression = "zlib" if compress else None
    # ImageJ hyperstacks only hold 8/16-bit unsigned labels, and drop a single slice to 2D.
    if volume.dtype in (np.uint8, np.uint16) and volume.shape[0] > 1:
        metadata: dict[str, Any] = {"axes": "ZYX"}
        kwargs: dict[str, Any] = {}
        if spacing is not None:
            metadata.update(spacing=spacing[0], unit="um")
            kwargs["resolution"] = (1.0 / spacing[2], 1.0 / spacing[1])
        tifffile.imwrite(
            target, volume, imagej=True, metadata=metadata, compression=compression, **kwargs
        )
        return
    metadata = {"axes": "ZYX"}
    if spacing is not None:
        metadata["spacing_zyx_um"] = list(spacing)
    # Explicit photometric: otherwise tifffile stores a 3- or 4-slice volume as one RGB(A) page.
    tifffile.imwrite(
        target, volume, metadata=metadata, compression=compression, photometric="minisblack"
    )


def _write_hdf5(
    target: Path, volume: np.ndarray, spacing: Spacing | None, key: str | None, compress: bool
) -> None:
    import h5py

    # No HDF5 file locking: atomic_output holds its own lock on the temporary.
    with h5py.File(target, "w", locking=False) as f:
        options: dict[str, Any] = {"compression": "gzip", "compression_opts": 4} if compress else {}
        ds = f.create_dataset(key, data=volume, **options)
        if spacing is not None:
            ds.attrs["element_size_um"] = np.asarray(spacing, dtype=np.float64)


def _write_zarr(
    target: Path, volume: np.ndarray, spacing: Spacing | None, key: str | None, compress: bool
) -> None:
    import zarr

    zarr.create_array(
        store=str(target),
        name=key,
        data=volume,
        compressors="auto" if compress else None,
        attributes={} if spacing is None else {"spacing": list(spacing)},
        overwrite=True,  # the temporary directory exists already, empty
        # Every chunk written, background ones too: a missing chunk then means a lost file.
        config={"write_empty_chunks": True},
    )


def _write_npy(
    target: Path, volume: np.ndarray, spacing: Spacing | None, key: str | None, compress: bool
) -> None:
    # Through a handle: np.save would append '.npy' to the temporary name.
    with open(target, "wb") as fh:
        np.save(fh, volume, allow_pickle=False)


def _write_npz(
    target: Path, volume: np.ndarray, spacing: Spacing | None, key: str | None, compress: bool
) -> None:
    arrays = {key: volume}
    if spacing is not None:
        arrays["spacing"] = np.asarray(spacing, dtype=np.float64)
    savez = np.savez_compressed if compress else np.savez
    with open(target, "wb") as fh:
        savez(fh, **arrays)


_WRITERS: dict[str, Callable[[Path, np.ndarray, Spacing | None, str | None, bool], None]] = {
    "tiff": _write_tiff,
    "hdf5": _write_hdf5,
    "zarr": _write_zarr,
    "npy": _write_npy,
    "npz": _write_npz,
}

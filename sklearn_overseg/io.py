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
a crash or an exception never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._formats import KEYED_FORMATS, SUPPORTED_EXTENSIONS, volume_format
from ._validation import check_label_volume, check_lazy_label_volume, check_spacing

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "HDF5Volume",
    "atomic_output",
    "load_volume",
    "open_volume",
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


class _MissingKeyError(KeyError, ValueError):
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
    ValueError
        If the extension is not supported, if ``key`` is missing from the file or needed
        but not given (the message lists the available keys; the error is also a
        :class:`KeyError`), or if ``validate`` and the data are not a label volume.
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
        raise ValueError(f"'{path}' is a directory, not a {fmt} file.")
    _check_key_use(fmt, key, path)
    try:
        volume, raw_spacing, where = _READERS[fmt](path, key, mmap)
    except (KeyError, FileNotFoundError):
        raise
    except (OSError, ValueError) as exc:
        if "available" in str(exc):
            raise  # our own messages about keys already name the file
        # Corrupt files fail deep inside the reader with messages that omit the path.
        raise ValueError(f"cannot read '{path}' as {fmt}: {exc}") from exc
    if validate:
        name = f"volume loaded from '{path}'" + (f" (key '{key}')" if key is not None else "")
        if fmt == "zarr" and mmap:
            check_lazy_label_volume(volume, name)
        else:
            volume = check_label_volume(volume, name=name, allow_empty=True)
    if not return_spacing:
        return volume
    return volume, _clean_spacing(raw_spacing, where)


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
            raise ValueError(f"'{path}' contains no {what}.")
        raise _MissingKeyError(
            f"'{path}' contains {len(keys)} {what}s; choose one with key=. "
            f"Available keys: {listed}."
        )
    if key not in keys:
        raise _MissingKeyError(f"'{path}' has no {what} {key!r}. Available keys: {listed}.")
    return key


def _read_tiff(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        raw_spacing, where = _tiff_spacing(tif)
        volume = None
        if mmap:
            # Only uncompressed, contiguously stored images can be mapped.
            with contextlib.suppress(ValueError):
                volume = tifffile.memmap(path, mode="r")
        if volume is None:
            volume = tif.asarray()
    return volume, raw_spacing, where


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
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r")
        return np.asarray(self._file[self.key][item])

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


def open_volume(path: PathLike, *, key: str | None = None, return_spacing: bool = False) -> Any:
    """Open a label volume for out-of-core processing, reading no voxel yet.

    Parameters
    ----------
    path : str or os.PathLike
        Any format of :data:`SUPPORTED_EXTENSIONS`.
    key : str, optional
        As in :func:`load_volume`.
    return_spacing : bool, default=False
        Also return the stored ``(z, y, x)`` voxel size (or ``None``).

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
    FileNotFoundError, ValueError, TypeError
        As :func:`load_volume`; only shape and dtype are checked here (values are
        checked slab by slab when the volume is processed).
    """
    # Absolute, so that the lazy array still points at the file from a worker process
    # running in another directory.
    path = Path(os.path.abspath(os.fspath(path)))
    if volume_format(path) != "hdf5" or not path.is_file():
        volume, spacing = load_volume(path, key=key, return_spacing=True, mmap=True, validate=False)
        name = f"volume in '{path}'"
        if isinstance(volume, np.memmap) or not isinstance(volume, np.ndarray):
            check_lazy_label_volume(volume, name)  # values are checked slab by slab later
        else:
            volume = check_label_volume(volume, name=name, allow_empty=True)
        return (volume, spacing) if return_spacing else volume
    import h5py

    _check_key_use("hdf5", key, path)
    try:
        with h5py.File(path, "r") as f:
            key, raw_spacing, where = _locate_hdf5(f, path, key)
    except (KeyError, FileNotFoundError):
        raise
    except (OSError, ValueError) as exc:
        if "available" in str(exc):
            raise
        raise ValueError(f"cannot read '{path}' as hdf5: {exc}") from exc
    volume = HDF5Volume(path, key)
    check_lazy_label_volume(volume, f"volume in '{path}' (key '{key}')")
    if not return_spacing:
        return volume
    return volume, _clean_spacing(raw_spacing, where)


def _read_zarr(path: Path, key: str | None, mmap: bool) -> tuple[Any, Any, str]:
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise ValueError(f"'{path}' is not a readable Zarr store: {exc}") from None
    if isinstance(node, zarr.Array):
        if key is not None:
            raise ValueError(
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
    volume = array if mmap else array[...]
    return volume, raw_spacing, where


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
        complete.
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
        If ``path`` exists and ``overwrite`` is False.
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


@contextlib.contextmanager
def atomic_output(
    path: PathLike,
    *,
    directory: bool = False,
    overwrite: bool = False,
    replaceable: tuple[Callable[[Path], bool], str] | None = None,
):
    """A temporary sibling of ``path`` to write into, moved into place on success.

    On any exception (also ``KeyboardInterrupt``) the temporary file or directory is
    removed and ``path`` stays as it was. An existing ``path`` (also one created by
    someone else meanwhile) is replaced only with ``overwrite``, and an existing
    directory only if ``replaceable`` accepts it.

    Parameters
    ----------
    path : str or os.PathLike
        The final output.
    directory : bool, default=False
        Yield an empty directory (a Zarr store, a saved model) instead of an empty file.
    overwrite : bool, default=False
        Replace an existing ``path``.
    replaceable : (callable, str), optional
        A test that an existing directory is one of ours, and what it should be (for
        the error message); by default a Zarr store.

    Yields
    ------
    tmp : pathlib.Path
        Where to write.
    """
    path = Path(os.fspath(path))
    tmp = _make_temp_sibling(path, directory=directory)
    try:
        yield tmp
        _move_into_place(tmp, path, overwrite, replaceable or (_is_zarr_store, "a Zarr store"))
    except BaseException:
        _remove(tmp)
        raise


def _make_temp_sibling(path: Path, *, directory: bool) -> Path:
    # Same directory so the final rename never crosses a filesystem; created exclusively
    # (not with tempfile, whose 0o600/0o700 modes would outlive the rename).
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            if directory:
                tmp.mkdir()
            else:
                with open(tmp, "xb"):
                    pass
        except FileExistsError:
            continue
        return tmp


def _move_into_place(
    tmp: Path, path: Path, overwrite: bool, replaceable: tuple[Callable[[Path], bool], str]
) -> None:
    exists = path.exists() or path.is_symlink()
    if exists and not overwrite:  # created by someone else while we were writing
        raise FileExistsError(
            f"'{path}' already exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    if not exists or (tmp.is_file() and not path.is_dir()):
        os.replace(tmp, path)  # atomic for files
        return
    ours, what = replaceable
    if path.is_dir() and not ours(path):
        # overwrite=True replaces an output, never an unrelated folder of the user's.
        raise FileExistsError(
            f"'{path}' is a directory that is not {what}; refusing to replace it."
        )
    # A directory cannot be atomically replaced: set the old one aside, move the new one
    # in, then delete the old one, restoring it if the move fails.
    trash = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
    os.replace(path, trash)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(trash, path)
        raise
    _remove(trash)


def _is_zarr_store(path: Path) -> bool:
    return any((path / marker).exists() for marker in ("zarr.json", ".zarray", ".zgroup"))


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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

    with h5py.File(target, "w") as f:
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

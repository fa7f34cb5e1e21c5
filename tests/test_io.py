"""Tests of sklearn_overseg.io.volumes: formats, round trips, keys, spacing, atomic writes."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from sklearn_overseg.io import volumes as vio
from sklearn_overseg.io.volumes import SUPPORTED_EXTENSIONS, load_volume, save_volume, volume_format

SPACING = (0.235, 0.15, 0.15)
KEYED = (".h5", ".zarr", ".npz")


def _volume(dtype=np.uint16, shape=(3, 4, 5)):
    """Labels 0..59 in C order, plus one id near the dtype's top to catch truncation."""
    vol = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    vol[-1, -1, -1] = np.iinfo(dtype).max
    return vol


def _listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --------------------------------------------------------------------------------------
# format dispatch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.tif", "tiff"),
        ("a.TIFF", "tiff"),
        ("cells.ome.tif", "tiff"),
        ("a.h5", "hdf5"),
        ("a.HDF5", "hdf5"),
        ("a.ome.zarr", "zarr"),
        ("a.npy", "npy"),
        ("a.NPZ", "npz"),
    ],
)
def test_volume_format(name, fmt):
    assert volume_format(name) == fmt
    assert volume_format(Path("/some/dir") / name) == fmt


def test_supported_extensions_all_dispatch():
    assert set(SUPPORTED_EXTENSIONS) == {".tif", ".tiff", ".h5", ".hdf5", ".zarr", ".npy", ".npz"}
    assert {volume_format(f"x{ext}") for ext in SUPPORTED_EXTENSIONS} == {
        "tiff",
        "hdf5",
        "zarr",
        "npy",
        "npz",
    }


@pytest.mark.parametrize("func", ["format", "load", "save"])
def test_unknown_extension(tmp_path, func):
    path = tmp_path / "labels.nii"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"extension '\.nii'.*\.tif, \.tiff, \.h5"):
        if func == "format":
            volume_format(path)
        elif func == "load":
            load_volume(path)
        else:
            save_volume(tmp_path / "out.nii", _volume())


def test_no_extension_message():
    with pytest.raises(ValueError, match="has no extension"):
        volume_format("labels")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tif"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_volume(path)


# --------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int64])
@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_roundtrip_values_dtype_spacing(tmp_path, ext, dtype):
    vol = _volume(dtype)
    path = tmp_path / f"labels{ext}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = save_volume(path, vol, spacing=SPACING)
    assert out == path and isinstance(out, Path)
    loaded, spacing = load_volume(path, return_spacing=True)
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.shape == (3, 4, 5)
    np.testing.assert_array_equal(loaded, vol)
    if ext == ".npy":
        assert spacing is None
        assert any("cannot store a voxel spacing" in str(w.message) for w in caught)
    else:
        assert not caught
        assert spacing == pytest.approx(SPACING, rel=1e-9)
    # Nothing but the output itself is left in the directory.
    assert _listing(tmp_path) == [path.name]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])  # ImageJ and JSON TIFF paths
@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_roundtrip_without_spacing(tmp_path, ext, dtype):
    vol = _volume(dtype)
    path = save_volume(tmp_path / f"v{ext}", vol)
    loaded, spacing = load_volume(path, return_spacing=True)
    np.testing.assert_array_equal(loaded, vol)
    assert spacing is None
    # Without return_spacing only the array comes back.
    assert isinstance(load_volume(path), np.ndarray)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
@pytest.mark.parametrize("compression", [True, False])
def test_roundtrip_compression_flag_and_non_contiguous_input(tmp_path, ext, compression):
    vol = np.ascontiguousarray(_volume(np.uint16, shape=(5, 4, 3)))
    view = vol.transpose(2, 1, 0)  # (3, 4, 5), not C-contiguous
    path = save_volume(tmp_path / f"v{ext}", view, compression=compression)
    np.testing.assert_array_equal(load_volume(path), view)


def test_roundtrip_empty_volume_allowed(tmp_path):
    vol = np.zeros((2, 3, 3), dtype=np.uint16)
    path = save_volume(tmp_path / "empty.tif", vol)
    np.testing.assert_array_equal(load_volume(path), vol)


def test_save_scalar_spacing_is_isotropic(tmp_path):
    path = save_volume(tmp_path / "v.h5", _volume(), spacing=0.5)
    assert load_volume(path, return_spacing=True)[1] == (0.5, 0.5, 0.5)


# --------------------------------------------------------------------------------------
# TIFF specifics
# --------------------------------------------------------------------------------------


def test_tiff_uint16_is_imagej_hyperstack(tmp_path):
    path = save_volume(tmp_path / "v.tif", _volume(np.uint16), spacing=SPACING)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.235)
        assert tif.imagej_metadata["unit"] == "um"
        x_ppu, y_ppu = tif.pages[0].resolution
        assert 1 / x_ppu == pytest.approx(0.15) and 1 / y_ppu == pytest.approx(0.15)
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE


def test_tiff_wide_dtype_uses_json_description(tmp_path):
    path = save_volume(tmp_path / "v.tif", _volume(np.uint32), spacing=SPACING)
    with tifffile.TiffFile(path) as tif:
        assert not tif.is_imagej
        # One grey page per slice, not a 3-sample RGB page.
        assert len(tif.pages) == 3
        assert tif.pages[0].shape == (4, 5)
        assert tif.shaped_metadata[0]["spacing_zyx_um"] == list(SPACING)
        assert tif.shaped_metadata[0]["axes"] == "ZYX"


def test_tiff_single_slice_keeps_three_axes(tmp_path):
    # An ImageJ file would come back 2D; a one-slice volume must stay (1, Y, X).
    vol = _volume(np.uint16, shape=(1, 4, 5))
    path = save_volume(tmp_path / "v.tif", vol, spacing=SPACING)
    loaded, spacing = load_volume(path, return_spacing=True)
    assert loaded.shape == (1, 4, 5)
    np.testing.assert_array_equal(loaded, vol)
    assert spacing == pytest.approx(SPACING)


def test_tiff_imagej_irrational_spacing_precision(tmp_path):
    spacing = (0.123456789, 1 / 3, 0.0987654321)
    path = save_volume(tmp_path / "v.tif", _volume(np.uint8), spacing=spacing)
    assert load_volume(path, return_spacing=True)[1] == pytest.approx(spacing, rel=1e-6)


def test_tiff_imagej_nm_unit_converted_to_um(tmp_path):
    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path,
        _volume(np.uint16),
        imagej=True,
        resolution=(1 / 150.0, 1 / 120.0),
        metadata={"spacing": 235.0, "unit": "nm", "axes": "ZYX"},
    )
    assert load_volume(path, return_spacing=True)[1] == pytest.approx((0.235, 0.12, 0.15))


def test_tiff_plain_file_has_no_spacing(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _volume(np.uint16), photometric="minisblack")
    loaded, spacing = load_volume(path, return_spacing=True)
    assert loaded.shape == (3, 4, 5)
    assert spacing is None


def test_shared_ovule_spacing(data_dir):
    path = data_dir / "plant_ovule" / "labels_gt.tif"
    vol, spacing = load_volume(path, return_spacing=True)
    assert vol.shape == (32, 128, 128)
    assert vol.dtype == np.uint16
    assert spacing == pytest.approx((0.235, 0.15, 0.15))
    # 50 cells + background according to the data README.
    assert len(np.unique(vol)) == 51


def test_shared_tissue_has_no_spacing(data_dir):
    path = data_dir / "plant_tissue_a" / "labels_gt.tif"
    _, spacing = load_volume(path, return_spacing=True, mmap=True)
    assert spacing is None


# --------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------


def _two_array_file(tmp_path: Path, ext: str) -> Path:
    a, b = _volume(np.uint16), _volume(np.uint32) + 1
    path = tmp_path / f"two{ext}"
    if ext == ".h5":
        with h5py.File(path, "w") as f:
            f.create_dataset("raw", data=a)
            f.create_dataset("seg/labels", data=b).attrs["resolution"] = [2.0, 1.0, 1.0]
    elif ext == ".zarr":
        zarr.create_array(store=str(path), name="raw", data=a)
        zarr.create_array(
            store=str(path), name="seg/labels", data=b, attributes={"spacing": [2.0, 1.0, 1.0]}
        )
    else:
        np.savez(path, raw=a, labels=b, spacing=np.array([2.0, 1.0, 1.0]))
    return path


def _labels_key(ext: str) -> str:
    return "labels" if ext == ".npz" else "seg/labels"


@pytest.mark.parametrize("ext", KEYED)
def test_two_arrays_need_key(tmp_path, ext):
    path = _two_array_file(tmp_path, ext)
    key = _labels_key(ext)
    with pytest.raises(ValueError, match="contains 2") as info:
        load_volume(path)
    assert "'raw'" in str(info.value) and f"'{key}'" in str(info.value)
    assert "spacing" not in str(info.value)  # the npz spacing entry is not a candidate
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("ext", KEYED)
def test_key_selects_array_and_spacing(tmp_path, ext):
    path = _two_array_file(tmp_path, ext)
    labels, spacing = load_volume(path, key=_labels_key(ext), return_spacing=True)
    np.testing.assert_array_equal(labels, _volume(np.uint32) + 1)
    assert labels.dtype == np.uint32
    assert spacing == (2.0, 1.0, 1.0)
    raw = load_volume(path, key="raw")
    np.testing.assert_array_equal(raw, _volume(np.uint16))


@pytest.mark.parametrize("ext", KEYED)
def test_missing_key_lists_available(tmp_path, ext):
    path = _two_array_file(tmp_path, ext)
    with pytest.raises(ValueError, match=r"no (dataset|array) 'membranes'.*Available keys") as e:
        load_volume(path, key="membranes")
    assert "'raw'" in str(e.value)
    assert isinstance(e.value, KeyError)
    # The message is not wrapped in quotes as plain KeyError messages are.
    assert not str(e.value).startswith('"')


def test_h5_leading_slash_key(tmp_path):
    path = _two_array_file(tmp_path, ".h5")
    np.testing.assert_array_equal(load_volume(path, key="/seg/labels"), _volume(np.uint32) + 1)


def test_h5_spacing_attribute_variants(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=_volume()).attrs["spacing"] = np.array([3.0, 0.5, 0.25])
    assert load_volume(path, return_spacing=True)[1] == (3.0, 0.5, 0.25)


def test_invalid_stored_spacing_warns_and_is_none(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=_volume()).attrs["element_size_um"] = [1.0, 1.0]
    with pytest.warns(UserWarning, match="Ignoring the voxel spacing.*'element_size_um'"):
        _, spacing = load_volume(path, return_spacing=True)
    assert spacing is None


def test_empty_h5_is_refused(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_group("nothing")
    with pytest.raises(ValueError, match="contains no dataset"):
        load_volume(path)


def test_npz_spacing_entry_is_not_the_volume(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, spacing=np.array([1.0, 2.0, 3.0]), seg=_volume())
    vol, spacing = load_volume(path, return_spacing=True)
    np.testing.assert_array_equal(vol, _volume())
    assert spacing == (1.0, 2.0, 3.0)


def test_npz_spacing_key_is_reserved_on_save(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_volume(tmp_path / "a.npz", _volume(), key="spacing")


@pytest.mark.parametrize("ext", KEYED)
def test_save_with_key(tmp_path, ext):
    path = save_volume(tmp_path / f"k{ext}", _volume(), key="seg", spacing=SPACING)
    vol, spacing = load_volume(path, key="seg", return_spacing=True)
    np.testing.assert_array_equal(vol, _volume())
    assert spacing == pytest.approx(SPACING)
    # The only array is found without a key, too.
    np.testing.assert_array_equal(load_volume(path), _volume())


def test_h5_default_key_is_volume(tmp_path):
    path = save_volume(tmp_path / "a.h5", _volume(), spacing=SPACING)
    with h5py.File(path, "r") as f:
        assert list(f) == ["volume"]
        np.testing.assert_allclose(f["volume"].attrs["element_size_um"], SPACING)


def test_zarr_single_array_refuses_key(tmp_path):
    path = save_volume(tmp_path / "a.zarr", _volume())
    assert isinstance(zarr.open(store=str(path), mode="r"), zarr.Array)
    with pytest.raises(ValueError, match="single Zarr array"):
        load_volume(path, key="labels")


@pytest.mark.parametrize("ext", [".tif", ".npy"])
def test_key_refused_for_single_array_formats(tmp_path, ext):
    with pytest.raises(ValueError, match="key is only used for"):
        save_volume(tmp_path / f"a{ext}", _volume(), key="x")
    path = save_volume(tmp_path / f"a{ext}", _volume())
    with pytest.raises(ValueError, match="key is only used for"):
        load_volume(path, key="x")


# --------------------------------------------------------------------------------------
# mmap / lazy
# --------------------------------------------------------------------------------------


def test_mmap_npy(tmp_path):
    path = save_volume(tmp_path / "a.npy", _volume(np.int64))
    vol = load_volume(path, mmap=True)
    assert isinstance(vol, np.memmap)
    assert not vol.flags.writeable
    np.testing.assert_array_equal(vol, _volume(np.int64))


def test_mmap_uncompressed_tiff_and_compressed_fallback(tmp_path):
    raw = save_volume(tmp_path / "raw.tif", _volume(np.uint32), compression=False)
    vol = load_volume(raw, mmap=True)
    assert isinstance(vol, np.memmap)
    np.testing.assert_array_equal(vol, _volume(np.uint32))
    packed = save_volume(tmp_path / "packed.tif", _volume(np.uint32))
    vol = load_volume(packed, mmap=True)
    assert type(vol) is np.ndarray
    np.testing.assert_array_equal(vol, _volume(np.uint32))


def test_mmap_contiguous_h5(tmp_path):
    path = save_volume(tmp_path / "a.h5", _volume(np.uint32), compression=False)
    vol = load_volume(path, mmap=True)
    assert isinstance(vol, np.memmap)
    np.testing.assert_array_equal(vol, _volume(np.uint32))
    chunked = save_volume(tmp_path / "b.h5", _volume(np.uint32))
    assert type(load_volume(chunked, mmap=True)) is np.ndarray


def test_mmap_zarr_returns_lazy_array(tmp_path):
    path = save_volume(tmp_path / "a.zarr", _volume(np.uint32), spacing=SPACING)
    vol, spacing = load_volume(path, mmap=True, return_spacing=True)
    assert isinstance(vol, zarr.Array)
    assert vol.shape == (3, 4, 5)
    np.testing.assert_array_equal(vol[...], _volume(np.uint32))
    assert spacing == pytest.approx(SPACING)


def test_lazy_zarr_validation_checks_dtype_and_ndim(tmp_path):
    floats = tmp_path / "f.zarr"
    zarr.create_array(store=str(floats), data=np.ones((2, 3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="float32"):
        load_volume(floats, mmap=True)
    flat = tmp_path / "flat.zarr"
    zarr.create_array(store=str(flat), data=np.ones((3, 4), dtype=np.uint16))
    with pytest.raises(ValueError, match=r"ndim=2 with shape \(3, 4\)"):
        load_volume(flat, mmap=True)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def test_load_validates_by_default(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.ones((2, 3, 4), dtype=np.float64))
    with pytest.raises(TypeError, match=r"f\.npy.*float64"):
        load_volume(path)
    assert load_volume(path, validate=False).dtype == np.float64
    neg = tmp_path / "neg.npy"
    np.save(neg, -np.ones((2, 2, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="negative labels"):
        load_volume(neg)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.ones((2, 3, 4), dtype=np.float64), TypeError, "dtype float64"),
        (np.ones((3, 4), dtype=np.uint16), ValueError, r"ndim=2 with shape \(3, 4\)"),
        (np.ones((2, 2, 2), dtype=bool), TypeError, "dtype bool"),
        (-np.ones((2, 2, 2), dtype=np.int64), ValueError, "negative labels"),
    ],
)
@pytest.mark.parametrize("ext", [".tif", ".zarr", ".npz"])
def test_save_refuses_bad_volume(tmp_path, bad, error, message, ext):
    with pytest.raises(error, match=message):
        save_volume(tmp_path / f"bad{ext}", bad)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -2.0, 1.0)])
def test_save_refuses_bad_spacing(tmp_path, spacing):
    with pytest.raises(ValueError, match="spacing"):
        save_volume(tmp_path / "a.tif", _volume(), spacing=spacing)
    assert _listing(tmp_path) == []


def test_save_missing_parent_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="Output directory does not exist"):
        save_volume(tmp_path / "nope" / "a.tif", _volume())


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_input_not_mutated(tmp_path, ext):
    vol = _volume(np.uint16)
    expected = vol.copy()
    vol.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        save_volume(tmp_path / f"a{ext}", vol, spacing=SPACING)
    np.testing.assert_array_equal(vol, expected)
    assert not vol.flags.writeable


# --------------------------------------------------------------------------------------
# overwrite and atomicity
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_existing_output_needs_overwrite(tmp_path, ext):
    path = save_volume(tmp_path / f"a{ext}", _volume(np.uint16))
    with pytest.raises(FileExistsError, match=r"overwrite=True \(CLI: --overwrite\)"):
        save_volume(path, _volume(np.uint32) + 7)
    np.testing.assert_array_equal(load_volume(path), _volume(np.uint16))
    assert _listing(tmp_path) == [path.name]


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
@pytest.mark.filterwarnings("ignore:'.npy' files cannot store")
def test_overwrite_replaces(tmp_path, ext):
    path = save_volume(tmp_path / f"a{ext}", _volume(np.uint16), spacing=(9.0, 9.0, 9.0))
    new = _volume(np.uint32, shape=(2, 3, 3)) + 7
    save_volume(path, new, overwrite=True)
    loaded, spacing = load_volume(path, return_spacing=True)
    np.testing.assert_array_equal(loaded, new)
    assert loaded.dtype == np.uint32
    assert spacing is None
    assert _listing(tmp_path) == [path.name]


@pytest.mark.parametrize("ext", [".zarr", ".h5", ".npz"])
def test_overwrite_never_drops_other_arrays_of_a_container(tmp_path, ext):
    path = _two_array_file(tmp_path, ext)
    before = {k: load_volume(path, key=k) for k in ("raw", "seg/labels") if ext != ".npz"}
    for key in (None, "seg/labels", "new"):
        if ext == ".npz" and key == "seg/labels":
            continue
        with pytest.raises(FileExistsError, match="holds other arrays"):
            save_volume(path, _volume(), key=key, overwrite=True)
    for k, v in before.items():
        np.testing.assert_array_equal(load_volume(path, key=k), v)
    assert _listing(tmp_path) == [path.name]


def test_overwrite_replaces_a_container_holding_only_that_array(tmp_path):
    path = save_volume(tmp_path / "a.h5", _volume(), key="labels")
    save_volume(path, _volume() * 2, key="labels", overwrite=True)
    np.testing.assert_array_equal(load_volume(path), _volume() * 2)
    store = save_volume(tmp_path / "a.zarr", _volume())
    save_volume(store, _volume() * 3, overwrite=True)
    assert isinstance(zarr.open(store=str(store), mode="r"), zarr.Array)


def test_overwrite_directory_with_file(tmp_path):
    path = save_volume(tmp_path / "a.zarr", _volume())
    assert path.is_dir()
    # overwrite=True replaces outputs, never a user's folder that merely has the name.
    weird = tmp_path / "b.tif"
    weird.mkdir()
    (weird / "junk").write_text("x")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        save_volume(weird, _volume(), overwrite=True)
    notes = tmp_path / "c.zarr"
    notes.mkdir()
    (notes / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        save_volume(notes, _volume(), overwrite=True)
    assert (weird / "junk").read_text() == "x" and (notes / "notes.txt").read_text() == "precious"
    # A real Zarr store is replaced.
    save_volume(path, _volume() + 1, overwrite=True)
    np.testing.assert_array_equal(load_volume(path), _volume() + 1)
    assert _listing(tmp_path) == ["a.zarr", "b.tif", "c.zarr"]


def test_corrupt_files_name_the_path(tmp_path):
    for name in ("bad.h5", "bad.npy", "bad.tif"):
        (tmp_path / name).write_bytes(b"not a volume at all" * 10)
        with pytest.raises(ValueError, match=name):
            load_volume(tmp_path / name)
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        load_volume(tmp_path / "dir.tif")
    with pytest.raises(TypeError, match="path must be"):
        load_volume(None)


class Boom(RuntimeError):
    pass


def _failing_writer(real, *, complete: bool, exc: type[BaseException] = Boom):
    def writer(target, volume, spacing, key, compress):
        if complete:
            real(target, volume, spacing, key, compress)
        elif target.is_dir():
            (target / "zarr.json").write_text("{partial")
        else:
            target.write_bytes(b"partial")
        raise exc("disk full")

    return writer


@pytest.mark.parametrize("complete", [False, True])
@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, ext, complete):
    fmt = volume_format(f"a{ext}")
    monkeypatch.setitem(vio._WRITERS, fmt, _failing_writer(vio._WRITERS[fmt], complete=complete))
    with pytest.raises(Boom, match="disk full"):
        save_volume(tmp_path / f"a{ext}", _volume())
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("ext", [".tif", ".zarr", ".h5"])
def test_failed_overwrite_keeps_old_output(tmp_path, monkeypatch, ext):
    path = save_volume(tmp_path / f"a{ext}", _volume(np.uint16), spacing=SPACING)
    fmt = volume_format(f"a{ext}")
    writer = _failing_writer(vio._WRITERS[fmt], complete=True, exc=KeyboardInterrupt)
    monkeypatch.setitem(vio._WRITERS, fmt, writer)
    with pytest.raises(KeyboardInterrupt):
        save_volume(path, _volume(np.uint32) + 5, overwrite=True)
    vol, spacing = load_volume(path, return_spacing=True)
    np.testing.assert_array_equal(vol, _volume(np.uint16))
    assert spacing == pytest.approx(SPACING)
    assert _listing(tmp_path) == [path.name]


def test_failed_directory_swap_restores_old(tmp_path, monkeypatch):
    path = save_volume(tmp_path / "a.zarr", _volume(np.uint16))
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        src, dst = Path(src), Path(dst)
        calls.append((src.name, dst.name))
        # Zarr renames its own chunk files; fail only when the new store moves in.
        if src.name.startswith(".a.zarr.") and src.name.endswith(".tmp") and dst == path:
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(vio.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_volume(path, _volume(np.uint32), overwrite=True)
    monkeypatch.undo()
    # The old store had been set aside, then was put back.
    assert any(dst.endswith(".old") for _, dst in calls)
    np.testing.assert_array_equal(load_volume(path), _volume(np.uint16))
    assert _listing(tmp_path) == ["a.zarr"]


def test_output_file_mode_follows_umask(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = save_volume(tmp_path / "a.npz", _volume())
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------
# unreadable files: one VolumeReadError naming the file, wherever the reader fails
# --------------------------------------------------------------------------------------


def _read_error(path, *fragments, **kwargs):
    with pytest.raises(vio.VolumeReadError) as info:
        load_volume(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def _tissue(shape=(8, 32, 32)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(1, 500, size=shape).astype(np.uint16)


def test_truncated_compressed_tiff(tmp_path):
    path = save_volume(tmp_path / "v.tif", _tissue())
    data = path.read_bytes()
    # Keep the header and the first strips: tifffile finds the pages, zlib fails.
    path.write_bytes(data[: len(data) // 2])
    _read_error(path, "cannot read", "tiff")


def test_empty_and_truncated_npy(tmp_path):
    path = tmp_path / "v.npy"
    path.write_bytes(b"")
    _read_error(path, "empty")
    np.save(path, _tissue())
    path.write_bytes(path.read_bytes()[:200])
    _read_error(path, "npy")


def _chunk_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file() and p.parent.name != store.name)


def test_corrupt_zarr_chunk_in_memory_and_streamed(tmp_path):
    store = save_volume(tmp_path / "v.zarr", _tissue())
    zarr.open_array(str(store), mode="r")  # a valid store first
    array = zarr.open_array(
        str(tmp_path / "c.zarr"), mode="w", shape=(8, 32, 32), chunks=(4, 16, 16), dtype="uint16"
    )
    array[:] = _tissue()
    chunk = _chunk_files(tmp_path / "c.zarr")[3]
    chunk.write_bytes(b"garbage" * 10)
    _read_error(tmp_path / "c.zarr", "cannot read")
    lazy = vio.open_volume(tmp_path / "c.zarr")  # opens: no voxel read yet
    with pytest.raises(vio.VolumeReadError, match=re.escape(str(tmp_path / "c.zarr"))):
        vio.read_region(lazy)
    vio.read_region(lazy, (slice(0, 4), slice(0, 16), slice(0, 16)))  # a good chunk


def test_corrupt_hdf5_block_read_lazily(tmp_path):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=_tissue(), chunks=(4, 16, 16), compression="gzip")
    lazy = vio.open_volume(path)
    with h5py.File(path, "r") as f:
        offset = f["v"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(vio.VolumeReadError, match="dataset 'v'"):
        lazy[0:4, 0:16, 0:16]
    _read_error(path, "hdf5")


def test_missing_key_is_a_read_error_and_a_key_error(tmp_path):
    path = _two_array_file(tmp_path, ".h5")
    error = _read_error(path, "Available keys", key="nope")
    assert isinstance(error, KeyError)


def test_missing_zarr_chunks_inside_the_labelled_extent(tmp_path):
    store = tmp_path / "v.zarr"
    array = zarr.create_array(
        store=str(store), shape=(8, 32, 32), chunks=(4, 16, 16), dtype="uint16"
    )
    array[:] = _tissue()
    assert len(_chunk_files(store)) == 8
    full = load_volume(store)
    _chunk_files(store)[2].unlink()
    error = _read_error(store, "missing 1 of the 8 chunk", "--sparse")
    assert isinstance(error, vio.ZarrChunkError)
    with pytest.raises(vio.ZarrChunkError):
        vio.open_volume(store)
    sparse = load_volume(store, allow_missing_chunks=True)
    assert (sparse != full).any() and sparse.shape == full.shape
    assert vio.open_volume(store, allow_missing_chunks=True).shape == full.shape


def test_background_border_chunks_may_be_missing(tmp_path):
    """zarr's default skips all-background chunks: outside the labelled box that is fine."""
    vol = np.zeros((8, 32, 32), np.uint16)
    vol[:4, :16, :] = 7  # the labelled extent covers chunks z0, y0, x0..1 only
    store = tmp_path / "v.zarr"
    array = zarr.create_array(store=str(store), shape=vol.shape, chunks=(4, 16, 16), dtype="uint16")
    array[:] = vol
    assert len(_chunk_files(store)) == 2
    np.testing.assert_array_equal(load_volume(store), vol)


def test_our_zarr_writes_keep_background_chunks(tmp_path):
    vol = np.zeros((8, 32, 32), np.uint16)
    vol[0, 0, 0] = vol[-1, -1, -1] = 3
    store = save_volume(tmp_path / "v.zarr", vol)
    np.testing.assert_array_equal(load_volume(store), vol)
    arr = zarr.open_array(str(store), mode="r")
    n_chunks = int(np.prod([-(-s // c) for s, c in zip(arr.shape, arr.chunks, strict=True)]))
    assert len(_chunk_files(store)) == n_chunks


def test_uint64_ids_above_int64_refused_at_load(tmp_path):
    vol = np.ones((2, 3, 4), np.uint64)
    vol[0, 0, 0] = 2**63 - 1
    path = save_volume(tmp_path / "ok.npy", vol)
    assert load_volume(path).max() == 2**63 - 1
    vol[0, 0, 0] = 2**63
    path = save_volume(tmp_path / "big.npy", vol)
    _read_error(path, "2**63 - 1")
    assert load_volume(path, validate=False).max() == 2**63

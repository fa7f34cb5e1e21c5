"""Tests of sklearn_overseg.io._paths: atomic outputs, stale temporaries, path identity."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from sklearn_overseg.io import _paths as paths
from sklearn_overseg.io.volumes import atomic_output, load_volume, save_volume


def _age(path: Path, seconds: float = 60.0) -> None:
    """Backdate a leftover beyond the grace period that protects a writer being born."""
    old = time.time() - seconds
    os.utime(path, (old, old))


def _temporary(path: Path, kind: str = "tmp", directory: bool = False) -> Path:
    tmp = paths._temp_path(path, "0123456789ab", kind)
    if directory:
        (tmp / "c").mkdir(parents=True)
        (tmp / "c" / "0").write_bytes(b"x" * 100)
    else:
        tmp.write_bytes(b"partial")
    _age(tmp)
    return tmp


def test_io_reexports_atomic_output():
    from sklearn_overseg.io import volumes as io

    assert io.atomic_output is paths.atomic_output


def test_temporary_is_named_and_locked_while_written(tmp_path):
    out = tmp_path / "out.tif"
    with atomic_output(out) as tmp:
        assert paths._temp_pattern(out).match(tmp.name), tmp.name
        assert paths._try_lock(tmp) is None  # the writer holds it
        assert paths.remove_stale_temporaries(out) == []
        tmp.write_bytes(b"done")
    assert out.read_bytes() == b"done"
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_exception_removes_the_temporary(tmp_path):
    out = tmp_path / "out.zarr"
    with pytest.raises(KeyError), atomic_output(out, directory=True) as tmp:
        (tmp / "zarr.json").write_text("{}")
        raise KeyError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("directory", [False, True])
def test_stale_temporaries_of_our_naming_are_removed_on_the_next_write(tmp_path, directory):
    out = tmp_path / ("out.zarr" if directory else "out.tif")
    stale = _temporary(out, directory=directory)
    legacy = tmp_path / f".{out.name}.1a2b3c4d.tmp"  # older naming: never ours to judge
    legacy.write_bytes(b"?")
    other = _temporary(tmp_path / "other.tif")  # another output's
    young = paths._temp_path(out, "ba9876543210", "tmp")
    young.write_bytes(b"maybe being born")  # inside the grace period
    save_volume(out, np.ones((2, 3, 4), np.uint8))
    assert not stale.exists()
    assert legacy.exists() and other.exists() and young.exists()
    assert load_volume(out).shape == (2, 3, 4)


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    out = tmp_path / "out.tif"
    with atomic_output(out) as tmp:
        _age(tmp)
        assert paths.remove_stale_temporaries(out) == []
        assert tmp.exists()
        tmp.write_bytes(b"x")


def test_stale_old_directory_is_restored_when_the_output_is_missing(tmp_path):
    out = tmp_path / "out.zarr"
    save_volume(out, np.full((2, 3, 4), 5, np.uint8))
    # A writer that died between its two renames: the old store is set aside, no output.
    old = paths._temp_path(out, "0123456789ab", "old")
    os.replace(out, old)
    _age(old)
    assert paths.remove_stale_temporaries(out) == [old]
    assert (load_volume(out) == 5).all()
    # Beside an existing output (the writer died deleting it), a stale old copy goes.
    shutil.copytree(out, old)
    _age(old)
    save_volume(out, np.full((2, 3, 4), 6, np.uint8), overwrite=True)
    assert not old.exists() and (load_volume(out) == 6).all()
    assert os.listdir(tmp_path) == ["out.zarr"]


def test_check_writable(tmp_path):
    out = tmp_path / "o.tif"
    assert paths.check_writable(out) == out
    assert os.listdir(tmp_path) == []  # the probe is gone
    out.write_bytes(b"x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        paths.check_writable(out)
    paths.check_writable(out, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        paths.check_writable(tmp_path / "missing" / "o.tif")


def test_unwritable_folder_is_named_by_the_output_not_the_temporary(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(paths.os, "open", read_only)
    out = tmp_path / "o.tif"
    with pytest.raises(PermissionError) as info:
        paths.check_writable(out)
    message = str(info.value)
    assert f"'{out}'" in message and ".ovs-" not in message, message
    with pytest.raises(PermissionError, match="Permission denied") as info:
        save_volume(out, np.ones((1, 2, 2), np.uint8))
    assert ".ovs-" not in str(info.value)


def test_write_failure_inside_the_temporary_names_the_output(tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(OSError) as info, atomic_output(out) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.errno == errno.ENOSPC
    assert f"'{out}'" in str(info.value) and ".ovs-" not in str(info.value)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- identity
def test_distinct_paths_by_resolved_path_symlink_and_hard_link(tmp_path):
    source = tmp_path / "in.tif"
    source.write_bytes(b"x")
    (tmp_path / "link.tif").symlink_to(source)
    os.link(source, tmp_path / "hard.tif")
    sub = tmp_path / "sub"
    sub.mkdir()
    for name in ("in.tif", "link.tif", "hard.tif", "sub/../in.tif"):
        with pytest.raises(paths.OutputPathError, match="is the input"):
            paths.check_distinct_paths([source], {"--report": tmp_path / name})
    paths.check_distinct_paths([source], {"-o": tmp_path / "out.tif", "--report": None})


def test_containers_of_the_input_are_refused(tmp_path):
    group = tmp_path / "data.zarr"
    zarr.create_array(store=str(group), name="labels", data=np.ones((2, 2, 2), np.uint8))
    with pytest.raises(paths.OutputPathError, match="contains the input"):
        paths.check_distinct_paths([group / "labels"], {"-o": group})
    with pytest.raises(paths.OutputPathError, match="lies inside the input"):
        paths.check_distinct_paths([group], {"-o": group / "fixed.zarr"})
    with pytest.raises(paths.OutputPathError, match="contains the input"):
        paths.check_distinct_paths([group / "labels"], {"-o": tmp_path})


def test_outputs_must_differ(tmp_path):
    with pytest.raises(paths.OutputPathError, match="same path"):
        paths.check_distinct_paths([], {"-o": tmp_path / "a", "--plot": tmp_path / "a"})
    with pytest.raises(paths.OutputPathError, match="same path"):
        paths.check_distinct_paths([], {"-o": tmp_path / "a.zarr", "--plot": tmp_path / "a.zarr/p"})


def test_check_output_paths_runs_both_checks(tmp_path):
    source = tmp_path / "in.tif"
    source.write_bytes(b"x")
    with pytest.raises(paths.OutputPathError):
        paths.check_output_paths([source], {"-o": source}, overwrite=True)
    (tmp_path / "r.csv").write_text("x")
    with pytest.raises(FileExistsError):
        paths.check_output_paths(
            [source], {"-o": tmp_path / "o.tif", "--report": tmp_path / "r.csv"}
        )
    got = paths.check_output_paths([source], {"-o": tmp_path / "o.tif", "--plot": None})
    assert got == {"-o": tmp_path / "o.tif"}


# -------------------------------------------------------------------------- concurrency
def test_concurrent_overwrites_of_one_zarr_store(tmp_path):
    out = tmp_path / "out.zarr"
    save_volume(out, np.zeros((2, 8, 8), np.uint16))
    errors: list[BaseException] = []

    def writer(value: int) -> None:
        try:
            for _ in range(5):
                save_volume(out, np.full((2, 8, 8), value, np.uint16), overwrite=True)
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = load_volume(out)
    assert len(np.unique(final)) == 1 and final[0, 0, 0] in range(1, 7)
    assert os.listdir(tmp_path) == ["out.zarr"]

"""Tests of the ``paper_large`` volume builder (``benchmarks/_large.py``) at a tiny size."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

zarr = pytest.importorskip("zarr")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _large import build_paper_large  # noqa: E402

SHAPE = (40, 300, 300)
CHUNKS = (8, 128, 128)
# Tiles of 37 x 326 x 283 (in-plane clipped to 300): z 0-37 and 37-40, x 0-283 and 283-300.
TILES = [
    (slice(z0, z1), slice(0, 300), slice(x0, x1))
    for (z0, z1), (x0, x1) in itertools.product([(0, 37), (37, 40)], [(0, 283), (283, 300)])
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir) -> dict:
    # Requesting data_dir marks every test built on this needs_data (skipped without the
    # real data; test_synthetic_source runs either way).
    return build_paper_large(tmp_path_factory.mktemp("large"), SHAPE, CHUNKS, seed=3)


def _read(info: dict) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    flawed = zarr.open_array(info["flawed"], mode="r")
    truth = zarr.open_array(info["truth"], mode="r")
    return flawed[:], truth[:], pd.read_csv(info["merges"])


def test_shape_dtype_chunks_and_counts(built):
    for name in ("flawed", "truth"):
        arr = zarr.open_array(built[name], mode="r")
        assert arr.shape == SHAPE
        assert arr.chunks == CHUNKS
        assert arr.dtype == np.uint32
    flawed, truth, merges = _read(built)
    assert built["n_tiles"] == 4
    assert built["tile_shape"] == [37, 300, 283]
    assert built["nbytes"] == 40 * 300 * 300 * 4
    assert built["n_cells"] == len(np.unique(flawed)) - 1
    assert built["n_true_cells"] == len(np.unique(truth)) - 1
    assert built["n_merges"] == len(merges) > 0
    # Every truth cell keeps its id or is split into two: cells = truth cells + merges.
    assert built["n_cells"] == built["n_true_cells"] + built["n_merges"]
    assert built["max_id"] == flawed.max()
    assert built["reused"] is False
    assert built["params"]["source"] == "tissue"


def test_ids_unique_across_tiles(built):
    flawed, truth, merges = _read(built)
    for volume in (flawed, truth):
        per_tile = [set(np.unique(volume[t]).tolist()) - {0} for t in TILES]
        assert sum(map(bool, per_tile)) >= 3  # a small corner tile may be background
        for a, b in itertools.combinations(per_tile, 2):
            assert not a & b
    # Both parts of a true merge lie in the same tile.
    tile_of = {}
    for k, t in enumerate(TILES):
        tile_of.update(dict.fromkeys(np.unique(flawed[t]).tolist(), k))
    assert all(tile_of[a] == tile_of[b] for a, b in zip(merges.cell_a, merges.cell_b, strict=True))


def test_truth_is_flawed_merged_per_table(built):
    flawed, truth, merges = _read(built)
    lut = np.arange(int(flawed.max()) + 1, dtype=np.int64)
    lut[merges["cell_b"].to_numpy()] = merges["cell_a"].to_numpy()
    labelled = flawed > 0
    np.testing.assert_array_equal(lut[flawed[labelled]], truth[labelled])
    # Flaws only remove voxels (blanked layers), never add any.
    blanked = (truth > 0) & ~labelled
    assert blanked.any()
    assert set(merges["flaw"]) == {"blank"}
    # A blanked split empties the whole layer z of its cell.
    row = merges.iloc[0]
    assert not np.isin(flawed[int(row.z)], [row.cell_a, row.cell_b]).any()
    assert (truth[int(row.z)] == row.cell_a).any()


def test_deterministic_and_seed_sensitive(built, tmp_path):
    again = build_paper_large(tmp_path / "again", SHAPE, CHUNKS, seed=3)
    flawed, truth, merges = _read(built)
    flawed2, truth2, merges2 = _read(again)
    np.testing.assert_array_equal(flawed, flawed2)
    np.testing.assert_array_equal(truth, truth2)
    pd.testing.assert_frame_equal(merges, merges2)
    other = build_paper_large(tmp_path / "other", SHAPE, CHUNKS, seed=4)
    assert not np.array_equal(_read(other)[0], flawed)


@pytest.mark.needs_data
def test_reuse_and_rebuild_on_new_parameters(tmp_path):
    shape, chunks = (10, 120, 100), (8, 64, 64)
    first = build_paper_large(tmp_path, shape, chunks, seed=1)
    stamp = (tmp_path / "build.json").stat().st_mtime_ns
    second = build_paper_large(tmp_path, shape, chunks, seed=1)
    assert second["reused"] is True
    assert second["build_seconds"] == first["build_seconds"]
    assert (tmp_path / "build.json").stat().st_mtime_ns == stamp
    third = build_paper_large(tmp_path, shape, (4, 64, 64), seed=1)
    assert third["reused"] is False
    assert zarr.open_array(third["flawed"], mode="r").chunks == (4, 64, 64)
    np.testing.assert_array_equal(_read(third)[0], _read(first)[0])


@pytest.mark.needs_data
def test_partial_build_is_not_reused(tmp_path):
    shape, chunks = (10, 120, 100), (8, 64, 64)
    build_paper_large(tmp_path, shape, chunks, seed=1)
    (tmp_path / "build.json").unlink()
    assert build_paper_large(tmp_path, shape, chunks, seed=1)["reused"] is False


def test_synthetic_source(tmp_path):
    info = build_paper_large(tmp_path, (12, 90, 80), (8, 64, 64), seed=0, source="synthetic")
    flawed, truth, merges = _read(info)
    assert info["params"]["source"] == "synthetic"
    assert flawed.shape == (12, 90, 80) and flawed.dtype == np.uint32
    assert info["n_true_cells"] == np.count_nonzero(np.unique(truth)) > 0
    lut = np.arange(int(flawed.max()) + 1, dtype=np.int64)
    lut[merges["cell_b"].to_numpy()] = merges["cell_a"].to_numpy()
    np.testing.assert_array_equal(lut[flawed[flawed > 0]], truth[flawed > 0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (10, 0, 10)}, ValueError, "shape"),
        ({"shape": (10, 10)}, ValueError, "shape"),
        ({"chunks": "abc"}, TypeError, "chunks"),
        ({"source": "disk"}, ValueError, "source"),
    ],
)
def test_bad_parameters(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_paper_large(tmp_path, **kwargs)

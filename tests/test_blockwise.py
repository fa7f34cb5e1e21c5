"""Tests of the blockwise / out-of-core correction engine (sklearn_overseg.correction.blockwise).

The engine promises that ``SegmentationCorrector.correct`` returns the *same* corrected
volume and decision table whatever ``n_jobs``, joblib backend (loky, threading, dask),
``slab_layers``, and whether the volume is a numpy array or a lazily read Zarr array.
These tests check that identity on volumes with many merges and merge chains (so that
the re-judging and the read-back-from-canvas paths run), and the building blocks one by
one: the slab-wise index, the slab-partitioned pair search, and the lazy canvas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config

from sklearn_overseg.correction.blockwise import index_volume
from sklearn_overseg.correction.canvas import ArrayCanvas, LazyCanvas
from sklearn_overseg.pretrained import load_pretrained
from sklearn_overseg.screening.axial import screen_axial_pairs, sort_pairs
from sklearn_overseg.screening.cells import CellIndex
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import synthesize_flaws

zarr = pytest.importorskip("zarr")


# --------------------------------------------------------------------------- helpers


def readonly(volume: np.ndarray) -> np.ndarray:
    volume = np.array(volume, copy=True)
    volume.setflags(write=False)
    return volume


def to_zarr(path, volume: np.ndarray, chunks=(4, 64, 64)):
    """A Zarr array on disk holding ``volume`` (chunks clipped to its shape)."""
    chunks = tuple(min(c, s) for c, s in zip(chunks, volume.shape, strict=True))
    arr = zarr.create_array(store=str(path), shape=volume.shape, dtype=volume.dtype, chunks=chunks)
    arr[:] = volume
    return arr


def empty_zarr(path, like: np.ndarray, chunks=(4, 64, 64)):
    chunks = tuple(min(c, s) for c, s in zip(chunks, like.shape, strict=True))
    return zarr.create_array(store=str(path), shape=like.shape, dtype=like.dtype, chunks=chunks)


def chained_flaws(gt: np.ndarray, seed: int) -> np.ndarray:
    """Split cells axially twice over, so that some cells become chains A-B-C."""
    once = synthesize_flaws(gt, split_fraction=0.5, random_state=seed).labels
    twice = synthesize_flaws(once, split_fraction=0.5, hard_negatives=False, random_state=seed + 1)
    return readonly(twice.labels)


def run(corrector, volume, *, n_jobs=None, **kwargs):
    """``corrector.correct`` at a given ``n_jobs``, leaving the shared corrector as it was."""
    before = corrector.n_jobs
    corrector.set_params(n_jobs=n_jobs)
    try:
        return corrector.correct(volume, **kwargs)
    finally:
        corrector.set_params(n_jobs=before)


def assert_same(result, reference) -> None:
    out, decisions = result
    ref_out, ref_decisions = reference
    out = np.asarray(out[:])
    assert out.dtype == ref_out.dtype
    assert list(decisions.columns) == list(ref_decisions.columns)
    assert decisions.index.equals(ref_decisions.index)
    differing = {
        column: int((~_equal_or_both_nan(decisions[column], ref_decisions[column])).sum())
        for column in ref_decisions.columns
    }
    assert {c: n for c, n in differing.items() if n} == {}
    assert decisions.equals(ref_decisions)
    assert int((out != ref_out).sum()) == 0


def _equal_or_both_nan(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.to_numpy(), b.to_numpy()
    same = a == b
    if a.dtype.kind == "f":
        same |= np.isnan(a) & np.isnan(b)
    return same


@pytest.fixture(scope="module")
def axial_corrector():
    return load_pretrained()


def _real_volume(plant_tissue) -> np.ndarray:
    # The shipped model expects 4:1:1 volumes: take every 4th layer of the 1:1 tissue.
    return chained_flaws(np.ascontiguousarray(plant_tissue[::4, :96, :96]), seed=0)


def _synthetic_volume() -> np.ndarray:
    gt = make_tissue((24, 64, 64), cell_size=(40, 24, 24), anisotropy=4, random_state=0)
    return chained_flaws(gt, seed=0)


@pytest.fixture(
    scope="module", params=[pytest.param("real", marks=pytest.mark.needs_data), "synthetic"]
)
def flawed(request):
    """A flawed volume with merges and chains: real tissue (``needs_data``: skipped without
    the real-data folder) and synthetic tissue (always there, so a clone still tests the
    engine)."""
    if request.param == "real":
        return _real_volume(request.getfixturevalue("plant_tissue"))
    return _synthetic_volume()


@pytest.fixture(scope="module")
def reference(axial_corrector, flawed):
    """numpy input, one job, default slabs: what every other way must reproduce."""
    before = flawed.copy()
    out, decisions = run(axial_corrector, flawed, n_jobs=1)
    assert np.array_equal(flawed, before)
    return out, decisions


# ------------------------------------------------------------- 1. identity matrix


def test_reference_is_not_trivial(flawed, reference):
    out, decisions = reference
    assert isinstance(out, np.ndarray) and out.shape == flawed.shape
    assert out.dtype == flawed.dtype
    n_merged = int(decisions["merged"].sum())
    assert n_merged >= 5
    # Chains: pairs judged again after their upper cell absorbed the one above.
    rejudged = decisions["probability_rejudged"].notna()
    assert rejudged.sum() >= 2
    assert (rejudged & decisions["merged"]).any()
    # Gaps of merged chains were filled (the read-back-from-canvas path).
    assert decisions.loc[rejudged & decisions["merged"], "filled_voxels"].sum() > 0
    # Merging removed exactly the merged ids from the volume.
    gone = set(np.unique(flawed)) - set(np.unique(out))
    assert gone == set(decisions.loc[decisions["merged"], "cell_b"].astype(int))
    assert len(np.unique(out)) == len(np.unique(flawed)) - n_merged


@pytest.mark.parametrize("slab_layers", [1, 3, 7])
def test_numpy_any_slab_depth(axial_corrector, flawed, reference, slab_layers):
    assert_same(run(axial_corrector, flawed, n_jobs=1, slab_layers=slab_layers), reference)


def test_numpy_two_processes(axial_corrector, flawed, reference):
    assert_same(run(axial_corrector, flawed, n_jobs=2, slab_layers=5), reference)


def test_numpy_threading_backend(axial_corrector, flawed, reference):
    with parallel_config(backend="threading"):
        assert_same(run(axial_corrector, flawed, n_jobs=2, slab_layers=3), reference)


def test_zarr_in_zarr_out_two_processes(axial_corrector, flawed, reference, tmp_path):
    source = to_zarr(tmp_path / "in.zarr", flawed)
    target = empty_zarr(tmp_path / "out.zarr", flawed)
    out, decisions = run(axial_corrector, source, n_jobs=2, out=target, slab_layers=5)
    assert out is target
    assert_same((out, decisions), reference)
    # The source on disk is untouched.
    assert np.array_equal(source[:], flawed)


def test_zarr_in_numpy_result(axial_corrector, flawed, reference, tmp_path):
    source = to_zarr(tmp_path / "in.zarr", flawed, chunks=(3, 40, 40))
    out, decisions = run(axial_corrector, source, n_jobs=1, slab_layers=6)
    assert isinstance(out, np.ndarray)
    assert_same((out, decisions), reference)
    assert np.array_equal(source[:], flawed)


def test_numpy_in_zarr_out(axial_corrector, flawed, reference, tmp_path):
    target = empty_zarr(tmp_path / "out.zarr", flawed, chunks=(5, 64, 64))
    out, decisions = run(axial_corrector, flawed, n_jobs=1, out=target, slab_layers=4)
    assert out is target
    assert_same((out, decisions), reference)


def test_numpy_out_argument(axial_corrector, flawed, reference):
    target = np.full(flawed.shape, 7, dtype=flawed.dtype)
    out, decisions = run(axial_corrector, flawed, n_jobs=1, out=target)
    assert out is target
    assert_same((out, decisions), reference)


def test_read_only_memmap_input(axial_corrector, flawed, reference, tmp_path):
    path = tmp_path / "v.raw"
    flawed.tofile(path)
    mapped = np.memmap(path, dtype=flawed.dtype, mode="r", shape=flawed.shape)
    out, decisions = run(axial_corrector, mapped, n_jobs=1, slab_layers=7)
    assert isinstance(out, np.ndarray) and not isinstance(out, np.memmap)
    assert_same((out, decisions), reference)


# --------------------------------------------------------------- 2. dask cluster


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_distributed_backend(axial_corrector, dask_client, tmp_path):
    from distributed import get_task_stream

    volume = _synthetic_volume()
    reference = run(axial_corrector, volume, n_jobs=1)
    source = to_zarr(tmp_path / "in.zarr", volume, chunks=(4, 32, 32))
    target = empty_zarr(tmp_path / "out.zarr", volume, chunks=(4, 32, 32))
    # The corrector's default n_jobs=None defers to the dask backend's own default.
    with get_task_stream(dask_client) as stream, parallel_config(backend="dask"):
        out, decisions = run(axial_corrector, source, n_jobs=None, out=target, slab_layers=4)
    assert out is target
    assert_same((out, decisions), reference)
    # The work really ran on the cluster's workers, not silently in this process: at
    # least one task per slab of the index (6 slabs of 4 layers).
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= volume.shape[0] // 4
    assert workers and workers <= set(dask_client.scheduler_info()["workers"])


# ------------------------------------------------------------ 3. slab-wise index


def _index_volume_fixture(huge: bool) -> np.ndarray:
    """Cells spanning several slabs, ragged in-plane, with empty layers 8-11."""
    gt = make_tissue((20, 24, 24), cell_size=(30, 10, 10), anisotropy=4, random_state=2)
    gt = gt.astype(np.uint64)
    gt[1:19, 18:23, 19:24] = gt.max() + 1  # a tall cell that the empty slab cuts in two
    gt[8:12] = 0  # an all-background slab for slab_layers=4
    gt[:, :5, :7] = 0  # background in-plane, so bounding boxes are not the whole plane
    gt[14:, 15:, :10] = 0
    if huge:
        # Sparse ids far above any dense lookup table: only the upper cells get them, so
        # some slabs hold small ids only and others huge ones.
        top = np.unique(gt[:8])
        low = np.isin(gt, top) & (gt > 0)
        gt = np.where(low, gt, gt * np.uint64(7919) + np.uint64(2**40))
        gt[gt == np.uint64(2**40)] = 0
    return readonly(gt)


@pytest.mark.parametrize("huge", [False, True], ids=["dense-ids", "huge-ids"])
@pytest.mark.parametrize("slab_layers", [1, 4, 100])
def test_index_volume_slabwise_equals_whole(tmp_path, huge, slab_layers):
    volume = _index_volume_fixture(huge)
    expected = CellIndex.from_volume(volume)
    assert len(expected) >= 10
    source = to_zarr(tmp_path / "v.zarr", volume, chunks=(3, 16, 16))
    index = index_volume(source, slab_layers=slab_layers)
    assert index.volume is source
    for field in ("labels", "bboxes", "voxel_counts"):
        got, want = getattr(index, field), getattr(expected, field)
        assert got.dtype == np.int64, field
        assert np.array_equal(got, want), field
    if huge:
        assert expected.lookup is None and index.lookup is None
        assert int(index.labels.max()) > 2**40
    else:
        assert np.array_equal(index.lookup, expected.lookup)
    # By hand: the tall cell cut in two by the empty layers 8-11.
    row = index.position(int(volume[1, 18, 19]))
    assert index.voxel_counts[row] == (18 - 4) * 5 * 5
    assert index.bboxes[row].tolist() == [1, 19, 18, 23, 19, 24]


def test_index_volume_in_threads_and_numpy_passthrough(tmp_path):
    volume = _index_volume_fixture(huge=False)
    expected = CellIndex.from_volume(volume)
    source = to_zarr(tmp_path / "v.zarr", volume, chunks=(2, 24, 24))
    with parallel_config(backend="threading", n_jobs=2):
        index = index_volume(source, slab_layers=3)
    assert np.array_equal(index.bboxes, expected.bboxes)
    assert np.array_equal(index.voxel_counts, expected.voxel_counts)
    # A numpy volume is indexed in one go and keeps the array itself.
    assert index_volume(volume).volume is volume


def test_index_volume_all_background_zarr(tmp_path):
    source = to_zarr(tmp_path / "v.zarr", np.zeros((6, 8, 8), dtype=np.uint32))
    index = index_volume(source, slab_layers=2)
    assert len(index) == 0
    assert index.bboxes.shape == (0, 6)


# ------------------------------------------------------ 4. slab-partitioned screening


def _straddle_volume() -> np.ndarray:
    """Hand-built pairs: (1, 2) across one blank layer 4, (4, 5) across blank layers 7-8."""
    v = np.zeros((12, 10, 12), dtype=np.uint16)
    v[0:4, 2:8, 2:8] = 1  # 36 px per layer, last layer 3
    v[5:9, 2:8, 2:8] = 2  # first layer 5: gap of 1 at z=4
    v[0:7, 8:10, 0:10] = 4  # 20 px per layer, last layer 6
    v[9:12, 8:10, 0:10] = 5  # first layer 9: gap of 2 at z=7, 8
    v[0:12, 0:2, 10:12] = 3  # a column through the whole stack: in no pair
    v[9:12, 2:8, 2:8] = 6  # directly under 2 (no gap): pair (2, 6), gap 0
    return readonly(v)


def _partitions(n_z: int) -> list[list[tuple[int, int]]]:
    cuts = [[s] for s in range(1, n_z)] + [[3, 4], [4, 5, 7], [6, 7, 8, 9], list(range(1, n_z))]
    return [list(zip([0, *c], [*c, n_z], strict=True)) for c in cuts]


def test_screen_by_slabs_equals_whole_by_hand():
    volume = _straddle_volume()
    index = CellIndex.from_volume(volume)
    whole = screen_axial_pairs(index, max_gap=2)
    found = {
        (int(index.labels[a]), int(index.labels[b]), int(g)): (int(o), int(aa), int(ab))
        for a, b, g, o, aa, ab in whole.to_numpy().tolist()
    }
    assert found == {
        (1, 2, 1): (36, 36, 36),
        (4, 5, 2): (20, 20, 20),
        (2, 6, 0): (36, 36, 36),
    }
    for partition in _partitions(volume.shape[0]):
        parts = [screen_axial_pairs(index, max_gap=2, z_range=r) for r in partition]
        joined = sort_pairs(pd.concat(parts, ignore_index=True))
        assert joined.equals(whole), partition
        # Each pair is found by exactly the slab holding its upper cell's last layer.
        for (start, stop), part in zip(partition, parts, strict=True):
            z_last = index.z_last[part["pos_a"].to_numpy()]
            assert ((z_last >= start) & (z_last < stop)).all()
            assert len(part) == sum(start <= z < stop for z in (3, 6, 8))


def test_screen_by_slabs_equals_whole_on_flawed_tissue(flawed):
    index = CellIndex.from_volume(flawed)
    n_z = flawed.shape[0]
    whole = screen_axial_pairs(index, max_gap=2, min_overlap=5)
    assert len(whole) >= 20
    rng = np.random.default_rng(0)
    for _ in range(4):
        cuts = sorted(rng.choice(np.arange(1, n_z), size=int(rng.integers(1, 6)), replace=False))
        partition = list(zip([0, *cuts], [*cuts, n_z], strict=True))
        parts = [screen_axial_pairs(index, max_gap=2, min_overlap=5, z_range=r) for r in partition]
        joined = sort_pairs(pd.concat(parts, ignore_index=True))
        assert joined.equals(whole), partition
        assert not joined.duplicated(["pos_a", "pos_b", "gap"]).any()


# ------------------------------------------------------------------ 5. canvases


def test_lazy_canvas_matches_array_canvas(tmp_path):
    rng = np.random.default_rng(0)
    source_np = make_tissue((10, 80, 80), mode="loose", random_state=3)
    source_np = readonly(source_np)
    source = to_zarr(tmp_path / "src.zarr", source_np, chunks=(3, 32, 32))
    array = ArrayCanvas(np.array(source_np, copy=True))
    # A cache of a few chunks forces evictions and re-reads.
    lazy = LazyCanvas(source, cache_bytes=3 * 3 * 32 * 32 * source_np.itemsize)
    shape = source_np.shape
    whole = (0, shape[0], 0, shape[1], 0, shape[2])
    roots = sorted(int(i) for i in np.unique(source_np) if i)
    assert len(roots) >= 20
    n_relabels = n_paints = painted_over_cells = 0
    for step in range(60):
        if rng.random() < 0.4 and len(roots) > 2:
            old, new = (int(v) for v in rng.choice(roots, size=2, replace=False))
            array.relabel(whole, old, new)
            lazy.relabel(whole, old, new)
            roots.remove(old)
            n_relabels += 1
        else:
            label = int(rng.choice(roots))
            n = int(rng.integers(1, 4))
            h, w = (int(v) for v in rng.integers(5, 40, size=2))
            z0 = int(rng.integers(0, shape[0] - n + 1))
            y0 = int(rng.integers(0, shape[1] - h + 1))
            x0 = int(rng.integers(0, shape[2] - w + 1))
            masks = rng.random((n, h, w)) < 0.6
            only_background = bool(rng.random() < 0.5)
            before = array.read(z0, z0 + n, y0, y0 + h, x0, x0 + w).copy()
            count = array.paint(z0, y0, x0, masks, label, only_background)
            assert lazy.paint(z0, y0, x0, masks, label, only_background) == count, step
            changed = before != array.read(z0, z0 + n, y0, y0 + h, x0, x0 + w)
            assert int(changed.sum()) == count
            painted_over_cells += int((changed & (before != 0)).sum())
            n_paints += 1
        # Every read agrees: the whole volume and a random box.
        assert np.array_equal(lazy.read(*whole), array.read(*whole)), step
        z0, y0, x0 = (int(rng.integers(0, s)) for s in shape)
        box = (z0, int(rng.integers(z0 + 1, shape[0] + 1)), y0)
        box += (
            int(rng.integers(y0 + 1, shape[1] + 1)),
            x0,
            int(rng.integers(x0 + 1, shape[2] + 1)),
        )
        assert np.array_equal(lazy.read(*box), array.read(*box)), (step, box)
    assert n_relabels >= 10 and n_paints >= 20
    assert painted_over_cells > 0  # only_background=False did overwrite cells
    expected = array.out
    assert not np.array_equal(expected, source_np)
    # Writing: into Zarr with slabs that are not a multiple of its chunks, and into numpy.
    target = empty_zarr(tmp_path / "out.zarr", source_np, chunks=(3, 40, 40))
    with parallel_config(backend="threading"):
        assert lazy.write(target, slab_layers=2, n_jobs=2) is target
    assert np.array_equal(target[:], expected)
    out = np.zeros_like(source_np)
    assert lazy.write(out, slab_layers=4) is out
    assert np.array_equal(out, expected)
    assert np.array_equal(source[:], source_np)  # the source is never written
    old, new = lazy.relabel_table()
    assert len(old) == n_relabels and np.all(np.isin(new, roots))


# --------------------------------------------------------------------- 6. errors


@pytest.fixture(scope="module")
def small_volume() -> np.ndarray:
    v = np.zeros((6, 8, 8), dtype=np.uint16)
    v[0:2, 2:6, 2:6] = 1
    v[3:6, 2:6, 2:6] = 2
    return readonly(v)


@pytest.mark.parametrize(
    ("make_out", "match"),
    [
        (lambda v: np.zeros((6, 8, 9), dtype=v.dtype), r"shape \(6, 8, 9\)"),
        (lambda v: np.zeros(v.shape, dtype=np.uint32), "dtype uint32"),
        (lambda v: readonly(np.zeros(v.shape, dtype=v.dtype)), "read-only"),
    ],
    ids=["shape", "dtype", "read-only"],
)
def test_bad_out_is_refused(axial_corrector, small_volume, make_out, match):
    with pytest.raises(ValueError, match=match):
        axial_corrector.correct(small_volume, out=make_out(small_volume))


def test_out_cannot_be_the_input(axial_corrector, small_volume, tmp_path):
    writable = np.array(small_volume, copy=True)
    with pytest.raises(ValueError, match="input"):
        axial_corrector.correct(writable, out=writable)
    assert np.array_equal(writable, small_volume)
    source = to_zarr(tmp_path / "v.zarr", small_volume)
    with pytest.raises(ValueError, match="input"):
        axial_corrector.correct(source, out=source)
    assert np.array_equal(source[:], small_volume)
    wrong = empty_zarr(tmp_path / "w.zarr", np.zeros((6, 8, 8), dtype=np.int32))
    with pytest.raises(ValueError, match="dtype int32"):
        axial_corrector.correct(source, out=wrong)


@pytest.mark.parametrize("slab_layers", [0, -3, True, 2.5])
def test_bad_slab_layers(axial_corrector, small_volume, slab_layers):
    with pytest.raises(ValueError, match="slab_layers"):
        axial_corrector.correct(small_volume, slab_layers=slab_layers)


def test_bad_zarr_volumes(axial_corrector, tmp_path):
    empty = to_zarr(tmp_path / "empty.zarr", np.zeros((9, 8, 8), dtype=np.uint16))
    with pytest.raises(ValueError, match="background"):
        axial_corrector.correct(empty, slab_layers=2)
    floats = to_zarr(tmp_path / "f.zarr", np.ones((4, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="float32"):
        axial_corrector.correct(floats)
    negative = np.ones((9, 8, 8), dtype=np.int32)
    negative[7, 3, 3] = -5  # in the last slab only: found while indexing slab by slab
    signed = to_zarr(tmp_path / "n.zarr", negative, chunks=(2, 8, 8))
    with pytest.raises(ValueError, match="negative"):
        axial_corrector.correct(signed, slab_layers=3)
    with pytest.raises(ValueError, match="3D"):
        axial_corrector.correct(to_zarr(tmp_path / "2d.zarr", np.ones((8, 8), np.uint8), (8, 8)))


# --------------------------------------------------------------- 7. contact mode


def test_contact_mode_zarr_equals_numpy(tmp_path):
    corrector = load_pretrained(kind="both")
    gt = make_tissue((20, 48, 48), cell_size=(40, 24, 24), anisotropy=4, random_state=1)
    volume = readonly(
        synthesize_flaws(gt, split_fraction=0.3, tilted_fraction=0.5, random_state=1).labels
    )
    reference = corrector.correct(volume)
    decisions = reference[1]
    merged_kinds = set(decisions.loc[decisions["merged"], "kind"])
    assert merged_kinds == {"axial", "contact"}
    source = to_zarr(tmp_path / "in.zarr", volume, chunks=(4, 32, 32))
    target = empty_zarr(tmp_path / "out.zarr", volume, chunks=(4, 32, 32))
    out, decisions = corrector.correct(source, out=target, slab_layers=5)
    assert out is target
    assert_same((out, decisions), reference)
    assert_same(corrector.correct(source, slab_layers=3), reference)


# ------------------------------------------------------------ review regressions


def test_sharded_zarr_out_written_in_parallel(axial_corrector, flawed, reference, tmp_path):
    """Shards, not chunks, are the unit of a Zarr v3 write: boxes must follow them."""
    shape = flawed.shape
    out = zarr.create_array(
        store=str(tmp_path / "sharded.zarr"),
        shape=shape,
        dtype=flawed.dtype,
        chunks=(2, 32, 32),
        shards=(min(8, shape[0]), 64, 64),
    )
    result = run(axial_corrector, flawed, n_jobs=2, out=out, slab_layers=2)
    assert_same(result, reference)


def test_in_memory_zarr_store_out_with_two_processes(axial_corrector, flawed, reference):
    """A MemoryStore cannot be reached by workers: it is written from this process."""
    out = zarr.create_array(
        store=zarr.storage.MemoryStore(),
        shape=flawed.shape,
        dtype=flawed.dtype,
        chunks=(4, 32, 32),
    )
    result = run(axial_corrector, flawed, n_jobs=2, out=out, slab_layers=3)
    assert_same(result, reference)


@pytest.mark.parametrize("only_background", [True, False])
def test_prefilled_interpolations_change_nothing(
    axial_corrector, flawed, monkeypatch, only_background
):
    """Interpolations computed ahead must equal those computed at each merge's turn."""
    import sklearn_overseg.correction.blockwise as blockwise

    corrector = axial_corrector
    before = corrector.only_background
    corrector.set_params(only_background=only_background)
    try:
        with_prefill = run(corrector, flawed)
        # No masks computed ahead: every merge reads its end masks back from the canvas.
        monkeypatch.setattr(blockwise, "prefill", lambda *args, **kwargs: None)
        on_the_spot = run(corrector, flawed)
    finally:
        corrector.set_params(only_background=before)
    assert with_prefill[1]["merged"].sum() > 5
    assert_same(with_prefill, (np.asarray(on_the_spot[0]), on_the_spot[1]))


def test_out_sharing_memory_with_the_input_is_refused(axial_corrector, small_volume):
    volume = np.array(small_volume, copy=True)
    with pytest.raises(ValueError, match="shares memory"):
        axial_corrector.correct(volume, out=volume.view())
    with pytest.raises(ValueError, match="shares memory"):
        axial_corrector.correct(volume, out=volume[:, :, :])


def test_read_only_zarr_out_is_refused_before_any_work(axial_corrector, small_volume, tmp_path):
    empty_zarr(tmp_path / "ro.zarr", small_volume)
    read_only = zarr.open_array(str(tmp_path / "ro.zarr"), mode="r")
    with pytest.raises(ValueError, match="read-only"):
        axial_corrector.correct(small_volume, out=read_only)


def test_open_volume_paths_survive_a_change_of_directory(tmp_path, monkeypatch):
    """Workers may run elsewhere: lazy volumes must not hold relative paths."""
    import pickle

    import h5py

    from sklearn_overseg.io.volumes import open_volume

    volume = np.arange(1, 2 * 3 * 4 + 1, dtype=np.uint16).reshape(2, 3, 4)
    to_zarr(tmp_path / "v.zarr", volume)
    with h5py.File(tmp_path / "v.h5", "w") as handle:
        handle.create_dataset("labels", data=volume, chunks=(1, 3, 4))
    monkeypatch.chdir(tmp_path)
    opened = [open_volume("v.zarr"), open_volume("v.h5")]
    blobs = [pickle.dumps(v) for v in opened]
    monkeypatch.chdir(tmp_path.parent)
    for blob in blobs:
        np.testing.assert_array_equal(np.asarray(pickle.loads(blob)[0:2]), volume)

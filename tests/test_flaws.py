"""Tests of the flaw synthesis: exact geometry of each flaw and exact round trips to GT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.optimize import linprog

from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import (
    HARD_NEGATIVE_COLUMNS,
    MERGE_COLUMNS,
    FlawedVolume,
    blank_interfaces,
    cut_cells_tilted,
    hallucinate_masks,
    shrink_masks,
    split_cells_axial,
    synthesize_flaws,
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    return _readonly(make_tissue((24, 64, 64), random_state=3).astype(np.uint16))


def _column() -> np.ndarray:
    """Cell 1: a 4x4 column over z=1..5; cell 2: z=0..1 only (too short to split)."""
    gt = np.zeros((8, 10, 10), dtype=np.uint16)
    gt[1:6, 2:6, 2:6] = 1
    gt[0:2, 6:9, 6:9] = 2
    return _readonly(gt)


def _layers(vol: np.ndarray, cell: int) -> np.ndarray:
    return np.flatnonzero((vol == cell).any(axis=(1, 2)))


def _restore(flawed: FlawedVolume, gt: np.ndarray) -> np.ndarray:
    """Merge every pair back and refill every blanked layer from the ground truth."""
    lut = np.arange(int(flawed.labels.max()) + 1, dtype=np.int64)
    lut[flawed.merges.cell_b.to_numpy()] = flawed.merges.cell_a.to_numpy()
    restored = lut[flawed.labels]
    holes = (restored == 0) & (gt != 0)
    # The only voxels to refill are the blanked layers of the listed cells.
    blanked = {(a, z + k) for a, z, g in flawed.merges[["cell_a", "z", "gap"]].to_numpy()
               for k in range(g)}  # fmt: skip
    blanked |= set(map(tuple, flawed.hard_negatives[["cell_a", "z"]].to_numpy()))
    found = set(zip(gt[holes].tolist(), np.nonzero(holes)[0].tolist(), strict=True))
    assert found == blanked
    restored[holes] = gt[holes]
    return restored


def _check_axial(gt: np.ndarray, fv: FlawedVolume) -> None:
    out = fv.labels
    boxes = ndimage.find_objects(out)
    for a, b, flaw, z, gap in fv.merges.itertuples(index=False):
        if flaw == "tilted":
            continue
        za = _layers(out[boxes[a - 1]], a) + boxes[a - 1][0].start
        zb = _layers(out[boxes[b - 1]], b) + boxes[b - 1][0].start
        assert za.max() == z - 1 and zb.min() == z + gap
        assert (out[z : z + gap] == a).sum() == 0 and (out[z : z + gap] == b).sum() == 0
        if gap:
            assert np.all(out[z : z + gap][gt[z : z + gap] == a] == 0)
        # The parts face each other across the gap.
        assert np.any((out[z - 1] == a) & (out[z + gap] == b))


def _check_hard_negatives(gt: np.ndarray, fv: FlawedVolume) -> None:
    out = fv.labels
    cells = np.concatenate([fv.hard_negatives.cell_a, fv.hard_negatives.cell_b])
    assert len(set(cells.tolist())) == len(cells)  # each cell in at most one pair
    for a, b, z, gap in fv.hard_negatives.itertuples(index=False):
        assert gap == 1 and a != b
        assert _layers(out, a).max() == z - 1 and _layers(out, b).min() == z + 1
        assert _layers(gt, a).max() == z and _layers(gt, b).min() == z + 1
        assert np.any((out[z - 1] == a) & (out[z + 1] == b))


# ------------------------------------------------------------------ axial splits


def test_split_hand_made_column():
    gt = _column()
    cuts = set()
    for seed in range(30):
        fv = split_cells_axial(gt, 1.0, random_state=seed)
        assert fv.merges.shape == (1, 5)
        a, b, flaw, z, gap = fv.merges.iloc[0]
        assert (a, b, flaw, gap) == (1, 3, "blank", 1)
        assert z in (2, 3, 4)  # interior layers of z=1..5
        expected = gt.copy()
        expected[z, 2:6, 2:6] = 0
        expected[z + 1 : 6, 2:6, 2:6] = 3
        np.testing.assert_array_equal(fv.labels, expected)
        assert fv.hard_negatives.empty
        cuts.add(int(z))
    assert cuts == {2, 3, 4}


def test_split_n_blank_and_relabel_hand_made():
    gt = _column()
    fv = split_cells_axial(gt, 1.0, n_blank=2, random_state=0)
    _, _, _, z, gap = fv.merges.iloc[0]
    assert gap == 2 and z in (2, 3)
    assert _layers(fv.labels, 1).max() == z - 1 and _layers(fv.labels, 3).min() == z + 2

    fv = split_cells_axial(gt, 1.0, blank=False, random_state=0)
    _, _, flaw, z, gap = fv.merges.iloc[0]
    assert (flaw, gap) == ("relabel", 0) and z in (2, 3, 4, 5)
    assert _layers(fv.labels, 1).max() == z - 1 and _layers(fv.labels, 3).min() == z
    assert np.count_nonzero(fv.labels) == np.count_nonzero(gt)


def test_split_requires_overlap():
    # The column shifts sideways at z=3 so that z=2 and z=4 do not overlap.
    gt = np.zeros((6, 10, 12), dtype=np.int32)
    gt[0:3, 2:6, 0:4] = 1
    gt[3, 2:6, 0:8] = 1
    gt[4:6, 2:6, 5:9] = 1
    fv = split_cells_axial(gt, 1.0, random_state=0)
    assert fv.merges.z.tolist() in ([1], [2], [4])  # never across z=3
    assert split_cells_axial(gt, 1.0, require_overlap=False, random_state=1).merges.size


def test_split_skips_layers_where_cell_is_absent():
    gt = np.zeros((7, 4, 4), dtype=np.uint8)
    gt[[0, 1, 2, 4, 5, 6], 1:3, 1:3] = 1  # a natural hole at z=3
    for seed in range(10):
        z = split_cells_axial(gt, 1.0, random_state=seed).merges.z.item()
        assert z in (1, 5)  # z=2 or 4 would need the absent layer 3 as a neighbour


def test_split_tissue_structure_and_roundtrip(tissue):
    before = tissue.copy()
    fv = split_cells_axial(tissue, 0.5, random_state=0)
    np.testing.assert_array_equal(tissue, before)
    assert list(fv.merges.columns) == list(MERGE_COLUMNS)
    n = len(fv.merges)
    assert n > 10
    top = int(tissue.max())
    assert fv.merges.cell_b.tolist() == list(range(top + 1, top + n + 1))
    assert fv.merges.cell_a.is_unique and (fv.merges.flaw == "blank").all()
    _check_axial(tissue, fv)
    np.testing.assert_array_equal(_restore(fv, tissue), tissue)
    # Untouched cells are untouched.
    other = ~np.isin(tissue, fv.merges.cell_a)
    np.testing.assert_array_equal(fv.labels[other], tissue[other])


def test_split_count_is_fraction_of_eligible(tissue):
    every = split_cells_axial(tissue, 1.0, random_state=0).merges
    some = split_cells_axial(tissue, 0.3, random_state=0).merges
    assert len(some) == int(np.floor(0.3 * len(every) + 0.5))
    assert split_cells_axial(tissue, 0.0, random_state=0).merges.empty


def test_relabel_merge_back_is_exact(tissue):
    fv = split_cells_axial(tissue, 1.0, blank=False, random_state=2)
    assert (fv.merges.gap == 0).all()
    lut = np.arange(int(fv.labels.max()) + 1)
    lut[fv.merges.cell_b] = fv.merges.cell_a
    np.testing.assert_array_equal(lut[fv.labels], tissue)


def test_exclude(tissue):
    every = split_cells_axial(tissue, 1.0, random_state=0).merges.cell_a
    keep = every.iloc[:5].tolist()
    fv = split_cells_axial(tissue, 1.0, random_state=0, exclude=keep)
    assert not set(keep) & set(fv.merges.cell_a)
    assert len(fv.merges) == len(every) - 5


# ------------------------------------------------------------------ hard negatives


def test_blank_interfaces_hand_made():
    gt = np.zeros((10, 6, 6), dtype=np.uint16)
    gt[0:4, 1:5, 1:5] = 1  # A: z=0..3
    gt[4:8, 2:6, 2:6] = 2  # B: z=4..7, overlapping A's footprint
    gt[8:10, 0:2, 0:2] = 3  # C under B, but B's z=7 does not overlap C
    gt[8:10, 4:6, 4:6] = 4  # D under B and overlapping it
    fv = blank_interfaces(_readonly(gt), random_state=0)
    # (1, 2) and (2, 4) compete for cell 2; each cell is used once.
    assert len(fv.hard_negatives) == 1
    row = tuple(fv.hard_negatives.iloc[0])
    assert row in ((1, 2, 3, 1), (2, 4, 7, 1))
    a, _, z, _ = row
    expected = gt.copy()
    expected[z][expected[z] == a] = 0
    np.testing.assert_array_equal(fv.labels, expected)
    assert fv.merges.empty
    rows = {tuple(blank_interfaces(gt, random_state=s).hard_negatives.iloc[0]) for s in range(20)}
    assert rows == {(1, 2, 3, 1), (2, 4, 7, 1)}


def test_blank_interfaces_needs_three_layers_and_overlap():
    gt = np.zeros((6, 6, 6), dtype=np.uint16)
    gt[1:3, 1:5, 1:5] = 1  # only two layers: would keep one
    gt[3:6, 1:5, 1:5] = 2
    assert blank_interfaces(gt).hard_negatives.empty
    assert len(blank_interfaces(gt, min_overlap=16).hard_negatives) == 0
    gt[0, 1:5, 1:5] = 1
    assert len(blank_interfaces(gt, min_overlap=16).hard_negatives) == 1
    assert blank_interfaces(gt, min_overlap=17).hard_negatives.empty


def test_blank_interfaces_tissue(tissue):
    fv = blank_interfaces(tissue, random_state=0)
    assert list(fv.hard_negatives.columns) == list(HARD_NEGATIVE_COLUMNS)
    assert len(fv.hard_negatives) > 0
    _check_hard_negatives(tissue, fv)
    np.testing.assert_array_equal(_restore(fv, tissue), tissue)
    half = blank_interfaces(tissue, 0.5, random_state=0).hard_negatives
    assert len(half) == int(np.floor(0.5 * len(fv.hard_negatives) + 0.5))


# ------------------------------------------------------------------ tilted cuts


def _separable(p: np.ndarray, q: np.ndarray) -> bool:
    """Is there a plane w.x = c with p strictly on one side and q on the other?"""
    a_ub = np.vstack([np.c_[-p, np.ones(len(p))], np.c_[q, -np.ones(len(q))]])
    res = linprog(np.zeros(4), A_ub=a_ub, b_ub=-np.ones(len(a_ub)), bounds=[(None, None)] * 4)
    return res.status == 0


def test_separability_check_can_fail():
    p = np.array([[0, 0, 0], [2, 2, 2]])
    q = np.array([[1, 1, 1]])
    assert not _separable(p, q) and _separable(p[:1], q)


def test_tilted_cut_parts_separated_by_a_plane(tissue):
    fv = cut_cells_tilted(tissue, 0.3, min_part_voxels=20, random_state=0)
    m = fv.merges
    assert len(m) > 5 and (m.flaw == "tilted").all() and (m.z == -1).all()
    top = int(tissue.max())
    assert m.cell_b.tolist() == list(range(top + 1, top + len(m) + 1))
    lut = np.arange(int(fv.labels.max()) + 1)
    lut[m.cell_b] = m.cell_a
    np.testing.assert_array_equal(lut[fv.labels], tissue)  # no voxel lost
    for a, b in m[["cell_a", "cell_b"]].to_numpy()[:6]:
        pa, pb = np.argwhere(fv.labels == a), np.argwhere(fv.labels == b)
        assert len(pa) >= 20 and len(pb) >= 20
        assert _separable(pa.astype(float), pb.astype(float))


def test_tilted_zero_tilt_is_horizontal():
    gt = np.zeros((12, 8, 8), dtype=np.uint8)
    gt[1:11, 1:7, 1:7] = 5
    for seed in range(5):
        fv = cut_cells_tilted(gt, 1.0, max_tilt_deg=0, min_part_voxels=36, random_state=seed)
        assert fv.merges[["cell_a", "cell_b"]].values.tolist() == [[5, 6]]
        z_top, z_low = _layers(fv.labels, 5), _layers(fv.labels, 6)
        assert z_top.max() + 1 == z_low.min()  # cut between two layers, nothing blanked
        assert np.count_nonzero(fv.labels) == np.count_nonzero(gt)


def test_tilted_respects_min_part_voxels():
    gt = np.zeros((4, 4, 4), dtype=np.uint8)
    gt[1:3, 1:3, 1:3] = 1  # 8 voxels
    assert cut_cells_tilted(gt, 1.0, min_part_voxels=5).merges.empty


# ------------------------------------------------------------------ dtype


@pytest.mark.parametrize(
    ("dtype", "top", "expected"),
    [(np.uint8, 255, np.uint16), (np.uint8, 10, np.uint8), (np.int8, 127, np.int16),
     (np.uint16, 65535, np.uint32)],
)  # fmt: skip
def test_dtype_promotion(dtype, top, expected):
    gt = np.zeros((8, 10, 10), dtype=dtype)
    gt[1:6, 2:6, 2:6] = top
    fv = split_cells_axial(_readonly(gt), 1.0, random_state=0)
    assert fv.labels.dtype == expected
    assert fv.merges.cell_b.tolist() == [top + 1]
    assert np.count_nonzero(fv.labels == top + 1) > 0
    assert gt.dtype == dtype and gt.max() == top


@pytest.mark.parametrize("background", [0, 3])
def test_large_sparse_ids(background):
    gt = np.full((8, 10, 10), background, dtype=np.uint64)
    gt[1:6, 2:6, 2:6] = 2**40
    gt[0, 0, 0] = 7
    fv = split_cells_axial(gt, 1.0, random_state=0)
    # Without background, 3 is a cell too (and it comes first in id order).
    expected = [[2**40, 2**40 + 1]] if background == 0 else [[3, 2**40 + 1], [2**40, 2**40 + 2]]
    assert fv.merges[["cell_a", "cell_b"]].values.tolist() == expected
    assert np.count_nonzero(fv.labels == expected[-1][1]) > 0


# ------------------------------------------------------------------ shrink & hallucinate


def test_shrink_hand_made():
    gt = np.zeros((3, 9, 9), dtype=np.uint8)
    gt[1, 2:7, 2:7] = 1
    fv = shrink_masks(_readonly(gt), 1.0, random_state=0)
    expected = np.zeros_like(gt)
    expected[1, 3:6, 3:6] = 1
    np.testing.assert_array_equal(fv.labels, expected)
    assert fv.merges.empty and fv.hard_negatives.empty
    # A mask that would vanish is kept.
    gt[1, 2:7, 2:7] = 0
    gt[1, 4, 4] = 1
    np.testing.assert_array_equal(shrink_masks(gt, 1.0).labels, gt)


def test_shrink_tissue(tissue):
    fv = shrink_masks(tissue, 0.2, random_state=0)
    changed = fv.labels != tissue
    assert changed.any() and np.all(fv.labels[changed] == 0)
    for c in (1, 7, 20):  # no cell loses a layer
        np.testing.assert_array_equal(_layers(fv.labels, c), _layers(tissue, c))
    fv2 = shrink_masks(tissue, 0.2, random_state=0, exclude=range(1, int(tissue.max()) + 1))
    np.testing.assert_array_equal(fv2.labels, tissue)


def test_hallucinate(tissue):
    fv = hallucinate_masks(tissue, 6, radius=3, random_state=0)
    top = int(tissue.max())
    new = fv.labels > top
    assert sorted(np.unique(fv.labels[new]).tolist()) == list(range(top + 1, top + 7))
    for i in range(top + 1, top + 7):
        z, y, x = np.nonzero(fv.labels == i)
        assert len(set(z.tolist())) == 1
        inside = y.min() > 0 and x.min() > 0 and y.max() < 63 and x.max() < 63
        assert len(z) <= 29 and (not inside or len(z) == 29)  # 29 pixels in a radius-3 disk
    # No cell lost a whole layer.
    for c in range(1, top + 1):
        np.testing.assert_array_equal(_layers(fv.labels, c), _layers(tissue, c))
    np.testing.assert_array_equal(fv.labels[~new], tissue[~new])


# ------------------------------------------------------------------ combined


def test_synthesize_disjoint_and_roundtrip(tissue):
    fv = synthesize_flaws(tissue, split_fraction=0.3, tilted_fraction=0.2, random_state=0)
    m, h = fv.merges, fv.hard_negatives
    assert set(m.flaw) == {"blank", "tilted"} and len(h) > 0
    cells = np.concatenate([m.cell_a, m.cell_b, h.cell_a, h.cell_b])
    assert len(np.unique(cells)) == len(cells)  # each cell in at most one flaw
    _check_axial(tissue, fv)
    _check_hard_negatives(tissue, fv)
    np.testing.assert_array_equal(_restore(fv, tissue), tissue)


def test_determinism(tissue):
    kw = dict(split_fraction=0.3, tilted_fraction=0.2, shrink_fraction=0.05, n_hallucinations=3)
    a = synthesize_flaws(tissue, random_state=7, **kw)
    b = synthesize_flaws(tissue, random_state=np.random.RandomState(7), **kw)
    c = synthesize_flaws(tissue, random_state=8, **kw)
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.merges, b.merges)
    pd.testing.assert_frame_equal(a.hard_negatives, b.hard_negatives)
    assert not np.array_equal(a.labels, c.labels)
    assert not a.merges.equals(c.merges)


@pytest.mark.parametrize(
    "func",
    [split_cells_axial, blank_interfaces, cut_cells_tilted, shrink_masks, hallucinate_masks,
     synthesize_flaws],
)  # fmt: skip
def test_input_never_mutated(func, tissue):
    before = tissue.copy()
    fv = func(tissue, random_state=0)
    assert fv.labels is not tissue and not np.shares_memory(fv.labels, tissue)
    np.testing.assert_array_equal(tissue, before)


def test_empty_volume_is_fine():
    fv = synthesize_flaws(np.zeros((4, 5, 5), dtype=np.uint8), random_state=0)
    assert fv.merges.empty and not fv.labels.any()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda v: split_cells_axial(v, 1.5), ValueError, "fraction"),
        (lambda v: split_cells_axial(v, n_blank=0), ValueError, "n_blank"),
        (lambda v: split_cells_axial(v[0]), ValueError, "3D"),
        (lambda v: split_cells_axial(v.astype(float)), TypeError, "float"),
        (lambda v: split_cells_axial(v, exclude=[None]), TypeError, "exclude"),
        (lambda v: cut_cells_tilted(v, max_tilt_deg=100), ValueError, "max_tilt_deg"),
        (lambda v: cut_cells_tilted(v, spacing=(1, 0, 1)), ValueError, "spacing"),
        (lambda v: blank_interfaces(v, min_overlap=0), ValueError, "min_overlap"),
        (lambda v: shrink_masks(v, iterations=0), ValueError, "iterations"),
        (lambda v: hallucinate_masks(v, n_masks=-1), ValueError, "n_masks"),
        (lambda v: synthesize_flaws(v, tilted_fraction=-0.1), ValueError, "tilted_fraction"),
    ],
)
def test_bad_parameters(call, error, match):
    with pytest.raises(error, match=match):
        call(_column())


# ------------------------------------------------------------------ real data


@pytest.mark.parametrize("step", [1, 4])
def test_real_tissue(plant_tissue, step):
    gt = _readonly(plant_tissue[::step])
    fv = synthesize_flaws(gt, split_fraction=0.3, tilted_fraction=0.1, random_state=0)
    m = fv.merges
    assert (m.flaw == "blank").sum() >= 40 and (m.flaw == "tilted").sum() >= 10
    assert len(fv.hard_negatives) >= (1 if step == 1 else 5)
    assert fv.labels.dtype == np.uint16
    _check_axial(gt, fv)
    _check_hard_negatives(gt, fv)
    np.testing.assert_array_equal(_restore(fv, gt), gt)

"""synthesize_stitched / segment_layers: per-slice 2D faults, then IoU stitching."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage

import sklearn_overseg.synthesis.stitched_flaws as flaws_module
from sklearn_overseg.evaluation.metrics import mean_average_precision, repair_scores
from sklearn_overseg.stitch import stitch_slices
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.stitched_flaws import (
    StitchedVolume,
    segment_layers,
    synthesize_stitched,
)

_PERFECT = {"min_area": 0, "miss_rate": 0, "boundary_rate": 0, "cut_rate": 0}


def _convex_cells() -> np.ndarray:
    """Ellipsoids, a box and a column touching it: every cross-section is one 4-connected
    piece, and no cell ends right above another one."""
    z, y, x = np.mgrid[:14, :40, :48]
    gt = np.zeros((14, 40, 48), dtype=np.uint16)
    gt[((z - 6.5) ** 2 / 36 + (y - 10) ** 2 / 64 + (x - 10) ** 2 / 64) <= 1] = 1
    gt[((z - 7) ** 2 / 49 + (y - 28) ** 2 / 81 + (x - 12) ** 2 / 49) <= 1] = 2
    gt[2:12, 4:16, 24:36] = 3
    gt[:, 4:16, 36:46] = 4
    gt[((z - 5) ** 2 / 16 + (y - 28) ** 2 / 49 + (x - 34) ** 2 / 64) <= 1] = 5
    return gt


def _same_up_to_relabelling(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1])) and bool(
        ((pairs[0] == 0) == (pairs[1] == 0)).all()
    )


def _cross_sections(gt: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    return [
        (z, int(cell), gt[z] == cell)
        for z in range(gt.shape[0])
        for cell in np.unique(gt[z])
        if cell
    ]


# ------------------------------------------------------------------ no faults


@pytest.mark.parametrize(("k", "phase"), [(1, 0), (2, 1)])
def test_without_faults_the_ground_truth_comes_back_up_to_relabelling(k, phase):
    gt = _convex_cells()
    # A 1-pixel tip over 129 pixels two layers down: IoU 0.0078, linked at 0.005.
    result = synthesize_stitched(
        gt, **_PERFECT, iou_threshold=0.005, z_subsample=k, phase=phase, random_state=0
    )
    assert isinstance(result, StitchedVolume)
    np.testing.assert_array_equal(result.ground_truth, gt[phase::k])
    assert _same_up_to_relabelling(result.labels, result.ground_truth)
    assert mean_average_precision(result.labels, result.ground_truth) == 1.0
    scores = repair_scores(result.labels, result.labels, result.ground_truth)
    assert scores["split_links"] == 0 and scores["mAP_ceiling"] == 1.0
    assert result.settings["z_subsample"] == k and result.settings["phase"] == phase


def test_without_faults_the_slices_are_the_cross_sections():
    gt = _convex_cells()
    slices = segment_layers(gt, **_PERFECT, random_state=0)
    assert slices.dtype == np.int64
    # One mask per (layer, cell), ids never repeated across layers.
    sections = _cross_sections(gt)
    assert len(np.unique(slices[slices > 0])) == len(sections)
    for z, _, mask in sections:
        ids = np.unique(slices[z][mask])
        assert len(ids) == 1 and ids[0] > 0
        assert not np.isin(ids, slices[np.arange(gt.shape[0]) != z]).any()
    np.testing.assert_array_equal(slices > 0, gt > 0)


def test_a_high_threshold_breaks_chains_at_the_cell_tips():
    gt = _convex_cells()
    low = synthesize_stitched(gt, **_PERFECT, iou_threshold=0.01, random_state=0)
    high = synthesize_stitched(gt, **_PERFECT, iou_threshold=0.25, random_state=0)
    # Ellipsoid tips (1 px over 37 px) cannot reach IoU 0.25: those become pieces.
    assert repair_scores(high.labels, high.labels, gt)["split_links"] > 0
    assert high.labels.max() > low.labels.max() == gt.max()
    np.testing.assert_array_equal(low.slices, high.slices)


# ------------------------------------------------------------------ each fault


@pytest.mark.parametrize("min_area", [1, 40, 100, 150])
def test_min_area_drops_exactly_the_small_masks(min_area):
    gt = _convex_cells()
    slices = segment_layers(gt, **{**_PERFECT, "min_area": min_area}, random_state=0)
    for z, cell, mask in _cross_sections(gt):
        kept = bool(slices[z][mask].any())
        assert kept == (mask.sum() >= min_area), (z, cell, int(mask.sum()))
        if kept:
            assert (slices[z][mask] > 0).all()


def test_miss_rate_one_loses_everything_and_a_half_loses_about_half():
    gt = _convex_cells()
    assert not segment_layers(gt, **{**_PERFECT, "miss_rate": 1.0}, random_state=0).any()
    n = len(_cross_sections(gt))
    kept = [
        len(np.unique(segment_layers(gt, **{**_PERFECT, "miss_rate": 0.5}, random_state=s))) - 1
        for s in range(4)
    ]
    assert all(0.3 * n < k < 0.7 * n for k in kept), (kept, n)
    # A missed mask leaves a hole in its cell's stack: the stitched cell breaks in two.
    result = synthesize_stitched(
        gt, **{**_PERFECT, "miss_rate": 0.3}, iou_threshold=0.01, random_state=0
    )
    assert repair_scores(result.labels, result.labels, gt)["split_links"] > 0


def test_cut_rate_creates_pieces_that_share_a_layer():
    gt = _convex_cells()
    slices = segment_layers(gt, **{**_PERFECT, "cut_rate": 1.0}, random_state=0)
    pieces = [len(np.unique(slices[z][mask])) for z, _, mask in _cross_sections(gt)]
    # Every mask of two or more pixels is cut in two (a line through its centroid).
    big = [p for p, (_, _, m) in zip(pieces, _cross_sections(gt), strict=True) if m.sum() > 1]
    assert min(big) == 2 and max(pieces) == 2
    np.testing.assert_array_equal(slices > 0, gt > 0)
    result = synthesize_stitched(
        gt, **{**_PERFECT, "cut_rate": 0.2}, iou_threshold=0.01, random_state=1
    )
    # Some layer holds two stitched labels of one cell side by side.
    assert any(len(np.unique(result.labels[z][mask])) == 2 for z, _, mask in _cross_sections(gt))
    none = synthesize_stitched(gt, **_PERFECT, iou_threshold=0.01, random_state=1)
    assert all(len(np.unique(none.labels[z][mask])) == 1 for z, _, mask in _cross_sections(gt))


def test_boundary_faults_erode_or_dilate_by_one_pixel():
    gt = _convex_cells()
    slices = segment_layers(gt, **{**_PERFECT, "boundary_rate": 1.0}, random_state=0)
    cross = ndimage.generate_binary_structure(2, 1)
    eroded = dilated = 0
    for z, _, mask in _cross_sections(gt):
        ids = np.unique(slices[z][mask])
        ids = ids[ids > 0]
        if mask.sum() < 10 or len(ids) != 1:
            continue
        mine = slices[z] == ids[0]
        if (mine & ~mask).any():
            dilated += 1
            # Grown by at most one pixel, into what was background (or freed by a
            # neighbour's erosion), never taking a neighbour's remaining pixels.
            assert (mine >= mask).all()
            assert not (mine & ~ndimage.binary_dilation(mask, cross)).any()
        else:
            eroded += 1
            expected = ndimage.binary_erosion(mask, cross, border_value=1)
            np.testing.assert_array_equal(mine, expected)
    assert eroded > 5 and dilated > 5
    same = segment_layers(gt, **_PERFECT, random_state=0)
    np.testing.assert_array_equal(segment_layers(gt, **{**_PERFECT, "boundary_rate": 0.0}), same)


# ------------------------------------------------------------------ settings and ranges


def test_same_seed_same_result_and_ranges_vary_with_the_seed():
    gt = make_tissue((16, 48, 48), cell_size=(16, 16, 16), random_state=0)
    grid = {
        "min_area": (10, 60),
        "miss_rate": (0.0, 0.1),
        "iou_threshold": (0.1, 0.5),
        "z_subsample": (1, 4),
    }
    first = synthesize_stitched(gt, **grid, random_state=3)
    again = synthesize_stitched(gt, **grid, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.slices, again.slices)
    assert first.settings == again.settings
    other = synthesize_stitched(gt, **grid, random_state=4)
    assert other.settings != first.settings


def test_ranges_are_drawn_within_their_bounds_and_recorded():
    gt = _convex_cells()
    grid = {
        "min_area": (10, 60),
        "miss_rate": (0.0, 0.1),
        "boundary_rate": (0.2, 0.4),
        "cut_rate": (0.0, 0.05),
        "iou_threshold": (0.1, 0.5),
        "z_subsample": (1, 4),
    }
    seen = {name: [] for name in [*grid, "phase"]}
    for seed in range(25):
        result = synthesize_stitched(gt, **grid, random_state=seed)
        settings = result.settings
        assert set(settings) == set(seen)
        for name, (lo, hi) in grid.items():
            assert lo <= settings[name] <= hi, (name, settings[name])
            seen[name].append(settings[name])
        k = settings["z_subsample"]
        assert isinstance(k, int) and isinstance(settings["min_area"], int)
        assert 0 <= settings["phase"] < k
        np.testing.assert_array_equal(result.ground_truth, gt[settings["phase"] :: k])
        assert result.labels.shape == result.slices.shape == result.ground_truth.shape
    # The whole integer range is reachable, and floats are not stuck at an end.
    assert set(seen["z_subsample"]) == {1, 2, 3, 4}
    assert len(set(seen["min_area"])) > 10
    assert 0.1 < min(seen["iou_threshold"]) < 0.3 and 0.3 < max(seen["iou_threshold"]) < 0.5


def test_fixed_settings_are_recorded_as_given():
    result = synthesize_stitched(
        _convex_cells(),
        min_area=5,
        miss_rate=0.0,
        boundary_rate=0.1,
        cut_rate=0.0,
        iou_threshold=0.3,
        z_subsample=2,
        phase=1,
        random_state=0,
    )
    assert result.settings == {
        "min_area": 5,
        "miss_rate": 0.0,
        "boundary_rate": 0.1,
        "cut_rate": 0.0,
        "iou_threshold": 0.3,
        "z_subsample": 2,
        "phase": 1,
    }


def test_ground_truth_is_never_modified():
    gt = _convex_cells()
    reference = gt.copy()
    gt.setflags(write=False)
    faults = {"min_area": 20, "miss_rate": 0.2, "boundary_rate": 1.0, "cut_rate": 0.5}
    synthesize_stitched(gt, **faults, random_state=0)
    segment_layers(gt, **faults, random_state=0)
    np.testing.assert_array_equal(gt, reference)


def test_labels_are_the_stitched_slices():
    gt = make_tissue((12, 40, 40), cell_size=(12, 14, 14), random_state=1)
    result = synthesize_stitched(gt, iou_threshold=0.3, random_state=0)
    expected = stitch_slices(result.slices, iou_threshold=0.3, relabel_layers=True)
    np.testing.assert_array_equal(result.labels, expected)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_area": -1}, ValueError, r"min_area must be in >= 0"),
        ({"min_area": 2.5}, TypeError, "min_area"),
        ({"min_area": (60, 10)}, ValueError, "low > high"),
        ({"min_area": (1, 2, 3)}, ValueError, r"\(low, high\) range"),
        ({"miss_rate": 1.5}, ValueError, r"miss_rate must be in \[0, 1\]"),
        ({"miss_rate": (0.0, 1.2)}, ValueError, "miss_rate"),
        ({"boundary_rate": "0.3"}, TypeError, "boundary_rate"),
        ({"cut_rate": True}, TypeError, "cut_rate"),
        ({"iou_threshold": 0}, ValueError, "iou_threshold must be > 0"),
        ({"iou_threshold": 1.5}, ValueError, "iou_threshold"),
        ({"z_subsample": 0}, ValueError, "z_subsample"),
        ({"z_subsample": 1.5}, TypeError, "z_subsample"),
        ({"z_subsample": 2, "phase": 2}, ValueError, r"phase must be an integer in \[0, 2\)"),
        ({"z_subsample": 2, "phase": -1}, ValueError, "phase"),
        ({"z_subsample": 2, "phase": True}, ValueError, "phase"),
        ({"z_subsample": 2, "phase": 0.5}, ValueError, "phase"),
        ({"z_subsample": 20, "phase": 15}, ValueError, "leaves no layer of 14"),
    ],
)
def test_bad_settings_are_refused_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        synthesize_stitched(_convex_cells(), **kwargs, random_state=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_area": -5}, ValueError, "min_area"),
        ({"miss_rate": -0.1}, ValueError, "miss_rate"),
        ({"boundary_rate": 2}, ValueError, "boundary_rate"),
        ({"cut_rate": (0.0, 0.1)}, TypeError, "ranges are drawn by synthesize_stitched"),
        ({"miss_rate": "0.1"}, TypeError, "miss_rate"),
    ],
)
def test_segment_layers_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        segment_layers(_convex_cells(), **kwargs)


@pytest.mark.parametrize(
    ("gt", "error"),
    [
        (np.ones((4, 4), dtype=np.uint8), ValueError),
        (np.ones((2, 4, 4), dtype=float), TypeError),
        (np.zeros((2, 4, 4), dtype=np.uint8), ValueError),
    ],
)
def test_bad_ground_truth_is_refused(gt, error):
    with pytest.raises(error, match="ground_truth"):
        synthesize_stitched(gt)


def test_docstring_examples_run():
    result = doctest.testmod(flaws_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_stitched_screener_is_the_shipped_models_screening():
    from sklearn_overseg import load_pretrained
    from sklearn_overseg.synthesis.stitched_flaws import stitched_screener

    shipped = load_pretrained().screener_
    assert repr(stitched_screener()) == repr(shipped)
    assert stitched_screener(5).get_params()["axial__max_gap"] == 5

"""Instance and pair metrics against hand-computed values."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_fscore_support

from sklearn_overseg.evaluation import metrics
from sklearn_overseg.evaluation.metrics import (
    Contingency,
    average_precision,
    contingency,
    iou_matrix,
    jaccard_index,
    mean_average_precision,
    pair_scores,
    segmentation_scores,
)

# Case A, shape (1, 4, 4). GT cells 1, 2, 3 have 4 voxels each; pred 5 (6 voxels),
# 7 (4 voxels), 9 (1 voxel, on background).
#   5∩1 = 4 -> IoU 4/6 = 2/3;  5∩2 = 2 -> IoU 2/8 = 1/4;  7∩3 = 2 -> IoU 2/6 = 1/3.
GT_A = np.array(
    [
        [
            [1, 1, 2, 2],
            [1, 1, 2, 2],
            [3, 3, 3, 3],
            [0, 0, 0, 0],
        ]
    ],
    dtype=np.uint16,
)
PRED_A = np.array(
    [
        [
            [5, 5, 5, 0],
            [5, 5, 5, 0],
            [7, 7, 0, 0],
            [7, 7, 0, 9],
        ]
    ],
    dtype=np.int32,
)

# Case B, shape (2, 3, 3). GT 1 = slice z=0 (9 voxels), GT 2 = slice z=1 (9 voxels).
# Pred 4 = rows 0-1 of z=0 (6 voxels); pred 6 = row 2 of z=0 plus all of z=1 (12 voxels).
#   4∩1 = 6 -> 6/9 = 2/3;  6∩1 = 3 -> 3/18 = 1/6;  6∩2 = 9 -> 9/12 = 3/4.
GT_B = np.stack([np.full((3, 3), 1), np.full((3, 3), 2)]).astype(np.uint8)
PRED_B = np.stack([np.array([[4, 4, 4], [4, 4, 4], [6, 6, 6]]), np.full((3, 3), 6)]).astype(
    np.uint32
)

# A split cell, shape (1, 4, 4): GT 1 = left half (8 voxels), GT 2 = right half.
# Pred splits GT 1 into top (10) and bottom (11) quarters, predicts GT 2 exactly (12).
#   10∩1 = 4 -> 4/8 = 1/2;  11∩1 -> 1/2;  12∩2 -> 1.
GT_SPLIT = np.array([[[1, 1, 2, 2]] * 4], dtype=np.uint16)
PRED_SPLIT = np.array([[[10, 10, 12, 12]] * 2 + [[11, 11, 12, 12]] * 2], dtype=np.uint16)


def _dense(table: Contingency) -> np.ndarray:
    return table.intersection.toarray()


# --------------------------------------------------------------------------- contingency


def test_contingency_hand_case_a():
    table = contingency(PRED_A, GT_A)
    np.testing.assert_array_equal(table.pred_ids, [5, 7, 9])
    np.testing.assert_array_equal(table.gt_ids, [1, 2, 3])
    np.testing.assert_array_equal(table.pred_sizes, [6, 4, 1])
    np.testing.assert_array_equal(table.gt_sizes, [4, 4, 4])
    np.testing.assert_array_equal(_dense(table), [[4, 2, 0], [0, 0, 2], [0, 0, 0]])
    assert table.intersection.format == "csr"
    assert table.intersection.nnz == 3
    assert (table.n_pred, table.n_gt) == (3, 3)
    assert table.pred_ids.dtype == PRED_A.dtype and table.gt_ids.dtype == GT_A.dtype


def test_contingency_matches_brute_force_on_both_code_paths():
    rng = np.random.default_rng(0)
    # Small ids take the counting path; ~3000 ids on each side make n_pred * n_gt exceed the
    # volume, and ids near 2**33 exceed any lookup table: the sorting paths.
    small = rng.integers(0, 6, size=(3, 10, 12))
    many = rng.integers(0, 3000, size=(4, 64, 64))
    huge = (many.astype(np.uint64) + np.uint64(2**33)) * (many > 0)
    cases = [
        (small, small[::-1].copy()),
        (small.astype(np.uint64), small.astype(np.uint8)),
        (many, many[:, ::-1].copy()),
        (huge, many),
    ]
    for pred, gt in cases:
        table = contingency(pred, gt)
        assert table.pred_ids.dtype == pred.dtype and table.gt_ids.dtype == gt.dtype
        pairs = Counter(zip(pred.ravel().tolist(), gt.ravel().tolist(), strict=True))
        expected = {(p, g): n for (p, g), n in pairs.items() if p and g}
        coo = table.intersection.tocoo()
        got = {
            (int(table.pred_ids[i]), int(table.gt_ids[j])): int(n)
            for i, j, n in zip(coo.row, coo.col, coo.data, strict=True)
        }
        assert got == expected
        pred_sizes = Counter(pred[pred > 0].tolist())
        assert dict(zip(table.pred_ids.tolist(), table.pred_sizes.tolist(), strict=True)) == dict(
            pred_sizes
        )
        assert table.gt_sizes.sum() == np.count_nonzero(gt)


def test_contingency_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"pred\.shape=\(1, 4, 4\).*gt\.shape=\(2, 3, 3\)"):
        contingency(PRED_A, GT_B)


@pytest.mark.parametrize(
    ("pred", "gt", "error", "match"),
    [
        (PRED_A.astype(float), GT_A, TypeError, "pred has dtype float64"),
        (PRED_A, GT_A[0], ValueError, "gt must be 3D"),
        (PRED_A, -GT_A.astype(np.int8), ValueError, "gt has negative labels"),
    ],
)
def test_contingency_rejects_bad_volumes(pred, gt, error, match):
    with pytest.raises(error, match=match):
        contingency(pred, gt)


def test_sparse_huge_ids_do_not_blow_memory():
    remap_gt = {1: 4_000_000_000, 2: 7}
    remap_pred = {4: 2**40, 6: 4_000_000_001}
    gt = np.vectorize(remap_gt.get, otypes=[np.uint64])(GT_B)
    pred = np.vectorize(remap_pred.get, otypes=[np.uint64])(PRED_B)
    tracemalloc.start()
    try:
        table = contingency(pred, gt)
        scores = segmentation_scores(table)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # a table indexed by id would need gigabytes
    np.testing.assert_array_equal(table.pred_ids, [4_000_000_001, 2**40])
    np.testing.assert_array_equal(table.gt_ids, [7, 4_000_000_000])
    assert table.pred_ids.dtype == np.uint64
    # Same cells as case B, only reordered: IoU 3/4, 1/6 and 2/3.
    np.testing.assert_array_equal(_dense(table), [[9, 3], [0, 6]])
    assert scores == segmentation_scores(PRED_B, GT_B)


# --------------------------------------------------------------------------- IoU, AP, Jaccard


def test_iou_matrix_hand_values():
    np.testing.assert_allclose(
        iou_matrix(PRED_A, GT_A).toarray(), [[2 / 3, 1 / 4, 0], [0, 0, 1 / 3], [0, 0, 0]]
    )
    iou = iou_matrix(contingency(PRED_B, GT_B))
    np.testing.assert_allclose(iou.toarray(), [[2 / 3, 0], [1 / 6, 3 / 4]])
    assert iou.nnz == 3 and iou.dtype == np.float64


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        # Pairs with IoU >= 0.25: 5-1, 5-2, 7-3 -> TP 2 (5 takes 1 or 2), FP {9}, FN one GT.
        (0.25, (2 / 4, 2, 1, 1)),
        (0.3, (2 / 4, 2, 1, 1)),
        (0.5, (1 / 5, 1, 2, 2)),  # only 5-1
        (0.75, (0.0, 0, 3, 3)),
        (1.0, (0.0, 0, 3, 3)),
    ],
)
def test_average_precision_hand_case_a(threshold, expected):
    ap, tp, fp, fn = average_precision(PRED_A, GT_A, threshold, return_counts=True)
    assert (tp, fp, fn) == expected[1:]
    assert ap == pytest.approx(expected[0])
    assert average_precision(PRED_A, GT_A, threshold=threshold) == pytest.approx(expected[0])


def test_average_precision_threshold_is_inclusive():
    # Case B: IoU(6, 2) is exactly 3/4, so it matches at 0.75 but not above.
    assert average_precision(PRED_B, GT_B, 0.5) == 1.0
    assert average_precision(PRED_B, GT_B, 0.75, return_counts=True) == (1 / 3, 1, 1, 1)
    assert average_precision(PRED_B, GT_B, 0.76) == 0.0


def test_true_positives_are_counted_once_not_twice():
    # CellStitch's evaluation uses 2TP / (2TP + FP + FN); at 0.5 on case A that is 2/6.
    ap, tp, fp, fn = average_precision(PRED_A, GT_A, 0.5, return_counts=True)
    assert ap == pytest.approx(tp / (tp + fp + fn)) == pytest.approx(0.2)
    assert ap != pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_matching_maximises_true_positives():
    # (1, 1, 30): GT A = [0, 20), GT B = [20, 25); pred P2 = [0, 5), P1 = [5, 25).
    # IoU(P1, A) = 15/25 = 0.6, IoU(P1, B) = 5/20 = 0.25, IoU(P2, A) = 5/20 = 0.25.
    # Maximising summed IoU would keep only P1-A (0.6 > 0.5); the best matching has 2 pairs.
    gt = np.zeros((1, 1, 30), dtype=np.uint8)
    gt[..., :20], gt[..., 20:25] = 1, 2
    pred = np.zeros_like(gt)
    pred[..., :5], pred[..., 5:25] = 2, 1
    assert average_precision(pred, gt, 0.25, return_counts=True) == (1.0, 2, 0, 0)
    assert average_precision(pred, gt, 0.5, return_counts=True) == (1 / 3, 1, 1, 1)


def test_split_and_merge_at_half_iou():
    # (1, 1, 20): GT A = [0, 10) is split into P1 = [0, 5) and P2 = [5, 10); GT B = [10, 15)
    # and C = [15, 20) are merged into P3 = [10, 20). Every overlap has IoU exactly 1/2.
    # Three preds and three GT cells touch an edge, yet only two can be matched one-to-one.
    gt = np.repeat(np.array([1, 2, 3], dtype=np.uint8), [10, 5, 5]).reshape(1, 1, 20)
    pred = np.repeat(np.array([1, 2, 3], dtype=np.uint8), [5, 5, 10]).reshape(1, 1, 20)
    assert average_precision(pred, gt, 0.5, return_counts=True) == (0.5, 2, 1, 1)
    assert average_precision(pred, gt, 0.6) == 0.0
    assert jaccard_index(pred, gt) == pytest.approx(0.5)


def test_mean_average_precision_and_jaccard_hand_case_a():
    assert mean_average_precision(PRED_A, GT_A) == pytest.approx((0.5 + 0.2 + 0.0) / 3)
    assert mean_average_precision(PRED_A, GT_A, thresholds=[0.5]) == pytest.approx(0.2)
    assert mean_average_precision(PRED_A, GT_A, thresholds=0.25) == pytest.approx(0.5)
    # Best IoU per GT cell: 1 -> 2/3, 2 -> 1/4, 3 -> 1/3.
    assert jaccard_index(PRED_A, GT_A) == pytest.approx((2 / 3 + 1 / 4 + 1 / 3) / 3)
    # Case B: GT 1 -> 2/3, GT 2 -> 3/4.
    assert jaccard_index(PRED_B, GT_B) == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_split_cell_exact_scores():
    # IoU 1/2, 1/2 (the two halves of GT 1) and 1 (GT 2). GT 1 can be matched only once.
    assert average_precision(PRED_SPLIT, GT_SPLIT, 0.5, return_counts=True) == (2 / 3, 2, 1, 0)
    assert average_precision(PRED_SPLIT, GT_SPLIT, 0.75, return_counts=True) == (1 / 4, 1, 2, 1)
    assert mean_average_precision(PRED_SPLIT, GT_SPLIT) == pytest.approx(
        (2 / 3 + 2 / 3 + 1 / 4) / 3
    )
    assert jaccard_index(PRED_SPLIT, GT_SPLIT) == pytest.approx(0.75)


def test_perfect_prediction_scores_one():
    scores = segmentation_scores(GT_A, GT_A, thresholds=(0.25, 0.5, 0.75, 1.0))
    assert scores == {
        "ap@0.25": 1.0,
        "ap@0.5": 1.0,
        "ap@0.75": 1.0,
        "ap@1": 1.0,
        "mAP": 1.0,
        "jaccard": 1.0,
        "n_pred": 3,
        "n_gt": 3,
    }


def test_all_background_prediction_scores_zero():
    empty = np.zeros_like(GT_A)
    assert average_precision(empty, GT_A, return_counts=True) == (0.0, 0, 0, 3)
    assert mean_average_precision(empty, GT_A) == 0.0
    assert jaccard_index(empty, GT_A) == 0.0
    # Nothing to find and nothing found is a perfect score; a lone prediction is not.
    assert average_precision(empty, empty) == 1.0 and jaccard_index(empty, empty) == 1.0
    assert average_precision(GT_A, empty, return_counts=True) == (0.0, 0, 3, 0)
    assert jaccard_index(GT_A, empty) == 0.0


def test_scores_do_not_depend_on_id_values():
    rng = np.random.default_rng(1)
    reference = segmentation_scores(PRED_A, GT_A)
    for _ in range(3):
        pred_lut = np.concatenate([[0], rng.permutation(np.arange(1, 50))]).astype(np.int64)
        gt_lut = np.concatenate([[0], rng.permutation(np.arange(1, 50))]).astype(np.uint32)
        assert segmentation_scores(pred_lut[PRED_A], gt_lut[GT_A]) == reference


def test_segmentation_scores_builds_one_contingency(monkeypatch):
    calls = []
    original = metrics.contingency

    def counting(pred, gt):
        calls.append(1)
        return original(pred, gt)

    monkeypatch.setattr(metrics, "contingency", counting)
    scores = segmentation_scores(PRED_A, GT_A, thresholds=(0.25, 0.5, 0.75))
    assert len(calls) == 1
    assert scores["ap@0.25"] == pytest.approx(0.5)
    assert scores["ap@0.5"] == pytest.approx(0.2)
    assert scores["ap@0.75"] == 0.0
    assert scores["mAP"] == pytest.approx(0.7 / 3)
    assert scores["jaccard"] == pytest.approx(1.25 / 3)
    assert (scores["n_pred"], scores["n_gt"]) == (3, 3)


def test_inputs_are_read_only_and_untouched():
    pred, gt = PRED_A.copy(), GT_A.copy()
    pred.setflags(write=False)
    gt.setflags(write=False)
    segmentation_scores(pred, gt)
    iou_matrix(pred[:, ::-1], gt[:, ::-1])  # non-contiguous views too
    np.testing.assert_array_equal(pred, PRED_A)
    np.testing.assert_array_equal(gt, GT_A)


def test_nested_lists_are_accepted():
    assert average_precision(PRED_B.tolist(), GT_B.tolist(), 0.5) == 1.0


@pytest.mark.parametrize(
    ("threshold", "error", "match"),
    [
        (0.0, ValueError, r"in \(0, 1\], got 0\.0"),
        (1.5, ValueError, r"got 1\.5"),
        (True, TypeError, "got True"),
        ("0.5", TypeError, "got '0.5'"),
    ],
)
def test_bad_threshold(threshold, error, match):
    with pytest.raises(error, match=match):
        average_precision(PRED_A, GT_A, threshold)
    with pytest.raises(error, match=match):
        mean_average_precision(PRED_A, GT_A, thresholds=[0.5, threshold])


def test_bad_thresholds_container():
    with pytest.raises(ValueError, match="at least one"):
        segmentation_scores(PRED_A, GT_A, thresholds=())
    with pytest.raises(TypeError, match="sequence of numbers"):
        mean_average_precision(PRED_A, GT_A, thresholds=None)


def test_contingency_or_volumes_not_both():
    table = contingency(PRED_A, GT_A)
    assert average_precision(table, threshold=0.25) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not both"):
        jaccard_index(table, GT_A)
    with pytest.raises(ValueError, match="gt is required"):
        mean_average_precision(PRED_A)


# --------------------------------------------------------------------------- real data


def test_real_volume_against_itself_and_a_split(plant_tissue):
    gt = plant_tissue
    n_cells = np.count_nonzero(np.bincount(gt.ravel())[1:])
    for vol in (gt, gt[::4]):
        n = np.count_nonzero(np.bincount(vol.ravel())[1:])
        scores = segmentation_scores(vol, vol)
        assert scores["mAP"] == 1.0 and scores["jaccard"] == 1.0
        assert scores["n_pred"] == scores["n_gt"] == n

    # Split the largest cell at its z median: each part has IoU |part| / |cell|.
    sizes = np.bincount(gt.ravel())
    sizes[0] = 0
    big = int(np.argmax(sizes))
    pred = gt.copy()
    z = np.nonzero(gt == big)[0]
    cut = int(np.median(z))
    part = (gt == big) & (np.arange(gt.shape[0])[:, None, None] > cut)
    pred[part] = gt.max() + 1
    best = max(part.sum(), sizes[big] - part.sum()) / sizes[big]
    table = contingency(pred, gt)
    assert (table.n_pred, table.n_gt) == (n_cells + 1, n_cells)
    for t in (0.25, 0.5, 0.75):
        tp = n_cells - 1 + int(best >= t)
        assert average_precision(table, threshold=t) == pytest.approx(
            tp / (tp + (n_cells + 1 - tp) + (n_cells - tp))
        )
    assert jaccard_index(table) == pytest.approx((n_cells - 1 + best) / n_cells)


# --------------------------------------------------------------------------- pair scores


def test_pair_scores_hand_example():
    predicted = [(1, 2), (3, 2), (5, 4), (7, 8), (2, 1)]  # (2, 1) repeats (1, 2)
    true = [(2, 1), (2, 3), (9, 10)]
    scores = pair_scores(predicted, true)
    assert scores == pytest.approx(
        {"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "tp": 2, "fp": 2, "fn": 1}
    )
    assert isinstance(scores["tp"], int)


def test_pair_scores_agree_with_sklearn():
    rng = np.random.default_rng(3)
    predicted = {
        tuple(sorted(p)) for p in rng.choice(12, size=(15, 2), replace=True) if p[0] != p[1]
    }
    true = {tuple(sorted(p)) for p in rng.choice(12, size=(15, 2), replace=True) if p[0] != p[1]}
    universe = sorted(predicted | true)
    y_true = [p in true for p in universe]
    y_pred = [p in predicted for p in universe]
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    scores = pair_scores(predicted, true)
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((p, r, f))


def test_pair_scores_accepts_arrays_and_frames():
    arr = np.array([[4, 3], [1, 2]], dtype=np.uint64)
    frame = pd.DataFrame({"cell_a": [1, 3], "cell_b": [2, 4]})
    assert pair_scores(arr, frame)["f1"] == 1.0
    assert pair_scores(np.empty((0, 2), dtype=int), frame)["fn"] == 2


def test_pair_scores_empty_conventions():
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert pair_scores([], []) == {**zero, "tp": 0, "fp": 0, "fn": 0}
    assert pair_scores([], [(1, 2)]) == {**zero, "tp": 0, "fp": 0, "fn": 1}
    assert pair_scores([(1, 2)], []) == {**zero, "tp": 0, "fp": 1, "fn": 0}


@pytest.mark.parametrize(
    ("pairs", "error", "match"),
    [
        ([(1, 1)], ValueError, r"two different labels, got \(1, 1\)"),
        ([(1, 2, 3)], ValueError, r"got the item \(1, 2, 3\)"),
        ([5], ValueError, "got the item 5"),
        ([(1.0, 2)], TypeError, "got 1.0"),
        ([(True, 2)], TypeError, "got True"),
        (None, TypeError, "got None"),
        (3, TypeError, "got int"),
    ],
)
def test_pair_scores_bad_input(pairs, error, match):
    with pytest.raises(error, match=match):
        pair_scores(pairs, [(1, 2)])


# ------------------------------------------------------------------ repair_scores


def _four_cells() -> np.ndarray:
    """Four 2x4x4 cells side by side in x, background in the last columns."""
    gt = np.zeros((2, 4, 20), dtype=np.uint8)
    for cell in range(4):
        gt[:, :, 4 * cell : 4 * cell + 4] = cell + 1
    return gt


def test_repair_scores_counts_split_links_and_repairs():
    gt = _four_cells()
    flawed = gt.copy()
    flawed[1, :, 0:4] = 10  # cell 1 in two pieces
    flawed[0, :2, 4:8] = 11  # cell 2 in three pieces
    flawed[1, :, 4:8] = 12
    corrected = flawed.copy()
    corrected[flawed == 10] = 1  # cell 1 repaired
    corrected[flawed == 12] = 11  # cell 2: two of its three pieces joined
    s = metrics.repair_scores(flawed, corrected, gt)
    assert (s["split_links"], s["repaired"], s["false_joins"]) == (3, 2, 0)
    assert s["repaired_fraction"] == pytest.approx(2 / 3)
    assert s["false_join_fraction"] == 0.0
    assert s["mAP_ceiling"] == 1.0
    assert s["mAP_input"] == pytest.approx(mean_average_precision(flawed, gt))
    assert s["mAP_corrected"] == pytest.approx(mean_average_precision(corrected, gt))
    assert s["mAP_input"] < s["mAP_corrected"] < s["mAP_ceiling"]
    nothing = metrics.repair_scores(flawed, flawed, gt)
    assert (nothing["split_links"], nothing["repaired"], nothing["false_joins"]) == (3, 0, 0)
    assert nothing["mAP_corrected"] == nothing["mAP_input"]


def test_repair_scores_counts_false_joins_but_not_joins_already_in_the_input():
    gt = _four_cells()
    flawed = gt.copy()
    flawed[1, :, 0:4] = 10  # cell 1 split
    flawed[gt == 4] = 3  # cells 3 and 4 already one label in the input
    corrected = flawed.copy()
    corrected[flawed == 10] = 1
    corrected[flawed == 2] = 1  # cell 2 wrongly joined to cell 1
    s = metrics.repair_scores(flawed, corrected, gt)
    assert (s["split_links"], s["repaired"], s["false_joins"]) == (1, 1, 1)
    assert s["false_join_fraction"] == 1.0
    # The input join limits the ceiling: cells 3 and 4 stay one label.
    assert s["mAP_ceiling"] < 1.0
    # A false join with no split at all: fractions fall back to 0.
    joined = gt.copy()
    joined[gt == 2] = 1
    s = metrics.repair_scores(gt, joined, gt)
    assert (s["split_links"], s["false_joins"], s["false_join_fraction"]) == (0, 1, 0.0)
    assert s["repaired_fraction"] == 0.0 and s["mAP_input"] == s["mAP_ceiling"] == 1.0


def test_repair_scores_labels_owned_by_background():
    gt = _four_cells()
    flawed = gt.copy()
    flawed[:, :, 16:18] = 20  # outside every cell
    flawed[:, :, 18:20] = 21
    flawed[:, 0, 15] = 22  # 2 voxels in cell 4, 4 outside: owned by background
    flawed[:, 0, 16:18] = 22
    s = metrics.repair_scores(flawed, flawed, gt)
    # Background owns labels 20, 21 and 22: no split link, none are merged in the ceiling.
    assert (s["split_links"], s["repaired"], s["false_joins"]) == (0, 0, 0)
    assert s["mAP_ceiling"] == pytest.approx(s["mAP_input"])
    joined_to_cell = flawed.copy()
    joined_to_cell[flawed == 20] = 4
    assert metrics.repair_scores(flawed, joined_to_cell, gt)["false_joins"] == 1
    # Two background labels joined are no cell either.
    both = flawed.copy()
    both[flawed == 21] = 20
    both[flawed == 22] = 20
    assert metrics.repair_scores(flawed, both, gt)["false_joins"] == 2


def test_repair_scores_majority_owner_and_ties():
    gt = _four_cells()
    flawed = gt.copy()
    flawed[:, :, 2:6] = 9  # half in cell 1, half in cell 2: the smaller id owns it
    s = metrics.repair_scores(flawed, flawed, gt)
    # Cell 1 owns its rest and label 9: one split link; cell 2 owns its rest only.
    assert s["split_links"] == 1
    flawed = gt.copy()
    flawed[:, :, 14:18] = 9  # half in cell 4, half in background: background wins the tie
    s = metrics.repair_scores(flawed, flawed, gt)
    assert s["split_links"] == 0


def test_repair_scores_empty_and_unchanged_inputs():
    empty = np.zeros((2, 3, 3), dtype=np.uint16)
    s = metrics.repair_scores(empty, empty, empty)
    assert (s["split_links"], s["repaired"], s["false_joins"]) == (0, 0, 0)
    assert s["mAP_input"] == s["mAP_corrected"] == s["mAP_ceiling"] == 1.0
    gt = _four_cells()
    flawed = gt.astype(np.int32)
    flawed[1, :, 0:4] = 10
    corrected = flawed.astype(np.uint64)
    corrected[corrected == 10] = 1
    copies = [a.copy() for a in (flawed, corrected, gt)]
    for a in (flawed, corrected, gt):
        a.setflags(write=False)
    assert metrics.repair_scores(flawed, corrected, gt)["repaired"] == 1
    for a, b in zip((flawed, corrected, gt), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_repair_scores_bad_input():
    gt = _four_cells()
    with pytest.raises(ValueError, match=r"same shape"):
        metrics.repair_scores(gt, gt[:, :, :8], gt)
    with pytest.raises(ValueError, match=r"same shape"):
        metrics.repair_scores(gt, gt, gt[:1])
    with pytest.raises(TypeError, match="corrected"):
        metrics.repair_scores(gt, gt.astype(float), gt)
    with pytest.raises(ValueError, match="flawed"):
        metrics.repair_scores(gt[0], gt, gt)

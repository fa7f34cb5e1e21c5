"""stitch_slices: IoU linking of independently labelled 2D slices into 3D labels."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from skimage.measure import label as label_components

import sklearn_overseg.stitch as stitch_module
from sklearn_overseg.stitch import _numbered_per_layer, layer_id_continuity, stitch_slices
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.training import majority_labels


def _strip(*layers: list[int]) -> np.ndarray:
    """A (Z, 1, X) stack from one row per layer: IoUs are plain interval ratios."""
    return np.array([[row] for row in layers], dtype=np.uint16)


def _reference(stack: np.ndarray, threshold: float) -> np.ndarray:
    """The linking rule written out mask by mask, with full IoU tables (slow, obvious)."""
    out = np.zeros(stack.shape, dtype=np.int64)
    next_id = 1
    previous: dict[int, int] = {}
    for z in range(stack.shape[0]):
        ids = [int(i) for i in np.unique(stack[z]) if i]
        current: dict[int, int] = {}
        if z:
            ups = [int(i) for i in np.unique(stack[z - 1]) if i]
            iou = {}
            for u in ups:
                mu = stack[z - 1] == u
                for low in ids:
                    ml = stack[z] == low
                    inter = np.count_nonzero(mu & ml)
                    if inter:
                        iou[u, low] = inter / np.count_nonzero(mu | ml)

            for low in ids:
                # Best = highest IoU, then the smallest 2D id.
                uppers = [(-v, u) for (u, lo), v in iou.items() if lo == low]
                if not uppers:
                    continue
                up = min(uppers)[1]
                lowers = [(-v, lo) for (u, lo), v in iou.items() if u == up]
                if iou[up, low] >= threshold and min(lowers)[1] == low:
                    current[low] = previous[up]
        for low in ids:
            if low not in current:
                current[low] = next_id
                next_id += 1
            out[z][stack[z] == low] = current[low]
        previous = current
    return out


# ------------------------------------------------------------------ the linking rule


def test_a_chain_continues_under_one_id_whatever_the_2d_ids():
    stack = _strip([7, 7, 7, 0, 0], [3, 3, 3, 0, 0], [0, 9, 9, 9, 0])
    out = stitch_slices(stack)
    np.testing.assert_array_equal(out[:, 0], [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0]])


def test_iou_exactly_at_threshold_links_and_just_above_does_not():
    # Masks [0, 10) and [6, 16): intersection 4, union 16, IoU exactly 0.25.
    row0 = [1] * 10 + [0] * 6
    row1 = [0] * 6 + [1] * 10
    stack = _strip(row0, row1)
    assert stitch_slices(stack, iou_threshold=0.25).max() == 1
    assert stitch_slices(stack, iou_threshold=0.2500001).max() == 2
    # One pixel further apart: IoU 3 / 17 < 0.25.
    shifted = _strip([*row0, 0], [0] * 7 + [1] * 10)
    assert stitch_slices(shifted, iou_threshold=0.25).max() == 2
    assert stitch_slices(shifted, iou_threshold=3 / 17).max() == 1


def test_two_lower_masks_competing_for_one_upper_only_the_best_links():
    # Upper [0, 10); lower pieces [0, 6) (IoU 0.6) and [6, 10) (IoU 0.4): both pass 0.25.
    stack = _strip([4] * 10, [2] * 6 + [5] * 4)
    out = stitch_slices(stack)
    np.testing.assert_array_equal(out[1, 0], [1] * 6 + [2] * 4)


def test_two_upper_masks_competing_for_one_lower_only_the_best_links():
    stack = _strip([8] * 4 + [3] * 6, [1] * 10)
    out = stitch_slices(stack)
    # Ids follow the 2D ids within the first layer: 3 -> 1, 8 -> 2; the lower mask
    # continues 3 (IoU 0.6), not 8 (IoU 0.4).
    np.testing.assert_array_equal(out[0, 0], [2] * 4 + [1] * 6)
    np.testing.assert_array_equal(out[1, 0], [1] * 10)


def test_a_best_upper_that_prefers_another_lower_mask_does_not_link():
    # Lower mask 1 ([0, 4)) overlaps only upper U=[0, 12) (IoU 1/3 >= 0.25), but U's best
    # partner is lower mask 2 ([4, 12), IoU 2/3): mask 1 starts a new id.
    stack = _strip([6] * 12, [1] * 4 + [2] * 8)
    out = stitch_slices(stack, iou_threshold=0.25)
    np.testing.assert_array_equal(out[1, 0], [2] * 4 + [1] * 8)


def test_equal_ious_link_the_smaller_2d_id():
    stack = _strip([5] * 4 + [2] * 4, [0, 0, 9, 9, 9, 9, 0, 0])
    out = stitch_slices(stack)
    # Lower [2, 6) overlaps upper 5 and upper 2 with IoU 2/6 each: the smaller id, 2, wins.
    assert out[0, 0, 4] == out[1, 0, 3] == 1
    assert out[0, 0, 0] == 2


def test_a_missing_layer_breaks_the_chain():
    stack = _strip([1, 1, 1], [0, 0, 0], [1, 1, 1], [1, 1, 1])
    out = stitch_slices(stack)
    np.testing.assert_array_equal(out[:, 0, 0], [1, 0, 2, 2])


def test_ids_follow_first_appearance_and_background_stays_zero():
    stack = _strip([0, 9, 0, 4, 0], [0, 6, 0, 7, 0], [2, 0, 0, 0, 1])
    out = stitch_slices(stack)
    # Within a layer, new ids follow the 2D ids: 4 before 9, then 1 before 2.
    np.testing.assert_array_equal(out[:, 0], [[0, 2, 0, 1, 0], [0, 2, 0, 1, 0], [4, 0, 0, 0, 3]])


def test_matches_the_rule_written_out_on_random_stacks():
    rng = np.random.RandomState(0)
    for trial in range(12):
        gt = make_tissue((6, 24, 24), cell_size=(6, 10, 10), random_state=trial)
        stack = np.stack([label_components(layer, connectivity=1) for layer in gt])
        # Scramble the 2D ids per layer (and leave holes in their numbering).
        for z in range(stack.shape[0]):
            n = int(stack[z].max())
            ids = np.concatenate([[0], rng.permutation(n) + 1 + rng.randint(3) * n])
            stack[z] = ids[stack[z]]
        threshold = float(rng.choice([0.1, 0.25, 0.5]))
        out = stitch_slices(stack, iou_threshold=threshold, relabel_layers=True)
        np.testing.assert_array_equal(out, _reference(stack, threshold), err_msg=str(trial))


# ------------------------------------------------------------------ output and input


@pytest.mark.parametrize(
    ("n_masks", "dtype"),
    [(0, np.uint8), (1, np.uint8), (255, np.uint8), (256, np.uint16), (70_000, np.uint32)],
)
def test_output_dtype_is_the_smallest_unsigned_that_fits(n_masks, dtype):
    row = np.zeros(2 * max(n_masks, 1), dtype=np.int64)
    row[::2][:n_masks] = np.arange(1, n_masks + 1)
    out = stitch_slices(row[None, None])
    assert out.dtype == dtype
    assert int(out.max()) == n_masks


def test_input_is_never_modified_and_dtypes_are_accepted():
    stack = _strip([7, 7, 0], [0, 3, 3]).astype(np.int32)
    reference = stack.copy()
    stack.setflags(write=False)
    expected = stitch_slices(reference.astype(np.uint64))
    np.testing.assert_array_equal(stitch_slices(stack), expected)
    np.testing.assert_array_equal(stack, reference)


def test_a_list_or_tuple_of_2d_arrays_is_a_stack():
    layers = [np.array([[1, 1, 0]]), np.array([[0, 2, 2]]), np.array([[0, 0, 5]])]
    expected = stitch_slices(np.stack(layers))
    np.testing.assert_array_equal(stitch_slices(layers), expected)
    np.testing.assert_array_equal(stitch_slices(tuple(layers)), expected)
    np.testing.assert_array_equal(stitch_slices([layer.tolist() for layer in layers]), expected)


def test_all_background_and_single_layer_stacks():
    out = stitch_slices(np.zeros((3, 4, 4), dtype=np.uint16))
    assert out.dtype == np.uint8 and not out.any()
    single = np.array([[[0, 4, 4, 0, 9]]])
    np.testing.assert_array_equal(stitch_slices(single), [[[0, 1, 1, 0, 2]]])


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (np.ones((4, 4), dtype=np.uint8), ValueError, r"single 2D image.*\(Z, Y, X\)"),
        (np.ones((2, 3, 4, 4), dtype=np.uint8), ValueError, "ndim=4"),
        (np.ones((2, 4, 4), dtype=float), TypeError, "float64.*integers.*astype"),
        (np.ones((2, 4, 4), dtype=bool), TypeError, "bool.*skimage.measure.label"),
        (np.empty((2, 4, 4), dtype=object), TypeError, "object"),
        (np.full((2, 4, 4), -1, dtype=np.int16), ValueError, r"negative labels \(minimum -1\)"),
        (np.zeros((0, 4, 4), dtype=np.uint8), ValueError, "empty"),
        ([], ValueError, "empty"),
        ([np.ones((4, 4)), np.ones((4, 5))], ValueError, r"differ in shape.*same \(Y, X\)"),
        ("labels.tif", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_bad_stacks_are_refused_clearly(value, error, match):
    with pytest.raises(error, match=match):
        stitch_slices(value)


@pytest.mark.parametrize(
    ("threshold", "error"),
    [
        (0, ValueError),
        (-0.1, ValueError),
        (1.5, ValueError),
        (float("nan"), ValueError),
        ("0.5", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_bad_iou_threshold_is_refused(threshold, error):
    with pytest.raises(error, match="iou_threshold"):
        stitch_slices(_strip([1, 1], [1, 1]), iou_threshold=threshold)


def test_threshold_one_and_numpy_numbers_are_accepted():
    stack = _strip([1, 1], [2, 2], [3, 0])
    np.testing.assert_array_equal(stitch_slices(stack, iou_threshold=1)[:, 0, 0], [1, 1, 2])
    out = stitch_slices(stack, iou_threshold=np.float32(0.5))
    np.testing.assert_array_equal(out[:, 0, 0], [1, 1, 1])


# ------------------------------------------------------------------ already-3D volumes


def _three_d_volume() -> np.ndarray:
    """A 3D label volume: ids run through the layers, and are not 1..n in every layer."""
    vol = np.zeros((4, 6, 12), dtype=np.uint16)
    vol[:, :, :4] = 3
    vol[:, :, 4:8] = 5
    vol[:2, :, 8:] = 8
    vol[2:, :, 8:] = 9
    return vol


def test_a_3d_label_volume_is_refused_with_the_relabel_hint():
    vol = _three_d_volume()
    assert not _numbered_per_layer(vol)
    assert layer_id_continuity(vol) > 0.5
    with pytest.raises(ValueError, match="3D label volume already") as err:
        stitch_slices(vol)
    message = str(err.value)
    assert "relabel_layers=True" in message and "--relabel-layers" in message


def test_relabel_layers_restitches_a_3d_volume():
    vol = _three_d_volume()
    out = stitch_slices(vol, relabel_layers=True)
    # Cells 3 and 5 keep one id each; 8 -> 9 is one column too (IoU 1 between layers).
    assert len(np.unique(out[out > 0])) == 3
    for cell in (3, 5):
        assert len(np.unique(out[vol == cell])) == 1
    assert len(np.unique(out[(vol == 8) | (vol == 9)])) == 1
    # Each layer's ids are independent 2D masks: breaking the stack by a missing layer
    # gives new ids below it even though the 3D ids were shared.
    gapped = vol.copy()
    gapped[1] = 0
    out = stitch_slices(gapped, relabel_layers=True)
    assert len(np.unique(out[gapped == 3])) == 2


def test_stacks_numbered_one_to_n_in_every_layer_are_accepted_whatever_their_continuity():
    stack = np.zeros((5, 4, 12), dtype=np.uint16)
    stack[:, :, :4] = 1
    stack[:, :, 6:10] = 2
    assert _numbered_per_layer(stack)
    assert layer_id_continuity(stack) == 1.0
    out = stitch_slices(stack)
    np.testing.assert_array_equal(out, stack)
    # Holes in one layer's numbering make it a 3D volume again.
    stack[2][stack[2] == 2] = 3
    assert not _numbered_per_layer(stack)


def test_per_layer_labels_with_little_continuity_are_accepted():
    vol = _three_d_volume()
    # A few ids repeat by chance in the next layer, most do not.
    stack = vol.copy()
    stack[1][vol[1] != 0] += 20
    stack[3][vol[3] != 0] += 40
    assert not _numbered_per_layer(stack)
    assert layer_id_continuity(stack) <= 0.5
    assert stitch_slices(stack).max() == 3


def test_layer_id_continuity_values():
    vol = _three_d_volume()
    # Shared ids of consecutive layers: (3, 5, 8), (3, 5), (3, 5, 9); all continue.
    assert layer_id_continuity(vol) == 1.0
    per_layer = vol + (np.arange(4, dtype=np.uint16) * 100)[:, None, None] * (vol > 0)
    assert layer_id_continuity(per_layer) == 0.0
    # An id present in two layers but not over itself does not continue.
    moved = vol.copy()
    moved[1][vol[1] == 3] = 5
    moved[1][vol[1] == 5] = 3
    # Shared (continuing): (3, 5, 8) (8 only), (3, 5) (none), (3, 5, 9) (all).
    assert layer_id_continuity(moved) == pytest.approx(4 / 8)
    # A continuation with IoU 0.5 counts up to min_iou=0.5.
    half = vol.copy()
    half[1, :3][vol[1, :3] == 3] = 0
    assert layer_id_continuity(half) == 1.0
    assert layer_id_continuity(half, min_iou=0.51) == pytest.approx(6 / 8)
    assert layer_id_continuity(np.zeros((3, 2, 2), dtype=np.uint8)) == 0.0


# ------------------------------------------------------------------ ground truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stitching_ground_truth_layers_gives_labels_inside_one_cell(seed):
    gt = make_tissue((24, 64, 64), cell_size=(24, 24, 24), random_state=seed)
    stack = np.stack([label_components(layer, connectivity=1) for layer in gt])
    assert _numbered_per_layer(stack)
    out = stitch_slices(stack)
    # Exact: every 2D piece of the output lies in one ground-truth cell.
    for z in range(gt.shape[0]):
        pairs = np.unique(np.stack([out[z].ravel(), gt[z].ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]
    # Mostly: each label's voxels lie in its majority cell.
    owner = majority_labels(out, gt)
    ids = np.arange(1, int(out.max()) + 1)
    table = np.zeros(int(out.max()) + 1, dtype=np.int64)
    table[ids] = [owner[i] for i in ids]
    inside = out > 0
    purity = np.bincount(out[inside], weights=table[out[inside]] == gt[inside])[1:]
    sizes = np.bincount(out[inside])[1:]
    assert (purity / sizes).min() > 0.5
    assert purity.sum() / sizes.sum() > 0.95
    # Every cell is found, and never more than a few pieces per cell.
    assert set(owner.values()) == set(np.unique(gt)) - {0}
    assert len(ids) < 2 * int(gt.max())


def test_docstring_examples_run():
    result = doctest.testmod(stitch_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

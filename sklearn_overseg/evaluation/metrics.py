"""Instance-segmentation metrics and pair-decision metrics.

Instance metrics compare a predicted label volume with a ground-truth one. Both are
reduced once to a sparse :class:`Contingency` (voxel counts of every overlapping
``(pred, gt)`` pair of cells); every score is then read off that table, so scoring at
several IoU thresholds costs one pass over the voxels.

Definitions (label ``0`` is background and never an instance):

* ``IoU(p, g) = |p ∩ g| / |p ∪ g|`` for a predicted cell ``p`` and a ground-truth cell ``g``.
* At IoU threshold ``t``, a predicted and a ground-truth cell *may* match when
  ``IoU >= t``. Each cell matches at most one other cell; ``TP`` is the size of a maximum
  one-to-one matching, ``FP = n_pred - TP`` and ``FN = n_gt - TP``.
* ``AP(t) = TP / (TP + FP + FN)``, the definition used by the paper (and by Cellpose and
  StarDist). Each matched pair counts once; CellStitch's public evaluation script counts
  it twice, which inflates its numbers (``2 TP / (2 TP + FP + FN)``).
* ``mAP`` is the mean of ``AP(t)`` over the thresholds, ``{0.25, 0.5, 0.75}`` by default.
* ``jaccard`` is the mean, over ground-truth cells, of each cell's best IoU with any
  predicted cell (``0`` for a cell no prediction touches).

Pair metrics (:func:`pair_scores`) judge merge decisions: which pairs of labels were
declared to be one cell, against the pairs that truly are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from .._validation import check_label_volume

__all__ = [
    "Contingency",
    "average_precision",
    "contingency",
    "iou_matrix",
    "jaccard_index",
    "mean_average_precision",
    "pair_scores",
    "repair_scores",
    "segmentation_scores",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.25, 0.5, 0.75)

# Lookup tables indexed by raw label id are used while they stay this small or no larger
# than the volume itself; beyond that (sparse ids such as 4e9) ids are compacted by sorting.
_MIN_DENSE_TABLE = 1 << 20


@dataclass(frozen=True, eq=False)
class Contingency:
    """Sparse overlap table between the cells of two label volumes.

    Attributes
    ----------
    pred_ids : ndarray of shape (n_pred,)
        Sorted ids of the predicted cells (background ``0`` excluded), in the dtype of the
        predicted volume.
    gt_ids : ndarray of shape (n_gt,)
        Sorted ids of the ground-truth cells (background excluded).
    intersection : scipy.sparse.csr_array of shape (n_pred, n_gt), dtype int64
        ``intersection[i, j]`` is the number of voxels labelled ``pred_ids[i]`` in the
        prediction and ``gt_ids[j]`` in the ground truth. Only overlapping pairs are stored.
    pred_sizes : ndarray of shape (n_pred,), dtype int64
        Voxel count of each predicted cell.
    gt_sizes : ndarray of shape (n_gt,), dtype int64
        Voxel count of each ground-truth cell.
    """

    pred_ids: np.ndarray
    gt_ids: np.ndarray
    intersection: sparse.csr_array
    pred_sizes: np.ndarray
    gt_sizes: np.ndarray

    @property
    def n_pred(self) -> int:
        """Number of predicted cells."""
        return len(self.pred_ids)

    @property
    def n_gt(self) -> int:
        """Number of ground-truth cells."""
        return len(self.gt_ids)


def _compact(flat: np.ndarray, picked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids and sizes of the non-zero labels of ``flat``, and the index of each of ``picked``.

    ``picked`` holds non-zero values taken from ``flat``; the returned index maps each one to
    its position in the sorted id array.
    """
    dtype = flat.dtype
    top = int(flat.max())
    if top < max(_MIN_DENSE_TABLE, flat.size):
        # Linear time: a counting pass and a lookup table no larger than the volume.
        if flat.dtype == np.uint64:  # bincount refuses uint64 on older numpy
            flat = flat.astype(np.int64)
            picked = picked.astype(np.int64)
        counts = np.bincount(flat, minlength=top + 1)
        counts[0] = 0
        ids = np.flatnonzero(counts)
        lookup = np.zeros(top + 1, dtype=np.int32 if top < 2**31 else np.intp)
        lookup[ids] = np.arange(len(ids))
        return ids.astype(dtype), counts[ids].astype(np.int64), lookup[picked]
    ids, sizes = np.unique(flat[flat != 0], return_counts=True)
    return ids, sizes.astype(np.int64), np.searchsorted(ids, picked)


def contingency(pred: Any, gt: Any) -> Contingency:
    """Count the voxels shared by every predicted and ground-truth cell.

    Runs in time linear in the number of voxels for ids smaller than the volume size (or
    ``2**20``), and in ``O(n log n)`` with memory linear in voxels for arbitrary sparse ids
    (e.g. ``4_000_000_000`` in a ``uint64`` volume). No table of size ``max_id**2`` or
    ``n_pred * n_gt`` is built unless it has no more entries than the volume has voxels
    (or ``2**20``).

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X)
        Predicted integer labels, ``0`` is background. May be all background.
    gt : array-like of shape (Z, Y, X)
        Ground-truth integer labels with the same shape. May be all background.

    Returns
    -------
    table : Contingency
        Cell ids, cell sizes and the sparse intersection matrix.

    Raises
    ------
    TypeError
        If a volume is not an integer array.
    ValueError
        If a volume is not 3D, has negative labels, or the shapes differ.
    """
    pred = check_label_volume(pred, name="pred", allow_empty=True)
    gt = check_label_volume(gt, name="gt", allow_empty=True)
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred and gt must have the same shape, got pred.shape={pred.shape} and "
            f"gt.shape={gt.shape}."
        )
    p = pred.ravel()
    g = gt.ravel()
    both = (p != 0) & (g != 0)
    pred_ids, pred_sizes, rows = _compact(p, p[both])
    gt_ids, gt_sizes, cols = _compact(g, g[both])
    n_pred, n_gt = len(pred_ids), len(gt_ids)

    # Narrow keys halve the memory of the one per-voxel array that survives to the end.
    key_dtype = np.int32 if n_pred * n_gt < 2**31 else np.int64
    key = rows.astype(key_dtype) * key_dtype(n_gt) + cols.astype(key_dtype, copy=False)
    if n_pred * n_gt <= max(_MIN_DENSE_TABLE, key.size):
        counts = np.bincount(key, minlength=n_pred * n_gt)
        key = np.flatnonzero(counts)
        counts = counts[key]
    else:
        key, counts = np.unique(key, return_counts=True)
    intersection = sparse.csr_array(
        (counts.astype(np.int64), (key // max(n_gt, 1), key % max(n_gt, 1))),
        shape=(n_pred, n_gt),
    )
    return Contingency(pred_ids, gt_ids, intersection, pred_sizes, gt_sizes)


def _as_contingency(pred: Any, gt: Any) -> Contingency:
    if isinstance(pred, Contingency):
        if gt is not None:
            raise ValueError("Pass either a Contingency alone or two volumes (pred, gt), not both.")
        return pred
    if gt is None:
        raise ValueError("gt is required when pred is a label volume rather than a Contingency.")
    return contingency(pred, gt)


def _iou(table: Contingency) -> sparse.csr_array:
    inter = table.intersection.tocoo()
    union = table.pred_sizes[inter.row] + table.gt_sizes[inter.col] - inter.data
    return sparse.csr_array(
        (inter.data / union, (inter.row, inter.col)), shape=table.intersection.shape
    )


def iou_matrix(pred: Any, gt: Any = None) -> sparse.csr_array:
    """Intersection over union of every overlapping (predicted, ground-truth) cell pair.

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X) or Contingency
        Predicted labels, or a table from :func:`contingency` (then leave ``gt`` unset).
    gt : array-like of shape (Z, Y, X), optional
        Ground-truth labels; required when ``pred`` is a volume.

    Returns
    -------
    iou : scipy.sparse.csr_array of shape (n_pred, n_gt), dtype float64
        Rows follow ``Contingency.pred_ids``, columns ``Contingency.gt_ids``. Pairs that do not
        overlap (IoU 0) are not stored.
    """
    return _iou(_as_contingency(pred, gt))


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise TypeError(f"IoU threshold must be a number in (0, 1], got {threshold!r}.")
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold!r}.")
    return value


def _check_thresholds(thresholds: Any) -> tuple[float, ...]:
    if isinstance(thresholds, Real):
        return (_check_threshold(thresholds),)
    try:
        values = tuple(_check_threshold(t) for t in thresholds)
    except TypeError as exc:
        if "IoU threshold" in str(exc):
            raise
        raise TypeError(
            f"thresholds must be a sequence of numbers in (0, 1], got {thresholds!r}."
        ) from None
    if not values:
        raise ValueError("thresholds must hold at least one IoU threshold, got none.")
    return values


def _n_matches(iou: sparse.csr_array, threshold: float) -> int:
    """Size of a maximum one-to-one matching among pairs with ``IoU >= threshold``."""
    coo = iou.tocoo()
    keep = coo.data >= threshold
    if not keep.any():
        return 0
    graph = sparse.csr_matrix(
        (np.ones(np.count_nonzero(keep), dtype=np.int8), (coo.row[keep], coo.col[keep])),
        shape=iou.shape,
    )
    # Hopcroft-Karp on the sparse graph: maximises the number of matches (TP) directly and
    # never densifies n_pred x n_gt. Above 0.5 every cell has at most one candidate anyway.
    matched = maximum_bipartite_matching(graph, perm_type="column")
    return int(np.count_nonzero(matched >= 0))


def _ap(tp: int, n_pred: int, n_gt: int) -> float:
    fp, fn = n_pred - tp, n_gt - tp
    if tp + fp + fn == 0:
        return 1.0  # both volumes are background only: nothing to find, nothing found
    return tp / (tp + fp + fn)


def average_precision(
    pred: Any,
    gt: Any = None,
    threshold: float = 0.5,
    *,
    return_counts: bool = False,
) -> float | tuple[float, int, int, int]:
    """Average precision ``TP / (TP + FP + FN)`` at one IoU threshold.

    A predicted and a ground-truth cell can match when their IoU is ``>= threshold``; each
    cell matches at most once and ``TP`` is the largest number of such one-to-one matches
    (for ``threshold > 0.5`` the matching is unique; below it a maximum bipartite matching
    is computed). Unmatched predicted cells are false positives, unmatched ground-truth
    cells false negatives. Each match counts once (not twice as in CellStitch's evaluation
    script).

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X) or Contingency
        Predicted labels, or a table from :func:`contingency` (then leave ``gt`` unset).
    gt : array-like of shape (Z, Y, X), optional
        Ground-truth labels; required when ``pred`` is a volume.
    threshold : float, default=0.5
        IoU threshold in ``(0, 1]``.
    return_counts : bool, default=False
        Also return the counts.

    Returns
    -------
    ap : float
        In ``[0, 1]``. Two all-background volumes score ``1.0``.
    tp, fp, fn : int
        Only when ``return_counts=True``.
    """
    table = _as_contingency(pred, gt)
    threshold = _check_threshold(threshold)
    tp = _n_matches(_iou(table), threshold)
    ap = _ap(tp, table.n_pred, table.n_gt)
    if return_counts:
        return ap, tp, table.n_pred - tp, table.n_gt - tp
    return ap


def mean_average_precision(
    pred: Any,
    gt: Any = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> float:
    """Mean of :func:`average_precision` over IoU thresholds.

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X) or Contingency
        Predicted labels, or a table from :func:`contingency` (then leave ``gt`` unset).
    gt : array-like of shape (Z, Y, X), optional
        Ground-truth labels; required when ``pred`` is a volume.
    thresholds : sequence of float, default=(0.25, 0.5, 0.75)
        IoU thresholds in ``(0, 1]``, as in the paper.

    Returns
    -------
    map : float
    """
    table = _as_contingency(pred, gt)
    values = _check_thresholds(thresholds)
    iou = _iou(table)
    return float(np.mean([_ap(_n_matches(iou, t), table.n_pred, table.n_gt) for t in values]))


def _jaccard(table: Contingency, iou: sparse.csr_array) -> float:
    if table.n_gt == 0:
        return 1.0 if table.n_pred == 0 else 0.0
    best = np.zeros(table.n_gt)
    coo = iou.tocoo()
    np.maximum.at(best, coo.col, coo.data)
    return float(best.mean())


def jaccard_index(pred: Any, gt: Any = None) -> float:
    """Mean over ground-truth cells of the best IoU with any predicted cell.

    For every ground-truth cell ``g`` take ``max_p IoU(p, g)`` over predicted cells ``p``
    (``0`` when no predicted cell overlaps ``g``), then average over ground-truth cells.
    Predicted cells that overlap no ground-truth cell do not lower the score; they are
    penalised by :func:`average_precision` instead.

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X) or Contingency
        Predicted labels, or a table from :func:`contingency` (then leave ``gt`` unset).
    gt : array-like of shape (Z, Y, X), optional
        Ground-truth labels; required when ``pred`` is a volume.

    Returns
    -------
    jaccard : float
        In ``[0, 1]``. With no ground-truth cell it is ``1.0`` if the prediction is empty
        too, else ``0.0``.
    """
    table = _as_contingency(pred, gt)
    return _jaccard(table, _iou(table))


def segmentation_scores(
    pred: Any,
    gt: Any = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, float | int]:
    """All instance scores from a single contingency table.

    Parameters
    ----------
    pred : array-like of shape (Z, Y, X) or Contingency
        Predicted labels, or a table from :func:`contingency` (then leave ``gt`` unset).
    gt : array-like of shape (Z, Y, X), optional
        Ground-truth labels; required when ``pred`` is a volume.
    thresholds : sequence of float, default=(0.25, 0.5, 0.75)
        IoU thresholds in ``(0, 1]``.

    Returns
    -------
    scores : dict
        ``"ap@<t>"`` for each threshold (formatted with ``:g``, e.g. ``"ap@0.5"``), ``"mAP"``
        their mean, ``"jaccard"`` (see :func:`jaccard_index`), ``"n_pred"`` and ``"n_gt"``
        the numbers of cells.
    """
    table = _as_contingency(pred, gt)
    values = _check_thresholds(thresholds)
    iou = _iou(table)
    scores: dict[str, float | int] = {}
    aps = []
    for t in values:
        ap = _ap(_n_matches(iou, t), table.n_pred, table.n_gt)
        scores[f"ap@{t:g}"] = ap
        aps.append(ap)
    scores["mAP"] = float(np.mean(aps))
    scores["jaccard"] = _jaccard(table, iou)
    scores["n_pred"] = table.n_pred
    scores["n_gt"] = table.n_gt
    return scores


def _pair_set(pairs: Any, name: str) -> set[tuple[int, int]]:
    if pairs is None or isinstance(pairs, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of (a, b) label pairs, got {pairs!r}.")
    if hasattr(pairs, "to_numpy"):  # a DataFrame iterates over column names, not rows
        pairs = pairs.to_numpy()
    if not isinstance(pairs, Iterable):
        raise TypeError(
            f"{name} must be an iterable of (a, b) label pairs, got {type(pairs).__name__}."
        )
    out: set[tuple[int, int]] = set()
    for pair in pairs:
        try:
            a, b = pair
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must hold (a, b) label pairs, got the item {pair!r}."
            ) from None
        for v in (a, b):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
                raise TypeError(f"{name} labels must be integers, got {v!r} in the pair {pair!r}.")
        a, b = int(a), int(b)
        if a == b:
            raise ValueError(f"{name} pairs must join two different labels, got ({a}, {b}).")
        out.add((min(a, b), max(a, b)))
    return out


def pair_scores(
    predicted_pairs: Iterable[tuple[int, int]],
    true_pairs: Iterable[tuple[int, int]],
) -> dict[str, float | int]:
    """Precision, recall and F1 of merge decisions over label pairs.

    Pairs are unordered (``(a, b)`` and ``(b, a)`` are the same pair) and are compared as
    sets: repeated pairs count once.

    Parameters
    ----------
    predicted_pairs : iterable of (int, int)
        Pairs of labels declared to be one cell (e.g. the merges a corrector applied).
        An ``(n, 2)`` array or a two-column DataFrame works too.
    true_pairs : iterable of (int, int)
        Pairs of labels that truly belong to one cell.

    Returns
    -------
    scores : dict
        ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``, ``f1`` their harmonic
        mean, and the counts ``tp``, ``fp``, ``fn``. A ratio whose denominator is zero is
        ``0.0`` (scikit-learn's ``zero_division`` default, without the warning); so is
        ``f1`` when precision and recall are both zero. Hence two empty sets give
        ``precision = recall = f1 = 0.0``.

    Raises
    ------
    TypeError
        If a label is not an integer.
    ValueError
        If an item is not a pair or joins a label with itself.
    """
    predicted = _pair_set(predicted_pairs, "predicted_pairs")
    true = _pair_set(true_pairs, "true_pairs")
    tp = len(predicted & true)
    fp = len(predicted) - tp
    fn = len(true) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _majority_owner(labels: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each non-zero id of ``labels`` and the id of ``reference`` under most of its voxels."""
    inside = labels != 0
    ids, inverse = np.unique(labels[inside], return_inverse=True)
    ref_ids, ref_inverse = np.unique(reference[inside], return_inverse=True)
    keys, counts = np.unique(
        inverse.astype(np.int64) * len(ref_ids) + ref_inverse, return_counts=True
    )
    label_pos, ref_pos = keys // len(ref_ids), keys % len(ref_ids)
    # Per label, the most voxels first, then the smallest reference id.
    order = np.lexsort((ref_ids[ref_pos], -counts, label_pos))
    first = np.ones(len(order), dtype=bool)
    first[1:] = label_pos[order][1:] != label_pos[order][:-1]
    owner = np.zeros(len(ids), dtype=np.int64)
    owner[label_pos[order][first]] = ref_ids[ref_pos[order][first]].astype(np.int64)
    return ids, owner


def repair_scores(
    flawed: Any,
    corrected: Any,
    ground_truth: Any,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, float | int]:
    """How many wrong splits a merge-only corrector repaired, and at what cost.

    Scores a correction without a list of synthetic merges, from the ground truth alone,
    as needed for stitched volumes (:func:`~sklearn_overseg.synthesize_stitched`). The
    **owner** of an input label is the ground-truth cell holding most of its voxels
    (background when most of it lies outside every cell).

    * ``split_links``: per true cell, the number of input labels it owns minus one, summed.
    * ``repaired``: per true cell, its labels owned minus the distinct corrected ids
      among them, summed; at most ``split_links``.
    * ``false_joins``: per corrected id, the distinct owners of the input labels it holds
      minus one, summed; each label owned by background counts as an owner of its own,
      so joining it to anything is a false join. A join already in the input (one label
      over two cells) is not counted: it is one input label with one owner.
    * ``mAP_input``, ``mAP_corrected``: mAP of the input and the corrected volume.
    * ``mAP_ceiling``: mAP after relabelling every input label to its owner (labels owned
      by background stay as they are), the best any merge-only corrector can reach.

    Parameters
    ----------
    flawed : array-like of int, shape (Z, Y, X)
        The input of the correction.
    corrected : array-like of int, shape (Z, Y, X)
        Its output: input labels relabelled (merged) and background filled, no other
        change. Each input label is assigned the corrected id under most of its voxels.
    ground_truth : array-like of int, shape (Z, Y, X)
    thresholds : sequence of float, default=(0.25, 0.5, 0.75)
        IoU thresholds of the mAP.

    Returns
    -------
    scores : dict
        The counts above, ``repaired_fraction`` and ``false_join_fraction`` (both over
        ``split_links``; 0 when there is none), and the three mAPs.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg.evaluation.metrics import repair_scores
    >>> gt = np.zeros((4, 4, 4), dtype=np.uint8); gt[:, :2] = 1; gt[:, 2:] = 2
    >>> flawed = gt.copy(); flawed[2:, :2] = 3            # cell 1 split in two
    >>> corrected = flawed.copy(); corrected[flawed == 3] = 1
    >>> s = repair_scores(flawed, corrected, gt)
    >>> s["split_links"], s["repaired"], s["false_joins"]
    (1, 1, 0)
    """
    flawed = check_label_volume(flawed, name="flawed", allow_empty=True)
    corrected = check_label_volume(corrected, name="corrected", allow_empty=True)
    ground_truth = check_label_volume(ground_truth, name="ground_truth", allow_empty=True)
    if not flawed.shape == corrected.shape == ground_truth.shape:
        raise ValueError(
            f"flawed {flawed.shape}, corrected {corrected.shape} and ground_truth "
            f"{ground_truth.shape} must have the same shape."
        )
    ids, owner = _majority_owner(flawed, ground_truth)
    _, after = _majority_owner(flawed, corrected)
    owned = owner != 0
    split_links = repaired = false_joins = 0
    if ids.size:
        per_cell = np.unique(owner[owned], return_counts=True)[1]
        split_links = int((per_cell - 1).sum())
        cell_after = np.unique(np.stack([owner[owned], after[owned]]), axis=1)
        distinct_after = np.unique(cell_after[0], return_counts=True)[1]
        repaired = int((per_cell - distinct_after).sum())
        # A label owned by background is no cell: joining two such labels is a false
        # join too (as label_candidates says), so each counts as an owner of its own.
        key = np.where(owned, owner, -1 - np.arange(len(ids), dtype=np.int64))
        joined = np.unique(np.stack([after, key]), axis=1)
        joined = joined[:, joined[0] != 0]
        false_joins = int((np.unique(joined[0], return_counts=True)[1] - 1).sum())
    ceiling = np.zeros(flawed.shape, dtype=np.int64)
    if ids.size:
        # Labels owned by background keep an id of their own, above every true id.
        top = int(max(int(ground_truth.max()), 0))
        target = np.where(owned, owner, top + 1 + np.arange(len(ids)))
        inside = flawed != 0
        ceiling[inside] = target[np.searchsorted(ids, flawed[inside])]
    maps = {
        name: mean_average_precision(volume, ground_truth, thresholds)
        for name, volume in (("input", flawed), ("corrected", corrected), ("ceiling", ceiling))
    }
    return {
        "split_links": split_links,
        "repaired": repaired,
        "false_joins": false_joins,
        "repaired_fraction": repaired / split_links if split_links else 0.0,
        "false_join_fraction": false_joins / split_links if split_links else 0.0,
        "mAP_input": maps["input"],
        "mAP_corrected": maps["corrected"],
        "mAP_ceiling": maps["ceiling"],
    }

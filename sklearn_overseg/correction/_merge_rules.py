"""Which judged pairs a correction merges, and the groups the merges make.

Bookkeeping on the candidate table and its probabilities, kept apart from
:class:`~sklearn_overseg.correction.corrector.SegmentationCorrector`, which applies the merges to
the volume: thresholds per candidate kind, one partner per side of a cell (siblings excepted), and a
union-find of the merged cells with their bounding boxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Options

__all__ = [
    "KindThresholds",
    "MergeGroups",
    "check_probabilities",
    "check_sibling_threshold",
    "check_threshold",
    "kind_thresholds",
    "one_to_one",
    "union_frame",
]


class MergeGroups:
    """Union-find over cell ids that also tracks each group's bounding box."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.bbox: dict[int, np.ndarray] = {}

    def find(self, label: int) -> int:
        root = label
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(label, label) != root:
            self.parent[label], label = root, self.parent[label]
        return root

    def union(self, root: int, other: int, bbox_root, bbox_other) -> None:
        self.parent[other] = root
        lo = np.minimum(bbox_root[0::2], bbox_other[0::2])
        hi = np.maximum(bbox_root[1::2], bbox_other[1::2])
        merged = np.empty(6, dtype=np.int64)
        merged[0::2], merged[1::2] = lo, hi
        self.bbox[root] = merged


def is_threshold(value) -> bool:
    # NaN fails both comparisons; a bool is not a probability.
    return isinstance(value, Real) and not isinstance(value, bool) and 0 <= value <= 1


class KindThresholds(Options):
    """A non-empty dict of candidate kind (str) to a threshold in [0, 1].

    An ``Options`` only because ``_validate_params`` accepts no other constraint class;
    the option set is unused.
    """

    def __init__(self) -> None:
        super().__init__(dict, set())

    def is_satisfied_by(self, val) -> bool:
        return (
            isinstance(val, Mapping)
            and len(val) > 0
            and all(isinstance(k, str) and is_threshold(v) for k, v in val.items())
        )

    def __str__(self) -> str:
        return "a non-empty dict of candidate kind (str) to a float in [0, 1]"


def check_threshold(threshold) -> None:
    """Refuse a bad threshold where it is used (it may be set after fit, or loaded)."""
    if isinstance(threshold, Mapping):
        if not threshold:
            raise ValueError("threshold is an empty dict: give one value per candidate kind.")
        for kind, value in threshold.items():
            if not isinstance(kind, str):
                raise ValueError(f"threshold keys must be candidate kinds (str), got {kind!r}.")
            if not is_threshold(value):
                raise ValueError(f"threshold[{kind!r}] must be in [0, 1], got {value!r}.")
    elif not is_threshold(threshold):
        raise ValueError(
            f"threshold must be a float in [0, 1] or a dict of kind to such floats, "
            f"got {threshold!r}."
        )


def check_sibling_threshold(sibling_threshold: Any) -> None:
    """Refuse a bad ``sibling_threshold`` where it is used (set after fit, or loaded)."""
    if sibling_threshold is not None and not is_threshold(sibling_threshold):
        raise ValueError(
            f"sibling_threshold must be None or a float in [0, 1], got {sibling_threshold!r}."
        )


def kind_thresholds(threshold: Any, kinds: np.ndarray) -> np.ndarray:
    """The threshold of each candidate, by its kind (one float, or a dict of kind to float)."""
    check_threshold(threshold)
    if not isinstance(threshold, Mapping):
        return np.full(len(kinds), float(threshold))
    missing = sorted(set(kinds) - set(threshold))
    if missing:
        raise ValueError(f"threshold has no value for candidate kind(s) {missing}.")
    return np.array([float(threshold[k]) for k in kinds])


def one_to_one(
    table: pd.DataFrame,
    proba: np.ndarray,
    accepted: np.ndarray,
    reason: np.ndarray,
    sibling_threshold: float | None,
) -> np.ndarray:
    """Keep, among accepted axial pairs, at most one partner below A and one above B.

    Pairs are taken from the most probable down. Except for siblings: a second partner on
    the same side is kept when it and a partner kept already are a lateral candidate at
    least ``sibling_threshold`` probable, i.e. two pieces of one cross-section that both
    continue the cell. Other kinds are kept whenever accepted. ``reason`` (one entry per
    row) is updated for the rows dropped here.

    Returns
    -------
    chosen : ndarray of bool
    """
    chosen = np.zeros(len(table), dtype=bool)
    partners: dict[tuple[int, str, str], list[int]] = {}
    kinds = table["kind"].to_numpy()
    cell_a = table["cell_a"].to_numpy()
    cell_b = table["cell_b"].to_numpy()
    siblings = _sibling_pairs(kinds, cell_a, cell_b, proba, sibling_threshold)
    for i in np.argsort(-proba, kind="stable"):
        if not accepted[i]:
            continue
        a, b = int(cell_a[i]), int(cell_b[i])
        down, up = (a, kinds[i], "down"), (b, kinds[i], "up")
        if kinds[i] == "axial" and not (
            _joins_siblings(partners.get(down, ()), b, siblings)
            and _joins_siblings(partners.get(up, ()), a, siblings)
        ):
            reason[i] = "a more probable partner was merged"
            continue
        partners.setdefault(down, []).append(b)
        partners.setdefault(up, []).append(a)
        chosen[i] = True
    return chosen


def _sibling_pairs(kinds, cell_a, cell_b, proba, sibling_threshold) -> set[tuple[int, int]]:
    """Lateral candidates (smaller id first) at least ``sibling_threshold`` probable."""
    check_sibling_threshold(sibling_threshold)
    if sibling_threshold is None:
        return set()
    keep = (kinds == "lateral") & (proba >= sibling_threshold)
    lo = np.minimum(cell_a[keep], cell_b[keep]).tolist()
    hi = np.maximum(cell_a[keep], cell_b[keep]).tolist()
    return set(zip(lo, hi, strict=True))


def union_frame(bbox_a, bbox_b) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` holding two ``(z0, z1, y0, y1, x0, x1)`` boxes in-plane."""
    return (
        int(min(bbox_a[2], bbox_b[2])),
        int(max(bbox_a[3], bbox_b[3])),
        int(min(bbox_a[4], bbox_b[4])),
        int(max(bbox_a[5], bbox_b[5])),
    )


def _joins_siblings(kept, cell: int, siblings: set[tuple[int, int]]) -> bool:
    """True when nothing is ``kept`` on this side, or ``cell`` is a sibling of one kept."""
    return not kept or any((min(k, cell), max(k, cell)) in siblings for k in kept)


def check_probabilities(proba: np.ndarray, classifier) -> None:
    """Refuse probabilities a threshold cannot judge (NaN compares False: nothing merged)."""
    proba = np.asarray(proba, dtype=float)
    bad = ~np.isfinite(proba) | (proba < 0) | (proba > 1)
    if bad.any():
        raise ValueError(
            f"the classifier ({type(classifier).__name__}) returned {int(bad.sum())} of "
            f"{proba.size} probabilities that are NaN, infinite or outside [0, 1] (first: "
            f"{proba[bad][0]!r}); its weights are probably corrupt: retrain or reload it."
        )

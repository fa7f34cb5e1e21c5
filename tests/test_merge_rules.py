"""The merge bookkeeping of ``sklearn_overseg.correction._merge_rules`` on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklearn_overseg.correction._merge_rules import (
    MergeGroups,
    check_probabilities,
    kind_thresholds,
    one_to_one,
    union_frame,
)


def _table(rows):
    return pd.DataFrame(rows, columns=["cell_a", "cell_b", "kind"])


def _choose(rows, proba, sibling_threshold=0.7, accepted=None):
    table = _table(rows)
    proba = np.asarray(proba, dtype=float)
    accepted = proba > 0.5 if accepted is None else np.asarray(accepted)
    reason = np.array(["below threshold"] * len(table), dtype=object)
    chosen = one_to_one(table, proba, accepted, reason, sibling_threshold)
    return chosen.tolist(), reason.tolist()


def test_one_partner_per_side_the_most_probable():
    # 1 above 2 and 3; 4 above 3 as well.
    rows = [(1, 2, "axial"), (1, 3, "axial"), (4, 3, "axial")]
    chosen, reason = _choose(rows, [0.8, 0.9, 0.95])
    assert chosen == [True, False, True]
    assert reason[1] == "a more probable partner was merged"
    assert reason[0] == "below threshold"  # left for the caller to set when merged


@pytest.mark.parametrize(
    ("lateral", "sibling_threshold", "both"),
    [(0.8, 0.7, True), (0.6, 0.7, False), (0.8, None, False), (0.7, 0.7, True)],
)
def test_siblings_on_one_side_are_both_kept(lateral, sibling_threshold, both):
    # 2 and 3 lie side by side under 1; the lateral pair itself is not accepted.
    rows = [(1, 2, "axial"), (1, 3, "axial"), (3, 2, "lateral")]
    chosen, _ = _choose(rows, [0.9, 0.8, lateral], sibling_threshold, accepted=[True, True, False])
    assert chosen == [True, both, False]


def test_siblings_above_a_cell_and_other_kinds_are_unconstrained():
    rows = [
        (1, 3, "axial"),
        (2, 3, "axial"),
        (1, 2, "lateral"),
        (3, 5, "contact"),
        (3, 6, "contact"),
    ]
    chosen, _ = _choose(rows, [0.9, 0.85, 0.75, 0.9, 0.8], accepted=[1, 1, 0, 1, 1])
    assert chosen == [True, True, False, True, True]


def test_kind_thresholds_and_bad_values():
    kinds = np.array(["axial", "lateral", "axial"])
    np.testing.assert_array_equal(kind_thresholds(0.4, kinds), [0.4, 0.4, 0.4])
    by_kind = kind_thresholds({"axial": 0.6, "lateral": 0.9}, kinds)
    np.testing.assert_array_equal(by_kind, [0.6, 0.9, 0.6])
    with pytest.raises(ValueError, match="no value for candidate kind"):
        kind_thresholds({"axial": 0.6}, kinds)
    with pytest.raises(ValueError, match=r"threshold\['axial'\] must be in \[0, 1\]"):
        kind_thresholds({"axial": float("nan")}, kinds)
    with pytest.raises(ValueError, match="probabilities that are NaN"):
        check_probabilities(np.array([0.2, np.nan]), object())


def test_groups_track_roots_and_boxes():
    groups = MergeGroups()
    box = {1: np.array([0, 4, 2, 8, 2, 8]), 2: np.array([5, 9, 1, 6, 3, 9])}
    groups.union(1, 2, box[1], box[2])
    groups.union(1, 7, groups.bbox[1], np.array([9, 12, 0, 4, 0, 4]))
    assert groups.find(2) == groups.find(7) == 1 and groups.find(5) == 5
    assert groups.bbox[1].tolist() == [0, 12, 0, 8, 0, 9]
    assert union_frame(box[1], box[2]) == (1, 8, 2, 9)

"""Tests of SegmentationCorrector (sklearn_overseg.correction.corrector).

The merge logic is tested with a deterministic "judge": a tiny classifier whose
probabilities are fixed per (cell_a, cell_b), so that decisions, chains and fills can
be checked by hand. One end-to-end test trains a real (logistic) pipeline and grid
searches the threshold with volumes as samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from sklearn_overseg.classification.pipeline import make_default_pipeline
from sklearn_overseg.correction.corrector import DECISION_COLUMNS, SegmentationCorrector
from sklearn_overseg.evaluation.metrics import mean_average_precision
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.contact import CombinedScreener
from sklearn_overseg.screening.lateral import LateralScreener
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import synthesize_flaws

# --------------------------------------------------------------------------- judges


class FixedJudge(ClassifierMixin, BaseEstimator):
    """Probability of a pair looked up in ``probabilities[(cell_a, cell_b)]``.

    When ``max_layers_a`` is set, a row whose geometry has more A layers than that (a
    pair re-judged after its upper cell absorbed the cell above) gets
    ``rejudge_probability`` instead. ``fit`` records what it was trained on.
    """

    def __init__(self, probabilities=None, default=0.0, max_layers_a=None, rejudge_probability=0.0):
        self.probabilities = probabilities
        self.default = default
        self.max_layers_a = max_layers_a
        self.rejudge_probability = rejudge_probability

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        y = np.asarray(y)
        self.seen_labels_ = {
            (int(a), int(b)): int(v) for a, b, v in zip(X["cell_a"], X["cell_b"], y, strict=True)
        }
        self.n_seen_ = len(X)
        self.layer_steps_ = sorted({g.layer_step for g in X["geometry"]})
        return self

    def predict_proba(self, X):
        probs = self.probabilities or {}
        p = np.array(
            [
                probs.get((int(a), int(b)), self.default)
                for a, b in zip(X["cell_a"], X["cell_b"], strict=True)
            ],
            dtype=float,
        )
        if self.max_layers_a is not None:
            tall = np.array([g.a.shape[0] > self.max_layers_a for g in X["geometry"]])
            p[tall] = self.rejudge_probability
        RecordingLog.tables.append(X.copy())
        return np.column_stack([1 - p, p])


class RecordingLog:
    """Every table a judge was asked about, in order (reset by the tests that read it)."""

    tables: list = []  # noqa: RUF012 - a deliberate process-wide log


# --------------------------------------------------------------------------- volumes

SQ = (slice(3, 9), slice(3, 9))  # 6×6 column footprint, 36 px
SQ2 = (slice(3, 9), slice(15, 21))


def two_columns(ids=(1, 2, 3, 4, 5), dtype=np.uint16):
    """Flawed volume and its ground truth.

    Column 1: one cell split twice, ``a`` z0-4 | blank z5 | ``b`` z6-10 | blank z11 |
    ``c`` z12-17. Column 2: two real cells stacked without gap, ``d`` z0-8 / ``e`` z9-17.
    """
    a, b, c, d, e = ids
    vol = np.zeros((18, 12, 24), dtype=dtype)
    vol[0:5][:, SQ[0], SQ[1]] = a
    vol[6:11][:, SQ[0], SQ[1]] = b
    vol[12:18][:, SQ[0], SQ[1]] = c
    vol[0:9][:, SQ2[0], SQ2[1]] = d
    vol[9:18][:, SQ2[0], SQ2[1]] = e
    gt = vol.copy()
    gt[:, SQ[0], SQ[1]] = a
    return vol, gt


def fitted_judge(probabilities=None, default=0.0, **params):
    """A corrector fitted (on real labelled pairs) around a FixedJudge."""
    vol, gt = two_columns()
    judge = FixedJudge(probabilities=probabilities, default=default)
    for key in ("max_layers_a", "rejudge_probability"):
        if key in params:
            judge.set_params(**{key: params.pop(key)})
    return SegmentationCorrector(classifier=judge, **params).fit([vol], [gt])


CHAIN_PROBS = {(1, 2): 0.9, (2, 3): 0.8, (4, 5): 0.1}


# ---------------------------------------------------------------------- merge logic


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.uint8, (251, 252, 253, 254, 255)),
        (np.uint16, (1000, 2000, 3000, 4000, 65535)),
        (np.int64, tuple(2**40 + k for k in (5, 1, 9, 3, 7))),
    ],
)
def test_chain_is_merged_top_to_bottom_and_rejudged(dtype, ids):
    vol, gt = two_columns(ids, dtype)
    a, b, c, d, e = ids
    probs = {(a, b): 0.9, (b, c): 0.8, (d, e): 0.1}
    corrector = SegmentationCorrector(classifier=FixedJudge(probs)).fit([vol], [gt])
    vol.setflags(write=False)
    before = vol.copy()
    corrected, decisions = corrector.correct(vol)

    np.testing.assert_array_equal(vol, before)
    assert corrected.dtype == np.dtype(dtype)
    assert corrected is not vol and corrected.flags.writeable
    # The whole column is one cell with A's id, both blank layers filled (36 px each).
    np.testing.assert_array_equal(corrected, gt)
    assert set(np.unique(corrected)) == {0, a, d, e}

    assert list(decisions.columns) == list(DECISION_COLUMNS)
    rows = decisions.set_index(["cell_a", "cell_b"])
    assert rows.loc[(a, b), "merged"] and rows.loc[(b, c), "merged"]
    assert not rows.loc[(d, e), "merged"]
    assert decisions["merged"].sum() == 2
    assert rows.loc[(a, b), "probability"] == pytest.approx(0.9)
    assert rows.loc[(b, c), "probability"] == pytest.approx(0.8)
    assert rows.loc[(d, e), "probability"] == pytest.approx(0.1)
    # Only the second link of the chain is judged again, on the merged cell A∪B.
    assert np.isnan(rows.loc[(a, b), "probability_rejudged"])
    assert rows.loc[(b, c), "probability_rejudged"] == pytest.approx(0.8)
    assert np.isnan(rows.loc[(d, e), "probability_rejudged"])
    assert rows.loc[(a, b), "merged_into"] == a and rows.loc[(b, c), "merged_into"] == a
    assert rows.loc[(d, e), "merged_into"] == 0
    assert rows.loc[(a, b), "filled_voxels"] == 36 and rows.loc[(b, c), "filled_voxels"] == 36
    assert rows.loc[(d, e), "filled_voxels"] == 0
    assert rows["reason"].to_dict() == {
        (a, b): "merged",
        (b, c): "merged",
        (d, e): "below threshold",
    }
    assert rows.loc[(a, b), "gap"] == 1 and rows.loc[(d, e), "gap"] == 0


def test_rejudge_sees_merged_geometry_and_can_reject():
    RecordingLog.tables.clear()
    # A has 5 layers, A∪B (with the filled gap) 11: the re-judged pair gets 0.2.
    corrector = fitted_judge(CHAIN_PROBS, max_layers_a=5, rejudge_probability=0.2)
    vol, _ = two_columns()
    RecordingLog.tables.clear()
    corrected, decisions = corrector.correct(vol)
    rows = decisions.set_index(["cell_a", "cell_b"])
    assert rows.loc[(1, 2), "merged"] and not rows.loc[(2, 3), "merged"]
    assert rows.loc[(2, 3), "probability"] == pytest.approx(0.8)
    assert rows.loc[(2, 3), "probability_rejudged"] == pytest.approx(0.2)
    assert rows.loc[(2, 3), "reason"] == "rejected after merging above"
    assert rows.loc[(2, 3), "merged_into"] == 0 and rows.loc[(2, 3), "filled_voxels"] == 0
    # A and B are one cell (gap z5 filled); C keeps its id; gap z11 stays empty.
    assert (corrected[0:11][:, SQ[0], SQ[1]] == 1).all()
    assert (corrected[11][SQ] == 0).all()
    assert (corrected[12:18][:, SQ[0], SQ[1]] == 3).all()
    # The re-judged row carried A∪B's 11 layers (z0-10) and C's 6.
    rejudged = RecordingLog.tables[-1]
    assert len(rejudged) == 1
    geom = rejudged["geometry"].iloc[0]
    assert geom.a.shape[0] == 11 and geom.a.all()
    assert geom.b.shape[0] == 6 and geom.b.all()


def test_rejudged_row_columns_describe_the_merged_cell():
    corrector = fitted_judge(CHAIN_PROBS)
    vol, _ = two_columns()
    RecordingLog.tables.clear()
    corrector.correct(vol)
    row = RecordingLog.tables[-1].iloc[0]
    assert row["z_a_first"] == 0 and row["z_a_last"] == 10
    # A (5 layers) + filled gap (1) + B (5 layers), 36 px each.
    assert row["voxels_a"] == 11 * 36


def test_one_to_one_keeps_the_most_probable_partner():
    # A above a gap; below it two cells B1 (left half) and B2 (right half) both touch A.
    vol = np.zeros((9, 10, 10), dtype=np.uint16)
    vol[0:4, 2:8, 2:8] = 1
    vol[5:9, 2:8, 2:5] = 2
    vol[5:9, 2:8, 5:8] = 3
    gt = vol.copy()
    gt[vol == 2] = 1  # B1 is A's lower part, B2 a real cell: training sees both classes
    probs = {(1, 2): 0.7, (1, 3): 0.95}
    corrector = SegmentationCorrector(classifier=FixedJudge(probs)).fit([vol], [gt])
    corrected, decisions = corrector.correct(vol)
    rows = decisions.set_index(["cell_a", "cell_b"])
    assert rows.loc[(1, 3), "merged"] and rows.loc[(1, 3), "reason"] == "merged"
    assert not rows.loc[(1, 2), "merged"]
    assert rows.loc[(1, 2), "reason"] == "a more probable partner was merged"
    assert set(np.unique(corrected)) == {0, 1, 2}
    assert (corrected[5:9, 2:8, 5:8] == 1).all() and (corrected[5:9, 2:8, 2:5] == 2).all()


def _cut_below():
    """A (z0-3) over B1 (z5-8, left half) and B2 (z5, right half): B's cut top layer."""
    vol = np.zeros((9, 10, 10), dtype=np.uint16)
    vol[0:4, 2:8, 2:8] = 1
    vol[5:9, 2:8, 2:5] = 2
    vol[6:9, 2:8, 5:8] = 2
    vol[5, 2:8, 5:8] = 3
    gt = vol.copy()
    gt[vol == 2] = 1  # 3 a cell of its own here, so that the judge's training sees both classes
    return vol, gt


@pytest.mark.parametrize(
    ("sibling_threshold", "lateral_probability", "joined"),
    [(0.7, 0.8, True), (0.7, 0.6, False), (None, 0.8, False)],
)
def test_siblings_below_a_cell_are_both_merged(sibling_threshold, lateral_probability, joined):
    vol, gt = _cut_below()
    screener = CombinedScreener(
        axial=AxialGapScreener(max_gap=1), contact="drop", lateral=LateralScreener()
    )
    # The lateral pair alone is below its own threshold: only the sibling rule joins 3.
    probs = {(1, 2): 0.95, (1, 3): 0.9, (2, 3): lateral_probability}
    corrector = SegmentationCorrector(
        screener=screener,
        classifier=FixedJudge(probs),
        threshold={"axial": 0.5, "lateral": 0.97},
        sibling_threshold=sibling_threshold,
        interpolation="none",
    ).fit([vol], [gt])
    corrected, decisions = corrector.correct(vol)
    rows = decisions.set_index(["cell_a", "cell_b", "kind"])
    assert rows.loc[(1, 2, "axial"), "merged"]
    assert rows.loc[(2, 3, "lateral"), "reason"] == "below threshold"
    assert rows.loc[(1, 3, "axial"), "merged"] == joined
    expected = {0, 1} if joined else {0, 1, 3}
    assert set(np.unique(corrected)) == expected


def _gap_with_neighbour():
    """A (z0-4) | gap z5 | B (z6-11) in an 8×8 footprint; cell 7 fills 2 of the 8 rows of
    the footprint at z5 (25 % of it: too small to block) and cell 8 sits beside it."""
    vol = np.zeros((12, 12, 12), dtype=np.uint16)
    vol[0:5, 2:10, 2:10] = 1
    vol[6:12, 2:10, 2:10] = 2
    vol[5, 2:4, 2:10] = 7
    vol[:, 10:12, :] = 8
    gt = vol.copy()
    gt[gt == 2] = 1
    gt[5, 4:10, 2:10] = 1
    gt[0:6, 10:12, :] = 9  # cell 8 is two real cells: the (9, 8) pair is a negative
    vol_train = vol.copy()
    vol_train[0:6, 10:12, :] = 9
    return vol, gt, vol_train


@pytest.mark.parametrize("method", ["ot", "sdf"])
def test_interpolation_fills_only_background(method):
    vol, gt, vol_train = _gap_with_neighbour()
    corrector = SegmentationCorrector(
        classifier=FixedJudge({(1, 2): 0.9}), interpolation=method
    ).fit([vol_train], [gt])
    corrected, decisions = corrector.correct(vol)
    row = decisions.set_index(["cell_a", "cell_b"]).loc[(1, 2)]
    assert row["merged"] and row["gap"] == 1
    # The neighbour's 16 voxels in the gap and cell 8 are untouched.
    assert (corrected[5, 2:4, 2:10] == 7).all()
    assert (corrected == 8).sum() == (vol == 8).sum()
    assert (corrected == 7).sum() == 16
    # Between two identical 8×8 squares the fill is the square minus the neighbour.
    assert row["filled_voxels"] == 48
    assert (corrected[5, 4:10, 2:10] == 1).all()
    changed = corrected != vol
    assert (vol[changed] == 0).sum() == 48  # every filled voxel was background
    assert set(np.unique(vol[changed])) == {0, 2}  # the rest is B relabelled


def test_interpolation_none_relabels_but_fills_nothing():
    vol, gt, vol_train = _gap_with_neighbour()
    corrector = SegmentationCorrector(
        classifier=FixedJudge({(1, 2): 0.9}), interpolation="none"
    ).fit([vol_train], [gt])
    corrected, decisions = corrector.correct(vol)
    row = decisions.set_index(["cell_a", "cell_b"]).loc[(1, 2)]
    assert row["merged"] and row["filled_voxels"] == 0
    np.testing.assert_array_equal(corrected[5], vol[5])
    assert (corrected[6:12, 2:10, 2:10] == 1).all()
    assert 2 not in np.unique(corrected)


def test_threshold_below_probability_merges_nothing():
    corrector = fitted_judge(CHAIN_PROBS, threshold=0.95)
    vol, _ = two_columns()
    corrected, decisions = corrector.correct(vol)
    np.testing.assert_array_equal(corrected, vol)
    assert not decisions["merged"].any()
    assert (decisions["reason"] == "below threshold").all()
    assert (decisions["filled_voxels"] == 0).all()


def test_threshold_zero_merges_every_candidate():
    corrector = fitted_judge(CHAIN_PROBS, threshold=0.0)
    vol, _ = two_columns()
    corrected, decisions = corrector.correct(vol)
    assert decisions["merged"].all()
    assert set(np.unique(corrected)) == {0, 1, 4}


def test_threshold_one_merges_nothing_even_at_probability_one():
    corrector = fitted_judge(default=1.0, threshold=1.0)
    vol, _ = two_columns()
    corrected, decisions = corrector.correct(vol)
    assert not decisions["merged"].any()
    np.testing.assert_array_equal(corrected, vol)


def test_threshold_one_with_trained_model_returns_the_input(trained):
    corrector, flawed, truths = trained
    corrector = clone(corrector).set_params(threshold=1.0).fit(flawed[1:], truths[1:])
    vol = flawed[0]
    corrected, decisions = corrector.correct(vol)
    assert len(decisions) > 0 and not decisions["merged"].any()
    np.testing.assert_array_equal(corrected, vol)
    assert corrected.dtype == vol.dtype


def test_no_candidates_gives_empty_decisions():
    corrector = fitted_judge(CHAIN_PROBS)
    vol = np.zeros((4, 6, 6), dtype=np.uint16)
    vol[1:3, 1:4, 1:4] = 5
    corrected, decisions = corrector.correct(vol)
    np.testing.assert_array_equal(corrected, vol)
    assert len(decisions) == 0 and list(decisions.columns) == list(DECISION_COLUMNS)


def test_decision_table_types_and_volume_id():
    corrector = fitted_judge(CHAIN_PROBS)
    vol, _ = two_columns()
    _, decisions = corrector.correct(vol, volume_id="stack7", spacing=(2.0, 1.0, 1.0))
    assert (decisions["volume"] == "stack7").all()
    assert all(i.startswith("stack7:") for i in decisions.index)
    assert decisions["merged"].dtype == bool
    assert decisions["probability"].dtype == float
    assert np.issubdtype(decisions["filled_voxels"].dtype, np.integer)
    assert "geometry" not in decisions.columns


# ------------------------------------------------------------------------- fitting


def test_fit_with_ground_truth_labels_real_candidates_by_majority():
    corrector = fitted_judge(CHAIN_PROBS)
    judge = corrector.classifier_
    assert judge.seen_labels_ == {(1, 2): 1, (2, 3): 1, (4, 5): 0}
    assert corrector.n_training_pairs_ == 3
    assert corrector.training_balance_ == {1: 2, 0: 1}
    # The unfitted classifier parameter is left alone.
    assert not hasattr(corrector.classifier, "classes_")


def test_fit_without_y_synthesises_pairs_from_ground_truth():
    gt = make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=0)
    corrector = SegmentationCorrector(classifier=FixedJudge(), n_repeats=1, random_state=0).fit(
        [gt]
    )
    balance = corrector.training_balance_
    assert set(balance) == {0, 1} and min(balance.values()) > 0
    assert sum(balance.values()) == corrector.n_training_pairs_ == corrector.classifier_.n_seen_
    # Same seed, same synthesis.
    again = SegmentationCorrector(classifier=FixedJudge(), n_repeats=1, random_state=0).fit([gt])
    assert again.classifier_.seen_labels_ == corrector.classifier_.seen_labels_
    # A second repeat draws more pairs.
    more = SegmentationCorrector(classifier=FixedJudge(), n_repeats=2, random_state=0).fit([gt])
    assert more.n_training_pairs_ > corrector.n_training_pairs_


def test_transform_and_score_use_the_spacing_of_fit():
    vol, gt = two_columns()
    corrector = SegmentationCorrector(classifier=FixedJudge(CHAIN_PROBS)).fit(
        [vol], [gt], spacing=(4.0, 1.0, 1.0)
    )
    assert corrector.classifier_.layer_steps_ == [4.0]
    RecordingLog.tables.clear()
    corrector.transform([vol])
    assert {g.layer_step for t in RecordingLog.tables for g in t["geometry"]} == {4.0}


def test_not_fitted_errors():
    corrector = SegmentationCorrector(classifier=FixedJudge())
    vol, gt = two_columns()
    with pytest.raises(NotFittedError):
        corrector.correct(vol)
    with pytest.raises(NotFittedError):
        corrector.transform([vol])
    with pytest.raises(NotFittedError):
        corrector.score([vol], [gt])


def test_bad_inputs_raise_clear_errors():
    vol, gt = two_columns()
    corrector = fitted_judge(CHAIN_PROBS)
    with pytest.raises(ValueError, match="3D"):
        corrector.correct(vol[0])
    with pytest.raises(TypeError, match="float"):
        corrector.correct(vol.astype(float))
    with pytest.raises(ValueError, match="negative"):
        corrector.correct(vol.astype(np.int16) - 1)

    fresh = SegmentationCorrector(classifier=FixedJudge())
    with pytest.raises(TypeError, match="list of 3D label volumes"):
        fresh.fit(vol[0])
    with pytest.raises(ValueError, match="empty"):
        fresh.fit([])
    with pytest.raises(ValueError, match=r"1 volumes but y has 2"):
        fresh.fit([vol], [gt, gt])
    with pytest.raises(ValueError, match=r"shape"):
        fresh.fit([vol], [gt[:, :, :12]])
    with pytest.raises(TypeError, match="float"):
        fresh.fit([vol.astype(np.float32)], [gt])
    with pytest.raises(ValueError, match=r"1 volumes but y has 2"):
        corrector.score([vol], [gt, gt])
    with pytest.raises(ValueError, match="shape"):
        corrector.score([vol], [gt[:, :, :12]])
    with pytest.raises(ValueError, match="threshold"):
        SegmentationCorrector(classifier=FixedJudge(), threshold=1.5).fit([vol], [gt])
    with pytest.raises(ValueError, match="interpolation"):
        SegmentationCorrector(classifier=FixedJudge(), interpolation="cubic").fit([vol], [gt])


def test_single_class_training_data_is_refused():
    vol, gt = two_columns()
    # Without column 2 every candidate is a true split: one class only.
    vol[:, SQ2[0], SQ2[1]] = 0
    gt[:, SQ2[0], SQ2[1]] = 0
    with pytest.raises(ValueError, match="single class"):
        SegmentationCorrector(classifier=FixedJudge()).fit([vol], [gt])


def test_params_clone_and_no_work_in_init():
    judge = FixedJudge(CHAIN_PROBS)
    corrector = SegmentationCorrector(classifier=judge, threshold=0.3, interpolation="sdf")
    assert corrector.get_params()["classifier"] is judge
    assert corrector.get_params()["classifier__probabilities"] == CHAIN_PROBS
    copy = clone(corrector)
    assert copy.threshold == 0.3 and copy.classifier is not judge
    assert copy.classifier.probabilities == CHAIN_PROBS
    assert not [k for k in vars(corrector) if k.endswith("_")]
    copy.set_params(classifier__default=0.5)
    assert copy.classifier.default == 0.5 and judge.default == 0.0


# ------------------------------------------------------------- transform and score


def test_transform_and_score():
    corrector = fitted_judge(CHAIN_PROBS)
    vol, gt = two_columns()
    out = corrector.transform([vol, vol])
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_array_equal(out[0], gt)
    np.testing.assert_array_equal(out[1], corrector.correct(vol)[0])
    assert corrector.score([vol], [gt]) == pytest.approx(1.0)
    # Nothing merged: the score is that of the flawed volume (3 parts for 1 cell).
    strict = fitted_judge(CHAIN_PROBS, threshold=0.95)
    expected = mean_average_precision(vol, gt)
    assert expected < 0.7
    assert strict.score([vol], [gt]) == pytest.approx(expected)
    assert strict.score([vol, vol], [gt, gt]) == pytest.approx(expected)


# ------------------------------------------------------------- real model, GridSearch


@pytest.fixture(scope="module")
def trained():
    """A corrector with a logistic pipeline, and three flawed volumes with ground truth."""
    truths, flawed = [], []
    for seed in range(3):
        gt = make_tissue((16, 40, 40), cell_size=(12, 12, 12), random_state=seed)
        truths.append(gt)
        flawed.append(synthesize_flaws(gt, random_state=seed + 10).labels)
    corrector = SegmentationCorrector(
        classifier=make_default_pipeline(classifier=LogisticRegression(max_iter=1000)),
        n_repeats=1,
        random_state=0,
    )
    return corrector, flawed, truths


def test_grid_search_over_threshold_with_volumes_as_samples(trained):
    corrector, flawed, truths = trained
    # Fold 0 trains on volumes 1, 2 and scores volume 0; fold 1 the other way round.
    cv = PredefinedSplit([0, 1, 1])
    search = GridSearchCV(corrector, {"threshold": [0.0, 0.5]}, cv=cv, error_score="raise")
    search.fit(flawed, truths)
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores > 0) & (scores <= 1))
    # Merging every candidate (threshold 0) merges stacked real cells too.
    assert search.best_params_ == {"threshold": 0.5}
    assert scores[1] > scores[0]
    best = search.best_estimator_
    assert best.classifier_ is not corrector.classifier
    # The trained model repairs the flaws: better than the flawed volume.
    assert best.score(flawed[:1], truths[:1]) > mean_average_precision(flawed[0], truths[0])
    assert search.score(flawed[:1], truths[:1]) == pytest.approx(best.score(flawed[:1], truths[:1]))


def test_fit_on_ground_truth_then_correct_improves_map(trained):
    corrector, flawed, truths = trained
    fitted = clone(corrector).fit(truths[1:])
    assert set(fitted.training_balance_) == {0, 1}
    corrected, decisions = fitted.correct(flawed[0])
    assert decisions["merged"].sum() > 0
    before = mean_average_precision(flawed[0], truths[0])
    after = mean_average_precision(corrected, truths[0])
    assert after > before
    assert set(np.unique(corrected)) <= set(np.unique(flawed[0]))


def test_threshold_per_kind():
    table = pd.DataFrame({"kind": ["axial", "contact", "axial"]})
    corrector = SegmentationCorrector(threshold={"axial": 0.2, "contact": 0.9})
    np.testing.assert_array_equal(corrector._thresholds(table["kind"].to_numpy()), [0.2, 0.9, 0.2])
    with pytest.raises(ValueError, match="no value for candidate kind"):
        SegmentationCorrector(threshold={"axial": 0.5})._thresholds(np.array(["contact"]))
    with pytest.raises(ValueError, match=r"threshold\['axial'\] must be in \[0, 1\]"):
        SegmentationCorrector(threshold={"axial": 1.5})._thresholds(np.array(["axial"]))

"""KindClassifier: one classifier per candidate kind behind one predict_proba."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_overseg.classification.dispatch import KindClassifier
from sklearn_overseg.classification.pipeline import make_default_pipeline
from sklearn_overseg.io.persistence import load_estimator, save_estimator


def _prior() -> Pipeline:
    """Predicts the class frequencies of its training rows, whatever the row."""
    select = ColumnTransformer([("num", "passthrough", ["overlap_px"])])
    return Pipeline([("features", select), ("clf", DummyClassifier(strategy="prior"))])


def _logistic() -> Pipeline:
    select = ColumnTransformer([("num", "passthrough", ["overlap_px", "contact_px"])])
    return Pipeline([("features", select), ("clf", LogisticRegression(C=1.0))])


def _table() -> tuple[pd.DataFrame, np.ndarray]:
    """Interleaved kinds. Axial rows: y = 1,0,0,0 (prior 0.25); contact: 1,1,1,0 (0.75)."""
    kind = ["axial", "contact", "axial", "contact", "axial", "contact", "axial", "contact"]
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    table = pd.DataFrame(
        {
            "kind": kind,
            "overlap_px": [30, 5, 2, 6, 1, 7, 3, 1],
            "contact_px": [0, 50, 0, 60, 0, 70, 0, 5],
        },
        index=[f"v:{i}" for i in range(8)],
    )
    return table, y


def test_routes_rows_by_kind_and_keeps_table_order():
    table, y = _table()
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(table, y)
    assert sorted(clf.estimators_) == ["axial", "contact"]
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(table)
    expected_p1 = np.where(table["kind"] == "axial", 0.25, 0.75)
    np.testing.assert_allclose(proba[:, 1], expected_p1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(table), (expected_p1 > 0.5).astype(int))
    # Reversed rows come back reversed: reassembly follows the given table, not the fit.
    np.testing.assert_allclose(clf.predict_proba(table.iloc[::-1])[:, 1], expected_p1[::-1])


def test_each_kind_fits_its_own_rows_only():
    table, y = _table()
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(table, y)
    assert clf.estimators_["axial"][-1].class_prior_.tolist() == [0.75, 0.25]
    assert clf.estimators_["contact"][-1].class_prior_.tolist() == [0.25, 0.75]
    # The parameters are templates, never fitted themselves.
    assert not hasattr(clf.axial[-1], "classes_")


def test_only_present_kinds_are_fitted_and_unseen_kind_is_named():
    table, y = _table()
    axial = table["kind"] == "axial"
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(table[axial], y[axial])
    assert list(clf.estimators_) == ["axial"]
    np.testing.assert_allclose(clf.predict_proba(table[axial])[:, 1], 0.25)
    with pytest.raises(ValueError, match=r"\['contact'\].*fitted for \['axial'\]"):
        clf.predict_proba(table)


def test_single_class_kind_raises_naming_it():
    table, y = _table()
    y = y.copy()
    y[(table["kind"] == "contact").to_numpy()] = 0
    with pytest.raises(ValueError, match=r"'contact' rows hold a single class"):
        KindClassifier(axial=_prior(), contact=_prior()).fit(table, y)


def test_bad_inputs_raise_clear_errors():
    table, y = _table()
    with pytest.raises(ValueError, match="unknown candidate kind 'diagonal'"):
        KindClassifier(axial=_prior()).fit(table.assign(kind="diagonal"), y)
    with pytest.raises(ValueError, match="8 rows, y has shape"):
        KindClassifier(axial=_prior(), contact=_prior()).fit(table, y[:5])
    with pytest.raises(ValueError, match="no 'kind' column"):
        KindClassifier().fit(table.drop(columns="kind"), y)
    with pytest.raises(TypeError, match="got ndarray"):
        KindClassifier().fit(table[["overlap_px"]].to_numpy(), y)


def test_empty_table_predicts_empty_and_unfitted_raises():
    table, y = _table()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        KindClassifier().predict_proba(table)
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(table, y)
    assert clf.predict_proba(table.iloc[:0]).shape == (0, 2)


def test_none_parts_default_to_the_default_pipeline_and_set_params_reaches_them():
    clf = KindClassifier(random_state=3)
    assert clf._template("contact").get_params()["clf__random_state"] == 3
    clf.set_params(contact__clf__max_epochs=7)
    assert isinstance(clf.contact, Pipeline)
    assert clf.get_params()["contact__clf__max_epochs"] == 7
    assert clf.axial is None
    # A seed given together with a nested parameter reaches the default part.
    clf = KindClassifier().set_params(random_state=5, axial__clf__max_epochs=2)
    assert clf.get_params()["axial__clf__random_state"] == 5


def test_clone_is_unfitted_and_keeps_parameters():
    table, y = _table()
    clf = KindClassifier(axial=_prior(), contact=_logistic(), random_state=0).fit(table, y)
    twin = clone(clf)
    assert not hasattr(twin, "estimators_")
    assert twin.get_params()["contact__clf__C"] == 1.0
    assert twin.contact is not clf.contact


def test_grid_search_over_nested_parameters():
    rng = np.random.RandomState(0)
    n = 40
    kind = np.array(["axial", "contact"] * (n // 2))
    y = np.tile([0, 0, 1, 1], n // 4)
    table = pd.DataFrame(
        {
            "kind": kind,
            "overlap_px": y * 10 + rng.rand(n),
            "contact_px": rng.rand(n),
        }
    )
    search = GridSearchCV(
        KindClassifier(axial=_logistic(), contact=_logistic()),
        {"contact__clf__C": [0.01, 1.0]},
        cv=2,
    ).fit(table, y)
    assert search.best_params_["contact__clf__C"] in (0.01, 1.0)
    assert search.best_score_ == 1.0


def test_save_load_round_trip_predicts_identically(tmp_path):
    table, y = _table()
    clf = KindClassifier(axial=_logistic(), contact=_prior()).fit(table, y)
    save_estimator(clf, tmp_path / "model")
    loaded = load_estimator(tmp_path / "model")
    assert isinstance(loaded, KindClassifier)
    assert sorted(loaded.estimators_) == ["axial", "contact"]
    np.testing.assert_array_equal(loaded.predict_proba(table), clf.predict_proba(table))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)


def test_save_load_round_trip_with_default_mlp_pipeline(tmp_path):
    """The fitted torch MLPs of the default pipelines travel inside the dict state."""
    from sklearn_overseg.screening.contact import CombinedScreener
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.training import make_training_table

    gt = make_tissue((24, 48, 48), cell_size=(14, 14, 14), random_state=0)
    table, y = make_training_table(
        [gt],
        screener=CombinedScreener(),
        split_fraction=0.5,
        tilted_fraction=0.3,
        n_repeats=1,
        flip_z=False,
        random_state=0,
    )
    assert set(table["kind"]) == {"axial", "contact"}
    fast = {"clf__max_epochs": 3}
    parts = {k: make_default_pipeline(random_state=0).set_params(**fast) for k in ("a", "c")}
    parts["a"].set_params(features__emd="drop")
    parts["c"].set_params(features__emd="drop")
    clf = KindClassifier(axial=parts["a"], contact=parts["c"]).fit(table, y.to_numpy())
    save_estimator(clf, tmp_path / "model")
    loaded = load_estimator(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(table), clf.predict_proba(table))


# ------------------------------------------------------------------ the lateral kind


def _three_kinds() -> tuple[pd.DataFrame, np.ndarray]:
    """The axial/contact table plus lateral rows with y = 1, 1, 0, 1 (prior 0.75)."""
    table, y = _table()
    lateral = pd.DataFrame(
        {"kind": ["lateral"] * 4, "overlap_px": [4, 5, 6, 7], "contact_px": [4, 5, 6, 7]},
        index=[f"v:l{i}" for i in range(4)],
    )
    both = pd.concat([table.iloc[:3], lateral.iloc[:2], table.iloc[3:], lateral.iloc[2:]])
    labels = np.concatenate([y[:3], [1, 1], y[3:], [0, 1]])
    return both, labels


def test_lateral_rows_are_routed_to_their_own_classifier():
    from sklearn_overseg.classification.dispatch import KINDS

    assert KINDS == ("axial", "contact", "lateral")
    table, y = _three_kinds()
    clf = KindClassifier(axial=_prior(), contact=_prior(), lateral=_prior()).fit(table, y)
    assert sorted(clf.estimators_) == ["axial", "contact", "lateral"]
    assert clf.estimators_["lateral"][-1].class_prior_.tolist() == [0.25, 0.75]
    expected = table["kind"].map({"axial": 0.25, "contact": 0.75, "lateral": 0.75})
    np.testing.assert_allclose(clf.predict_proba(table)[:, 1], expected.to_numpy())
    # A model fitted without lateral rows names the kind it cannot judge.
    plain, y_plain = _table()
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(plain, y_plain)
    with pytest.raises(ValueError, match=r"\['lateral'\] were not in the training table"):
        clf.predict_proba(table)


def test_lateral_default_part_is_the_lateral_pipeline():
    from sklearn_overseg.classification.pipeline import make_lateral_pipeline
    from sklearn_overseg.features.lateral import LateralFeatures

    clf = KindClassifier(random_state=3)
    part = clf._template("lateral")
    assert isinstance(part, Pipeline)
    assert isinstance(part.steps[0][1], LateralFeatures) and part.steps[-1][0] == "clf"
    assert part.get_params()["clf__random_state"] == 3
    reference = make_lateral_pipeline(random_state=3)
    assert [name for name, _ in part.steps] == [name for name, _ in reference.steps]
    assert type(part[-1]) is type(reference[-1])
    # The axial and contact defaults are not the lateral one.
    assert not isinstance(clf._template("axial").steps[0][1], LateralFeatures)
    clf.set_params(lateral__clf__random_state=7)
    assert isinstance(clf.lateral, Pipeline) and clf.axial is None and clf.contact is None
    assert clf.get_params()["lateral__clf__random_state"] == 7
    assert clone(clf).get_params()["lateral__clf__random_state"] == 7


def test_lateral_pipeline_learns_stitched_pieces():
    from sklearn_overseg.classification.pipeline import make_lateral_pipeline
    from sklearn_overseg.screening.axial import AxialGapScreener
    from sklearn_overseg.screening.contact import CombinedScreener
    from sklearn_overseg.screening.lateral import LateralScreener
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched
    from sklearn_overseg.synthesis.training import label_candidates, majority_labels

    screener = CombinedScreener(
        axial=AxialGapScreener(max_gap=3), contact="drop", lateral=LateralScreener()
    )
    gt = make_tissue((16, 48, 48), cell_size=(16, 16, 16), random_state=0)
    tables, labels = [], []
    for seed in range(2):
        stitched = synthesize_stitched(gt, cut_rate=0.2, min_area=10, random_state=seed)
        table = screener.screen(stitched.labels, volume_id=str(seed))
        tables.append(table)
        labels.append(label_candidates(table, majority_labels(stitched.labels, gt)))
    table, y = pd.concat(tables), pd.concat(labels).to_numpy()
    lateral = (table["kind"] == "lateral").to_numpy()
    assert set(y[lateral]) == {0, 1} and set(y[~lateral]) == {0, 1}
    judge = make_lateral_pipeline(LogisticRegression(max_iter=2000))
    assert [name for name, _ in judge.steps] == ["features", "clf"]
    clf = KindClassifier(axial=_logistic(), lateral=judge).fit(table, y)
    assert sorted(clf.estimators_) == ["axial", "lateral"]
    from sklearn.metrics import roc_auc_score

    proba = clf.predict_proba(table)[:, 1]
    # Pieces of one cell and distinct neighbours separate on the lateral features alone.
    assert roc_auc_score(y[lateral], proba[lateral]) > 0.9

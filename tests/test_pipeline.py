"""Tests of the default candidate pipeline (sklearn_overseg.classification.pipeline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from sklearn_overseg.classification.classifier import OversegMLPClassifier
from sklearn_overseg.classification.pipeline import make_default_pipeline, make_features
from sklearn_overseg.features.context import CellContextFeatures
from sklearn_overseg.features.geo_wasserstein import GeoWassersteinFeatures
from sklearn_overseg.features.interface import InterfaceFeatures
from sklearn_overseg.features.overlap_topology import OverlapTopologyFeatures
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.training import make_training_table

CONTEXT_NAMES = [
    "layers_a",
    "layers_b",
    "taper_a",
    "taper_b",
    "height_ratio",
    "height_a_ratio",
    "height_b_ratio",
    "volume_ratio",
    "size_balance",
]
PAPER_STATS = ["min", "q25", "median", "q75", "max"]


@pytest.fixture(scope="module")
def training():
    # Two draws (upright and flipped): groups "t/z1p0/r0" and "t/z1p0f/r0".
    volumes = {"t": make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=0)}
    table, y = make_training_table(volumes, n_repeats=1, random_state=0)
    assert set(y) == {0, 1}
    return table, y


def _lr():
    return LogisticRegression(max_iter=1000)


def test_default_pipeline_structure():
    pipe = make_default_pipeline()
    assert isinstance(pipe, Pipeline) and [n for n, _ in pipe.steps] == ["features", "clf"]
    assert isinstance(pipe.named_steps["clf"], OversegMLPClassifier)
    features = pipe.named_steps["features"]
    assert isinstance(features, ColumnTransformer)
    blocks = {name: (est, cols) for name, est, cols in features.transformers}
    assert set(blocks) == {"emd", "topo", "context", "interface", "meta"}
    assert isinstance(blocks["emd"][0], GeoWassersteinFeatures)
    assert isinstance(blocks["topo"][0], OverlapTopologyFeatures)
    assert isinstance(blocks["context"][0], CellContextFeatures)
    assert blocks["interface"] == ("drop", ["geometry"])  # opt-in
    assert isinstance(make_features(interface=True).transformers[3][1], InterfaceFeatures)
    assert blocks["meta"] == ("passthrough", ["gap"])
    seeded = make_default_pipeline(statistics="incomplete", normalize=True, random_state=7)
    assert seeded.get_params()["clf__random_state"] == 7
    assert seeded.get_params()["features__emd__random_state"] == 7
    assert seeded.get_params()["features__emd__statistics"] == "incomplete"
    assert seeded.get_params()["features__emd__normalize"] is True


def test_fit_predict_and_feature_names(training):
    table, y = training
    pipe = make_default_pipeline(classifier=_lr()).fit(table, y)
    proba = pipe.predict_proba(table)
    assert proba.shape == (len(table), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    names = list(pipe.named_steps["features"].get_feature_names_out())
    emd = [n for n in names if n.startswith("emd_")]
    assert [f"emd_a_{s}" for s in PAPER_STATS] == [n for n in emd if n.startswith("emd_a_")][:5]
    assert names[-10:] == [*CONTEXT_NAMES, "gap"]
    assert any(n.startswith("topo_") for n in names)
    # The feature block keeps the candidate ids and has no missing value.
    Xt = pipe.named_steps["features"].transform(table)
    assert isinstance(Xt, pd.DataFrame)
    assert list(Xt.index) == list(table.index) and list(Xt.columns) == names
    assert not Xt.isna().any().any()
    np.testing.assert_array_equal(Xt["gap"].to_numpy(), table["gap"].to_numpy())
    # Learns something: better than the majority class on its own training data.
    accuracy = (pipe.predict(table) == y.to_numpy()).mean()
    assert accuracy > max(y.mean(), 1 - y.mean())


def test_drop_emd_block_with_set_params(training):
    table, y = training
    pipe = make_default_pipeline(classifier=_lr())
    pipe.set_params(features__emd="drop")
    pipe.fit(table, y)
    names = list(pipe.named_steps["features"].get_feature_names_out())
    assert not [n for n in names if n.startswith("emd_")]
    assert names[-10:] == [*CONTEXT_NAMES, "gap"]
    assert pipe.named_steps["clf"].n_features_in_ == len(names)
    assert pipe.predict_proba(table).shape == (len(table), 2)
    # And back again.
    pipe.set_params(features__emd=GeoWassersteinFeatures(statistics="incomplete")).fit(table, y)
    names = list(pipe.named_steps["features"].get_feature_names_out())
    assert [n for n in names if n.startswith("emd_a_")] == [
        "emd_a_median",
        "emd_a_q25",
        "emd_a_q75",
        "emd_a_count",
    ]


def test_make_features_switches():
    features = make_features(emd=False, topology=False, context=False, interface=False)
    blocks = {name: est for name, est, _ in features.transformers}
    assert blocks == {
        "emd": "drop",
        "topo": "drop",
        "context": "drop",
        "interface": "drop",
        "meta": "passthrough",
    }


def test_paper_only_feature_set(training):
    table, y = training
    features = make_features(context=False, interface=False).fit(table, y)
    names = list(features.get_feature_names_out())
    assert not set(CONTEXT_NAMES) & set(names)
    assert not [n for n in names if n.startswith("iface_")]
    only_gap = make_features(emd=False, topology=False, context=False, interface=False)
    only_gap.fit(table, y)
    out = only_gap.transform(table)
    assert list(out.columns) == ["gap"] and list(out.index) == list(table.index)


@pytest.mark.parametrize(
    "clf",
    [HistGradientBoostingClassifier(max_iter=20, random_state=0), LogisticRegression(C=0.5)],
)
def test_swap_classifier(training, clf):
    table, y = training
    pipe = make_default_pipeline(classifier=_lr()).set_params(clf=clf)
    pipe.fit(table, y)
    assert type(pipe.named_steps["clf"]) is type(clf)
    proba = pipe.predict_proba(table)[:, 1]
    assert proba.shape == (len(table),) and np.all((proba >= 0) & (proba <= 1))
    # The unfitted template is left alone (the pipeline holds the very object).
    assert pipe.named_steps["clf"] is clf


def test_grid_search_over_blocks_with_groups(training):
    table, y = training
    groups = table["volume"].to_numpy()
    grid = [
        {"features__emd": ["drop"]},
        {
            "features__emd": [GeoWassersteinFeatures()],
            "features__emd__statistics": ["paper", "incomplete"],
        },
    ]
    search = GridSearchCV(
        make_default_pipeline(classifier=_lr()),
        grid,
        cv=GroupKFold(n_splits=2),
        scoring="roc_auc",
        error_score="raise",
    )
    search.fit(table, y, groups=groups)
    results = search.cv_results_
    assert len(results["params"]) == 3
    scores = results["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all((scores > 0.5) & (scores <= 1))
    stats = [p.get("features__emd__statistics") for p in results["params"]]
    assert stats == [None, "paper", "incomplete"]
    assert search.best_estimator_.predict_proba(table).shape == (len(table), 2)


def test_default_mlp_pipeline_is_reproducible(training):
    table, y = training
    pipe = make_default_pipeline(
        classifier=OversegMLPClassifier(max_epochs=5, random_state=0), random_state=0
    )
    p1 = clone(pipe).fit(table, y).predict_proba(table)
    p2 = clone(pipe).fit(table, y).predict_proba(table)
    assert p1.shape == (len(table), 2)
    np.testing.assert_array_equal(p1, p2)


def test_ensemble_default_classifier():
    from sklearn.ensemble import VotingClassifier

    from sklearn_overseg.classification.classifier import OversegMLPClassifier

    pipe = make_default_pipeline(n_ensemble=3, random_state=7)
    clf = pipe.named_steps["clf"]
    assert isinstance(clf, VotingClassifier) and clf.voting == "soft"
    seeds = [est.random_state for _, est in clf.estimators]
    assert seeds == [7, 8, 9]
    assert all(isinstance(est, OversegMLPClassifier) for _, est in clf.estimators)
    assert isinstance(make_default_pipeline().named_steps["clf"], OversegMLPClassifier)
    with pytest.raises(ValueError, match="n_ensemble"):
        make_default_pipeline(n_ensemble=0)

"""scikit-learn semantics on the estimators' real inputs (candidate tables and volumes).

Sample weights and metadata routing, ``random_state`` as a ``RandomState``, the refusal
of classifiers that cannot read the candidate table, threshold validation, and the
table-native counterparts of the generic array checks (see test_estimator_checks.py).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError, UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import has_fit_parameter

import sklearn_overseg
from sklearn_overseg import make_tissue, synthesize_flaws
from sklearn_overseg.classification._table_estimators import check_takes_table
from sklearn_overseg.classification.classifier import OversegMLPClassifier
from sklearn_overseg.classification.dispatch import KindClassifier
from sklearn_overseg.classification.pipeline import (
    make_default_pipeline,
    make_features,
    make_lateral_pipeline,
)
from sklearn_overseg.correction.corrector import SegmentationCorrector
from sklearn_overseg.features.context import CellContextFeatures
from sklearn_overseg.features.geo_wasserstein import GeoWassersteinFeatures
from sklearn_overseg.features.interface import InterfaceFeatures
from sklearn_overseg.features.lateral import LateralFeatures
from sklearn_overseg.features.overlap_topology import OverlapTopologyFeatures
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.base import BaseScreener
from sklearn_overseg.screening.contact import CombinedScreener, ContactScreener
from sklearn_overseg.screening.lateral import LateralScreener
from sklearn_overseg.synthesis.training import make_training_table

# Full batch, no dropout, no validation split: a weight of k trains as k repeated rows.
FULL_BATCH = {
    "hidden_units": (16,),
    "max_epochs": 30,
    "lr": 1e-2,
    "batch_size": 4096,
    "dropout": 0.0,
    "valid_fraction": None,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=0)


@pytest.fixture(scope="module")
def training(truth):
    """A labelled axial candidate table (57 rows, both classes)."""
    table, y = make_training_table([truth], n_repeats=1, random_state=0)
    return table, y.to_numpy()


@pytest.fixture(scope="module")
def lateral_table(truth) -> pd.DataFrame:
    """Cross-sections cut in two in three layers, screened for lateral pairs."""
    vol = truth.copy()
    new = int(vol.max()) + 1
    for z in (4, 9, 12):
        for cell in [c for c in np.unique(vol[z]) if c][:3]:
            ys, xs = np.nonzero(vol[z] == cell)
            right = xs > np.median(xs)
            vol[z, ys[right], xs[right]] = new
            new += 1
    return LateralScreener().screen(vol)


def _weights(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=n)


# ------------------------------------------------------------------------ the MLP


def test_mlp_sample_weight_equals_repeated_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    w = _weights(80)
    weighted = OversegMLPClassifier(**FULL_BATCH).fit(X, y, sample_weight=w)
    repeated = OversegMLPClassifier(**FULL_BATCH).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    plain = OversegMLPClassifier(**FULL_BATCH).fit(X, y)
    p_weighted = weighted.predict_proba(X)
    assert_allclose(p_weighted, repeated.predict_proba(X), rtol=1e-5, atol=1e-7)
    # ... and the weights do change the fit
    assert np.abs(p_weighted - plain.predict_proba(X)).max() > 1e-2
    # only their ratios matter
    scaled = OversegMLPClassifier(**FULL_BATCH).fit(X, y, sample_weight=10.0 * w)
    assert_allclose(scaled.predict_proba(X), p_weighted, rtol=1e-5, atol=1e-7)
    assert weighted.pos_weight_ == pytest.approx(
        w[y == 0].sum() / w[y == 1].sum()
    )  # "balanced" counts weighted rows


def test_mlp_sample_weight_is_checked():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    clf = OversegMLPClassifier(**FULL_BATCH)
    assert has_fit_parameter(clf, "sample_weight")
    with pytest.raises(ValueError, match="Negative values"):
        clf.fit(X, y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match=r"class 1 a total weight of 0"):
        clf.fit(X, y, sample_weight=(y == 0).astype(float))
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, y, sample_weight=np.ones(7))


def test_mlp_parameters_are_validated_by_constraints():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(InvalidParameterError, match="'dropout' parameter"):
        OversegMLPClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(TypeError, match="positional"):
        OversegMLPClassifier((8,))  # keyword-only


def test_mlp_metadata_routing():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    y = (X[:, 1] > 0).astype(int)
    w = _weights(60, 1)
    unrouted = make_pipeline(StandardScaler(), OversegMLPClassifier(**FULL_BATCH))
    unrouted.fit(X, y, oversegmlpclassifier__sample_weight=w)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = OversegMLPClassifier(**FULL_BATCH).set_fit_request(sample_weight=True)
        routed = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), clf)
        routed.fit(X, y, sample_weight=w)
        with pytest.raises(UnsetMetadataPassedError):
            make_pipeline(OversegMLPClassifier(**FULL_BATCH)).fit(X, y, sample_weight=w)
    assert_allclose(routed.predict_proba(X), unrouted.predict_proba(X))


# ------------------------------------------------------------------ the pipeline


def _weighted_pipeline() -> Pipeline:
    pipe = make_default_pipeline(OversegMLPClassifier(**FULL_BATCH))
    # The topology z-score is learned in fit from unweighted rows; without it, every
    # feature is a function of its row alone and only the classifier sees the weights.
    return pipe.set_params(features__topo__normalize=False)


def test_pipeline_sample_weight_equals_repeated_rows(training):
    table, y = training
    w = _weights(len(table), 2)
    weighted = _weighted_pipeline().fit(table, y, clf__sample_weight=w)
    rows = np.repeat(np.arange(len(table)), w)
    repeated = _weighted_pipeline().fit(table.iloc[rows], y[rows])
    plain = _weighted_pipeline().fit(table, y)
    p = weighted.predict_proba(table)[:, 1]
    assert_allclose(p, repeated.predict_proba(table)[:, 1], rtol=1e-5, atol=1e-7)
    assert np.abs(p - plain.predict_proba(table)[:, 1]).max() > 1e-3


def test_default_pipeline_requests_weights_under_routing(training):
    table, y = training
    w = _weights(len(table), 3)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_default_pipeline(n_ensemble=2, random_state=0)
        pipe.set_params(clf__mlp0__max_epochs=3, clf__mlp1__max_epochs=3)
        pipe.fit(table, y, sample_weight=w)
        routed = pipe.predict_proba(table)
    unrouted = make_default_pipeline(n_ensemble=2, random_state=0)
    unrouted.set_params(clf__mlp0__max_epochs=3, clf__mlp1__max_epochs=3)
    unrouted.fit(table, y, clf__sample_weight=w)
    assert_array_equal(routed, unrouted.predict_proba(table))


def test_make_default_pipeline_random_state():
    seeds = lambda pipe: [m.random_state for _, m in pipe.named_steps["clf"].estimators]  # noqa: E731
    assert seeds(make_default_pipeline(n_ensemble=np.int64(3), random_state=7)) == [7, 8, 9]
    assert seeds(make_default_pipeline(n_ensemble=3)) == [None, None, None]
    a = make_default_pipeline(n_ensemble=3, random_state=np.random.RandomState(0))
    b = make_default_pipeline(n_ensemble=3, random_state=np.random.RandomState(0))
    assert seeds(a) == seeds(b) and all(isinstance(s, int) for s in seeds(a))
    emd_seed = a.get_params()["features__emd__random_state"]
    assert isinstance(emd_seed, int) and emd_seed == b.get_params()["features__emd__random_state"]
    single = make_default_pipeline(random_state=np.random.RandomState(0))
    assert isinstance(single.named_steps["clf"].random_state, int)
    with pytest.raises(TypeError, match="random_state"):
        make_default_pipeline(random_state="0")
    with pytest.raises(ValueError, match="n_ensemble"):
        make_default_pipeline(n_ensemble=2.0)


def _ensemble_seeds(pipe: Pipeline) -> list:
    return [m.random_state for _, m in pipe.named_steps["clf"].estimators]


def test_make_lateral_pipeline_random_state():
    assert _ensemble_seeds(make_lateral_pipeline(n_ensemble=np.int64(3), random_state=7)) == [
        7,
        8,
        9,
    ]
    assert _ensemble_seeds(make_lateral_pipeline(n_ensemble=3)) == [None, None, None]
    a = make_lateral_pipeline(n_ensemble=3, random_state=np.random.RandomState(0))
    b = make_lateral_pipeline(n_ensemble=3, random_state=np.random.RandomState(0))
    assert _ensemble_seeds(a) == _ensemble_seeds(b)
    assert all(isinstance(s, int) for s in _ensemble_seeds(a))
    single = make_lateral_pipeline(random_state=np.random.RandomState(0))
    assert isinstance(single.named_steps["clf"].random_state, int)
    with pytest.raises(TypeError, match="random_state"):
        make_lateral_pipeline(random_state="0")
    with pytest.raises(TypeError, match="random_state"):
        make_lateral_pipeline(LogisticRegression(), random_state=0.5)
    with pytest.raises(ValueError, match="n_ensemble"):
        make_lateral_pipeline(n_ensemble=0)


def test_lateral_pipeline_requests_weights_under_routing(lateral_table):
    table = lateral_table
    y = np.arange(len(table)) % 2
    w = _weights(len(table), 4)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_lateral_pipeline(random_state=0).set_params(clf__max_epochs=3)
        # the scaler declines the weights (feature steps are unweighted, as without
        # routing); left unset, routing would refuse to fit
        pipe.fit(table, y, sample_weight=w)
        routed = pipe.predict_proba(table)
    unrouted = make_lateral_pipeline(random_state=0).set_params(clf__max_epochs=3)
    unrouted.fit(table, y, clf__sample_weight=w)
    assert_array_equal(routed, unrouted.predict_proba(table))
    plain = make_lateral_pipeline(random_state=0).set_params(clf__max_epochs=3).fit(table, y)
    assert np.abs(routed - plain.predict_proba(table)).max() > 0


# ------------------------------------------------------------------ KindClassifier


def _prior(**request) -> Pipeline:
    """Predicts the (weighted) class frequencies of its training rows."""
    select = ColumnTransformer([("num", "passthrough", ["overlap_px"])])
    clf = DummyClassifier(strategy="prior")
    if request:
        clf.set_fit_request(**request)
    return Pipeline([("features", select), ("clf", clf)])


def _kind_table() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    kind = ["axial", "contact"] * 4
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    w = np.array([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0])
    table = pd.DataFrame({"kind": kind, "overlap_px": np.arange(8)}, index=list("abcdefgh"))
    return table, y, w


def test_kind_classifier_passes_each_part_its_weights():
    table, y, w = _kind_table()
    clf = KindClassifier(axial=_prior(), contact=_prior()).fit(table, y, sample_weight=w)
    # axial rows y = 1,0,0,0 with weights 3,1,1,1; contact y = 1,1,1,0 with 1,1,1,5
    assert_allclose(clf.estimators_["axial"][-1].class_prior_, [3 / 6, 3 / 6])
    assert_allclose(clf.estimators_["contact"][-1].class_prior_, [5 / 8, 3 / 8])
    with sklearn.config_context(enable_metadata_routing=True):
        parts = {"axial": _prior(sample_weight=True), "contact": _prior(sample_weight=True)}
        routed = KindClassifier(**parts).fit(table, y, sample_weight=w)
        assert_allclose(routed.predict_proba(table), clf.predict_proba(table))
        with pytest.raises(UnsetMetadataPassedError):
            KindClassifier(axial=_prior(), contact=_prior()).fit(table, y, sample_weight=w)
        unweighted = KindClassifier(axial=_prior(), contact=_prior()).fit(table, y)
        assert_allclose(unweighted.estimators_["axial"][-1].class_prior_, [0.75, 0.25])


def test_kind_classifier_api():
    table, y, _ = _kind_table()
    clf = KindClassifier(axial=_prior(), contact=_prior())
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(table)
        assert list(inspect.signature(getattr(clf, method)).parameters) == ["X"]
    assert list(inspect.signature(clf.fit).parameters) == ["X", "y", "sample_weight"]
    assert has_fit_parameter(clf, "sample_weight")
    with pytest.raises(TypeError, match=r"make_default_pipeline\(classifier="):
        KindClassifier(axial=HistGradientBoostingClassifier(), contact=_prior()).fit(table, y)
    with pytest.raises(InvalidParameterError, match="'axial' parameter"):
        KindClassifier(axial="mlp").fit(table, y)


def test_kind_classifier_random_state_instance_gives_identical_fits(training):
    table, y = training
    probabilities = []
    for _ in range(2):
        clf = KindClassifier(random_state=np.random.RandomState(0)).fit(table, y)
        seed = clf.estimators_["axial"].get_params()["clf__random_state"]
        assert isinstance(seed, int)  # drawn once, so fit and predict agree
        probabilities.append(clf.predict_proba(table))
    assert_array_equal(probabilities[0], probabilities[1])
    assert KindClassifier(random_state=3)._template("axial").get_params()["clf__random_state"] == 3


# ------------------------------------------------------------- SegmentationCorrector


class RecordingJudge(ClassifierMixin, BaseEstimator):
    """Probability 0.5 for every pair; keeps the weights ``fit`` was given."""

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        self.volumes_ = X["volume"].to_numpy()
        self.sample_weight_ = sample_weight
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


class UnweightedJudge(RecordingJudge):
    def fit(self, X, y):
        return super().fit(X, y)


def _two_volumes():
    truths = [make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=s) for s in (0, 1)]
    flawed = [synthesize_flaws(gt, random_state=s + 5).labels for s, gt in enumerate(truths)]
    return flawed, truths


def test_corrector_gives_each_pair_the_weight_of_its_volume():
    flawed, truths = _two_volumes()
    real = SegmentationCorrector(classifier=RecordingJudge())
    real.fit(flawed, truths, sample_weight=[2.0, 0.5])
    judge = real.classifier_
    assert set(judge.volumes_) == {"0", "1"}
    assert_array_equal(judge.sample_weight_, np.where(judge.volumes_ == "0", 2.0, 0.5))
    synthetic = SegmentationCorrector(classifier=RecordingJudge(), n_repeats=1, random_state=0)
    synthetic.fit(truths, sample_weight=np.array([1, 3]))
    judge = synthetic.classifier_
    first = pd.Series(judge.volumes_).str.split("/").str[0].to_numpy()
    assert set(first) == {"0", "1"}
    assert_array_equal(judge.sample_weight_, np.where(first == "0", 1.0, 3.0))
    with pytest.raises(ValueError, match="sample_weight"):
        clone(real).fit(flawed, truths, sample_weight=[1.0])
    with pytest.raises(TypeError, match="takes no sample_weight"):
        SegmentationCorrector(classifier=UnweightedJudge()).fit(
            flawed, truths, sample_weight=[1, 1]
        )


def test_corrector_routes_weights_when_requested():
    flawed, truths = _two_volumes()
    assert has_fit_parameter(SegmentationCorrector(), "sample_weight")
    with sklearn.config_context(enable_metadata_routing=True):
        judge = RecordingJudge().set_fit_request(sample_weight=True)
        fitted = SegmentationCorrector(classifier=judge).fit(
            flawed, truths, sample_weight=[2.0, 1.0]
        )
        seen = fitted.classifier_
        assert_array_equal(seen.sample_weight_, np.where(seen.volumes_ == "0", 2.0, 1.0))
        with pytest.raises(UnsetMetadataPassedError):
            SegmentationCorrector(classifier=RecordingJudge()).fit(
                flawed, truths, sample_weight=[2.0, 1.0]
            )
        assert SegmentationCorrector(classifier=RecordingJudge()).fit(flawed, truths)
        # the default classifier requests the weights itself
        routing = SegmentationCorrector().get_metadata_routing()
        assert routing.consumes("fit", ["sample_weight"]) == {"sample_weight"}


def test_corrector_random_state_instance_gives_identical_fits(truth):
    flawed = synthesize_flaws(truth, random_state=1).labels
    probabilities = []
    for _ in range(2):
        corrector = SegmentationCorrector(n_repeats=1, random_state=np.random.RandomState(0))
        corrector.fit([truth])
        probabilities.append(corrector.correct(flawed)[1]["probability"].to_numpy())
    assert len(probabilities[0]) > 10
    assert_array_equal(probabilities[0], probabilities[1])


def test_corrector_stitched_draws_follow_random_state_and_weights():
    truths = [make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=s) for s in (0, 1)]
    screener = CombinedScreener(
        axial=AxialGapScreener(max_gap=3), contact="drop", lateral=LateralScreener()
    )

    def training_rows(random_state, sample_weight=None):
        corrector = SegmentationCorrector(
            screener=screener,
            classifier=RecordingJudge(),
            n_repeats=1,
            stitched_repeats=1,
            random_state=random_state,
        )
        judge = corrector.fit(truths, sample_weight=sample_weight).classifier_
        return judge.volumes_, judge.sample_weight_

    volumes, weights = training_rows(np.random.RandomState(0), [1, 3])
    again, _ = training_rows(np.random.RandomState(0), [1, 3])
    assert_array_equal(volumes, again)
    assert not np.array_equal(volumes, training_rows(np.random.RandomState(1))[0])
    stitched = pd.Series(volumes).str.contains("/stitched-").to_numpy()
    assert stitched.any() and not stitched.all()
    first = pd.Series(volumes).str.split("/").str[0].to_numpy()
    assert_array_equal(weights, np.where(first == "0", 1.0, 3.0))
    with pytest.raises(InvalidParameterError, match="'stitched_repeats' parameter"):
        SegmentationCorrector(classifier=RecordingJudge(), stitched_repeats=-1).fit(truths)


@pytest.mark.parametrize(
    "classifier",
    [
        HistGradientBoostingClassifier(),
        LogisticRegression(),
        OversegMLPClassifier(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        GridSearchCV(HistGradientBoostingClassifier(), {"max_depth": [2, 3]}),
    ],
)
def test_corrector_refuses_a_classifier_of_numbers_at_fit(truth, classifier):
    corrector = SegmentationCorrector(classifier=classifier, n_repeats=1)
    name = type(classifier).__name__
    if isinstance(classifier, Pipeline | GridSearchCV):
        name = "StandardScaler" if isinstance(classifier, Pipeline) else "HistGradient"
    with pytest.raises(TypeError, match=rf"{name}.*make_default_pipeline\(classifier="):
        corrector.fit([truth])


@pytest.mark.parametrize(
    "classifier",
    [
        make_default_pipeline(HistGradientBoostingClassifier()),
        make_pipeline(make_features(emd=False), LogisticRegression()),
        GridSearchCV(make_default_pipeline(LogisticRegression()), {"clf__C": [1.0]}),
        KindClassifier(),
        RecordingJudge(),
    ],
)
def test_classifiers_of_tables_are_accepted(classifier):
    check_takes_table(classifier, owner="test")


@pytest.mark.parametrize("sibling_threshold", [1.5, -0.1, float("nan"), "0.7"])
def test_bad_sibling_threshold_is_refused_at_fit_and_at_correct(sibling_threshold):
    flawed, truths = _two_volumes()
    with pytest.raises(InvalidParameterError, match="'sibling_threshold' parameter"):
        SegmentationCorrector(classifier=RecordingJudge(), sibling_threshold=sibling_threshold).fit(
            flawed[:1], truths[:1]
        )
    fitted = SegmentationCorrector(classifier=RecordingJudge(), threshold=0.0)
    fitted.fit(flawed[:1], truths[:1])
    fitted.sibling_threshold = sibling_threshold  # as set after fit, or a model file, would
    with pytest.raises(ValueError, match="sibling_threshold must be None or a float"):
        fitted.correct(flawed[0])


@pytest.mark.parametrize(
    "threshold", [{"axial": 5}, {"axial": float("nan")}, {}, {1: 0.5}, float("nan"), 1.5, "0.5"]
)
def test_bad_threshold_is_refused_at_fit_and_at_correct(threshold):
    flawed, truths = _two_volumes()
    with pytest.raises(InvalidParameterError, match="'threshold' parameter"):
        SegmentationCorrector(classifier=RecordingJudge(), threshold=threshold).fit(
            flawed[:1], truths[:1]
        )
    fitted = SegmentationCorrector(classifier=RecordingJudge()).fit(flawed[:1], truths[:1])
    fitted.threshold = threshold  # as set_params after fit, or a model file, would
    with pytest.raises(ValueError, match="threshold"):
        fitted.correct(flawed[0])


def test_corrector_is_a_transformer():
    flawed, truths = _two_volumes()
    corrector = SegmentationCorrector(classifier=RecordingJudge())
    with pytest.raises(NotFittedError):
        corrector.transform(flawed)
    out = corrector.fit_transform(flawed, truths)
    assert [o.shape for o in out] == [f.shape for f in flawed]
    assert_array_equal(out[0], corrector.transform(flawed[:1])[0])
    assert list(inspect.signature(corrector.transform).parameters) == ["X"]
    with pytest.raises(TypeError, match="positional"):
        SegmentationCorrector(AxialGapScreener())


# ------------------------------------------------------------------------ screeners


@pytest.mark.parametrize(
    "screener", [AxialGapScreener(), ContactScreener(), CombinedScreener(), LateralScreener()]
)
def test_screeners_are_transformers(truth, screener):
    vol = synthesize_flaws(truth, random_state=2).labels
    expected = screener.screen(vol)
    assert list(inspect.signature(screener.transform).parameters) == ["X"]
    table = clone(screener).fit_transform([vol])
    assert_array_equal(table.index, expected.index)
    pd.testing.assert_frame_equal(table.drop(columns="geometry"), expected.drop(columns="geometry"))
    framed = clone(screener).set_output(transform="pandas").transform({"v": vol})
    assert list(framed.columns) == list(screener.get_feature_names_out())
    assert framed.index.str.startswith("v:").all()
    again = pickle.loads(pickle.dumps(screener)).transform([vol])
    pd.testing.assert_frame_equal(again.drop(columns="geometry"), table.drop(columns="geometry"))


# ----------------------------------------------------------- feature transformers


TABLE_TRANSFORMERS = [
    GeoWassersteinFeatures(),
    OverlapTopologyFeatures(),
    CellContextFeatures(),
    InterfaceFeatures(),
    LateralFeatures(),
]


@pytest.mark.parametrize("transformer", TABLE_TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_table_transformers_on_tables(transformer, training, lateral_table):
    table = lateral_table if isinstance(transformer, LateralFeatures) else training[0]
    est = clone(transformer)
    with pytest.raises(NotFittedError):
        est.transform(table)
    out = est.fit(table).transform(table)
    assert out.shape == (len(table), len(est.get_feature_names_out()))
    # idempotent fit, pickling, row order and row subsets change nothing
    assert_array_equal(clone(transformer).fit(table).fit(table).transform(table), out)
    assert_array_equal(pickle.loads(pickle.dumps(est)).transform(table), out)
    order = np.random.default_rng(0).permutation(len(table))
    assert_allclose(est.transform(table.iloc[order]), out[order], rtol=1e-12)
    assert_allclose(est.transform(table.iloc[:7]), out[:7], rtol=1e-12)
    framed = clone(transformer).set_output(transform="pandas").fit_transform(table)
    assert_array_equal(framed.index, table.index)
    assert_allclose(framed.to_numpy(), out)


@pytest.mark.parametrize(
    ("transformer", "params"),
    [
        (GeoWassersteinFeatures(), {"method": "fast"}),
        (GeoWassersteinFeatures(), {"n_projections": 0}),
        (GeoWassersteinFeatures(), {"normalize": "yes"}),
        (OverlapTopologyFeatures(), {"min_points": 2}),
        (LateralFeatures(), {"n_jobs": "2"}),
    ],
)
def test_table_transformers_raise_invalid_parameter_error(transformer, params, training):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}' parameter"):
        clone(transformer).set_params(**params).fit(training[0])


# ------------------------------------------------------------------------ examples


def _public_estimator_classes() -> list[type]:
    classes = {
        obj
        for obj in (getattr(sklearn_overseg, name) for name in sklearn_overseg.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseEstimator) and obj is not BaseScreener
    }
    return sorted(classes, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _public_estimator_classes(), ids=lambda cls: cls.__name__)
def test_every_public_estimator_has_an_example(cls):
    assert "    Examples\n    --------\n    >>> " in cls.__doc__


@pytest.mark.parametrize("module", sorted(set(sklearn_overseg._EXPORTS.values())))
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"sklearn_overseg.{module}")
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(mod, optionflags=flags, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"

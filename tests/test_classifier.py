"""Tests for OversegMLPClassifier and its torch module."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_overseg.classification import classifier as classifier_module
from sklearn_overseg.classification._modules import OversegMLPModule
from sklearn_overseg.classification.classifier import OversegMLPClassifier

FAST = {"max_epochs": 30, "hidden_units": (16, 8), "lr": 1e-2}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=160,
        n_features=6,
        n_informative=4,
        weights=[0.75],
        class_sep=2.0,
        random_state=0,
    )
    # features of very different scales, as the real pair features are
    X[:, 0] *= 1e4
    X[:, 1] *= 1e-3
    return X, y


@pytest.fixture(scope="module")
def frame(data):
    X, y = data
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), pd.Series(y)


# ----------------------------------------------------------------------------- sklearn API
# scikit-learn's generic checks: tests/test_estimator_checks.py


def test_tags_binary_only():
    assert OversegMLPClassifier().__sklearn_tags__().classifier_tags.multi_class is False


def test_init_stores_params_only():
    clf = OversegMLPClassifier(hidden_units=(4,), optimizer__weight_decay=0.1)
    assert not [k for k in vars(clf) if k.endswith("_") and not k.startswith("_")]
    params = clf.get_params()
    assert params["hidden_units"] == (4,)
    assert params["optimizer__weight_decay"] == 0.1
    assert params["class_weight"] == "balanced"
    assert params["random_state"] is None
    assert params["verbose"] == 0


def test_net_kwargs_survive_clone_and_set_params():
    clf = OversegMLPClassifier(optimizer__weight_decay=0.1)
    cloned = clone(clf)
    assert cloned.get_params()["optimizer__weight_decay"] == 0.1
    cloned.set_params(optimizer__weight_decay=0.5, iterator_train__drop_last=False, lr=0.2)
    assert cloned.get_params()["optimizer__weight_decay"] == 0.5
    assert cloned.lr == 0.2
    assert clf.get_params()["optimizer__weight_decay"] == 0.1  # original untouched
    with pytest.raises(ValueError, match="Invalid parameter"):
        cloned.set_params(not_a_param=1)


def test_net_kwargs_reach_the_optimizer(data):
    X, y = data
    clf = OversegMLPClassifier(**FAST, optimizer__weight_decay=0.25, random_state=0).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == 0.25
    assert clf.net_.optimizer_.param_groups[0]["lr"] == 1e-2
    assert isinstance(clf.net_.optimizer_, torch.optim.Adam)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dropout": 1.5}, "dropout"),
        ({"hidden_units": (16, 0)}, "hidden_units"),
        ({"hidden_units": 5}, "hidden_units"),
        ({"lr": -1.0}, "lr"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"class_weight": "auto"}, "class_weight"),
        ({"bogus": 1}, "Unknown keyword"),
        ({"criterion__pos_weight": 2.0}, "conflicts with class_weight"),
    ],
)
def test_bad_hyperparameters_raise_at_fit_not_init(data, params, match):
    clf = OversegMLPClassifier(**params)  # no validation in __init__
    with pytest.raises(ValueError, match=match):
        clf.fit(*data)


# ----------------------------------------------------------------------------- the module
def test_module_hand_computed_logit():
    module = OversegMLPModule(
        2, hidden_units=(), dropout=0.3, feature_mean=[1.0, 2.0], feature_scale=[2.0, 4.0]
    )
    with torch.no_grad():
        module.output.weight.copy_(torch.tensor([[1.0, -3.0]]))
        module.output.bias.fill_(0.5)
    module.eval()
    with torch.no_grad():
        out = module(torch.tensor([[3.0, 6.0], [1.0, 2.0]]))
    # standardised rows: (1, 1) and (0, 0) → 1 - 3 + 0.5 = -1.5 and 0.5
    assert out.shape == (2,)
    assert_allclose(out.numpy(), [-1.5, 0.5])


def test_module_architecture():
    module = OversegMLPModule(7)
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (7, 128),
        (128, 64),
        (64, 32),
        (32, 1),
    ]
    drops = [m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.3, 0.3, 0.3]
    assert sum(isinstance(m, torch.nn.ReLU) for m in module.modules()) == 3


# ----------------------------------------------------------------------------- fitting
def test_fit_dataframe_records_names_and_predicts(frame):
    X, y = frame
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    assert_array_equal(clf.feature_names_in_, X.columns.to_numpy())
    assert clf.n_features_in_ == 6
    assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == np.float64
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_array_equal(clf.predict(X), (proba[:, 1] > 0.5).astype(int))
    assert clf.score(X, y) > 0.8
    assert 1 <= clf.n_iter_ <= FAST["max_epochs"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X[X.columns[::-1]])


def test_string_labels_map_to_classes(data):
    X, y = data
    labels = np.where(y == 1, "one cell", "two cells")
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, labels)
    assert_array_equal(clf.classes_, ["one cell", "two cells"])
    # "one cell" sorts first: it is the negative class, column 0
    assert set(clf.predict(X)) <= {"one cell", "two cells"}
    assert clf.pos_weight_ == pytest.approx(
        (labels == "one cell").sum() / (labels != "one cell").sum()
    )


@pytest.mark.parametrize(
    ("bad", "match"), [(np.nan, "NaN"), (np.inf, "infinity"), (1e39, "too large for float32")]
)
def test_non_finite_input_raises(data, bad, match):
    X, y = data
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match=match):
        OversegMLPClassifier(**FAST).fit(X, y)
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(*data)
    with pytest.raises(ValueError, match=match):
        clf.predict_proba(X)


def test_bad_targets_raise(data):
    X, _ = data
    with pytest.raises(ValueError, match=r"2 classes.*1 class"):
        OversegMLPClassifier(**FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Only binary classification"):
        OversegMLPClassifier(**FAST).fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ValueError, match="Unknown label type"):
        OversegMLPClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))


def test_read_only_inputs_not_mutated(data):
    X, y = data
    X_ro, y_ro = X.copy(), y.copy()
    X_ro.setflags(write=False)
    y_ro.setflags(write=False)
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X_ro, y_ro)
    clf.predict_proba(X_ro)
    assert_array_equal(X_ro, X)
    assert_array_equal(y_ro, y)


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_bit_identical_also_after_clone(data):
    X, y = data
    clf = OversegMLPClassifier(**FAST, random_state=7)
    p1 = clf.fit(X, y).predict_proba(X)
    p2 = clf.fit(X, y).predict_proba(X)  # refit the same object
    p3 = clone(clf).fit(X, y).predict_proba(X)
    assert_array_equal(p1, p2)
    assert_array_equal(p1, p3)
    p_other = OversegMLPClassifier(**FAST, random_state=8).fit(X, y).predict_proba(X)
    assert not np.array_equal(p1, p_other)


def test_random_state_none_differs_between_fits(data):
    X, y = data
    p1 = OversegMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    p2 = OversegMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    assert not np.array_equal(p1, p2)


def test_global_torch_state_untouched(data):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    OversegMLPClassifier(**FAST, random_state=0).fit(*data)
    assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    assert torch.get_num_threads() == threads


def test_one_thread_is_set_even_when_torch_reports_one(data, monkeypatch):
    # Under threadpoolctl's OpenMP limit torch reports 1 thread, yet its ops ran 10-30x
    # slower until torch.set_num_threads(1) was called: the fit must always call it.
    calls = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or real_set(n))
    OversegMLPClassifier(**FAST, random_state=0).fit(*data)
    assert calls and calls[0] == 1


def test_batches_do_not_change_probabilities(data, monkeypatch):
    X, y = data
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    full = clf.predict_proba(X)
    rows = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(20)])
    assert_allclose(rows, full[:20], rtol=0, atol=1e-12)
    monkeypatch.setattr(classifier_module, "_PREDICT_CHUNK", 7)  # 160 rows → 23 chunks
    assert_allclose(clf.predict_proba(X), full, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- preprocessing
def test_standardisation_buffers_hold_training_mean_and_std():
    X = np.array([[1.0, 5.0, 1e-6], [2.0, 5.0, 2e-6], [3.0, 5.0, 3e-6], [4.0, 5.0, 4e-6]] * 5)
    y = np.array([0, 1] * 10)
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    module = clf.net_.module_
    assert_allclose(module.mean.numpy(), [2.5, 5.0, 2.5e-6], rtol=1e-6)
    # population std of 1..4 is sqrt(1.25); the constant column keeps scale 1, and a
    # column of tiny values is still scaled
    assert_allclose(module.scale.numpy(), [np.sqrt(1.25), 1.0, np.sqrt(1.25) * 1e-6], rtol=1e-6)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_feature_scale_does_not_matter(data):
    X, y = data
    X_scaled = X.copy()
    X_scaled[:, 2] *= 1024.0  # a power of two: the standardised values are bit-identical
    X_scaled[:, 4] /= 4096.0
    p1 = OversegMLPClassifier(**FAST, random_state=3).fit(X, y).predict_proba(X)
    p2 = OversegMLPClassifier(**FAST, random_state=3).fit(X_scaled, y).predict_proba(X_scaled)
    assert_array_equal(p1, p2)


# ----------------------------------------------------------------------------- class weights
def test_balanced_class_weight_sets_pos_weight():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.array([0] * 30 + [1] * 10)
    clf = OversegMLPClassifier(**FAST, random_state=0)
    clf.fit(X, y)
    assert clf.pos_weight_ == 3.0
    assert clf.net_.criterion_.pos_weight.item() == 3.0
    # clone keeps the *setting*, and a refit on other data recomputes the weight
    refit = clone(clf).fit(X[:20], y[:20] * 0 + (np.arange(20) < 5))
    assert refit.pos_weight_ == 3.0  # 15 negatives / 5 positives
    y2 = np.array([0] * 10 + [1] * 30)
    assert clone(clf).fit(X, y2).pos_weight_ == pytest.approx(1 / 3)


def test_dict_and_none_class_weight():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.array([0] * 30 + [1] * 10)
    clf = OversegMLPClassifier(**FAST, class_weight={0: 2.0, 1: 5.0}, random_state=0).fit(X, y)
    assert clf.pos_weight_ == 2.5
    clf = OversegMLPClassifier(**FAST, class_weight=None, random_state=0).fit(X, y)
    assert clf.pos_weight_ is None
    assert clf.net_.criterion_.pos_weight is None
    with pytest.raises(ValueError, match="not in y's classes"):
        OversegMLPClassifier(**FAST, class_weight={7: 1.0}).fit(X, y)


# ----------------------------------------------------------------------------- early stopping
def test_tiny_data_disables_validation_split():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4))
    y = np.array([0] * 14 + [1] * 6)  # 6 * 0.2 < 2 minority validation samples
    clf = OversegMLPClassifier(max_epochs=5, random_state=0).fit(X, y)
    assert clf.net_.train_split is None
    assert "valid_loss" not in clf.net_.history[-1]
    assert clf.predict_proba(X).shape == (20, 2)
    balanced = OversegMLPClassifier(max_epochs=5, random_state=0).fit(X, np.arange(20) % 2)
    assert balanced.net_.train_split is not None
    assert "valid_loss" in balanced.net_.history[-1]
    # 20 * 0.2 = 4 validation rows: 16 rows trained on
    assert balanced.net_.history[-1]["batches"][0]["train_batch_size"] == 16


def test_early_stopping_stops_on_noise():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, size=200)  # labels unrelated to X: validation loss cannot improve
    clf = OversegMLPClassifier(hidden_units=(32,), lr=1e-2, patience=3, random_state=0)
    clf.fit(X, y)
    assert clf.n_iter_ < 50
    valid = [row["valid_loss"] for row in clf.net_.history]
    best = int(np.argmin(valid))
    assert clf.n_iter_ == best + 1 + 3  # stopped after `patience` epochs without improvement


def test_verbose(data, capsys):
    OversegMLPClassifier(**FAST, random_state=0).fit(*data)
    assert capsys.readouterr().out == ""
    OversegMLPClassifier(**FAST, random_state=0, verbose=1).fit(*data)
    assert "valid_loss" in capsys.readouterr().out


# ----------------------------------------------------------------------------- composition
@pytest.mark.parametrize(
    "model",
    [
        OversegMLPClassifier(**FAST, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
        LogisticRegression(),
    ],
    ids=["mlp", "hgb", "logreg"],
)
def test_interchangeable_in_pipeline(frame, model):
    X, y = frame
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clone(model))]).fit(X, y)
    proba = pipe.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_array_equal(pipe.classes_, [0, 1])
    assert pipe.score(X, y) > 0.8


def test_grid_search_sequential_and_loky_agree(frame):
    X, y = frame
    pipe = Pipeline(
        [("scale", StandardScaler()), ("clf", OversegMLPClassifier(**FAST, random_state=0))]
    )
    grid = {"clf__hidden_units": [(8,), (16, 8)], "clf__class_weight": ["balanced", None]}
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    seq = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(X, y)
    par = GridSearchCV(pipe, grid, cv=cv, n_jobs=2).fit(X, y)
    assert_array_equal(seq.cv_results_["mean_test_score"], par.cv_results_["mean_test_score"])
    assert seq.best_params_ == par.best_params_
    assert_array_equal(seq.predict_proba(X), par.predict_proba(X))


def test_joblib_pickle_round_trip(frame, tmp_path):
    X, y = frame
    pipe = Pipeline(
        [("scale", StandardScaler()), ("clf", OversegMLPClassifier(**FAST, random_state=0))]
    ).fit(X, y)
    joblib.dump(pipe, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


# ----------------------------------------------------------------------------- numpy inference
def _torch_proba(clf: OversegMLPClassifier, X) -> np.ndarray:
    """What ``predict_proba`` computed before it ran in numpy: the torch module in float64."""
    import copy

    module = copy.deepcopy(clf.net_.module_).to(torch.float64).eval()
    with torch.inference_mode():
        logits = module(torch.from_numpy(clf._check_X(X).astype(np.float64)))
        return torch.sigmoid(torch.stack([-logits, logits], dim=1)).numpy()


def test_numpy_inference_equals_torch_on_real_candidates():
    from sklearn_overseg.pretrained import load_pretrained
    from sklearn_overseg.synthesis.datasets import load_demo

    corrector = load_pretrained()
    axial = corrector.classifier_.estimators_["axial"]
    members = axial.named_steps["clf"].estimators_
    # Loaded models predict without building the skorch net (no torch import needed).
    assert all("net_" not in vars(mlp) for mlp in members)
    table = corrector.screener_.screen(load_demo().labels)
    X = axial[:-1].transform(table[table["kind"] == "axial"])
    assert len(X) >= 10
    for mlp in members:
        proba = mlp.predict_proba(X)
        assert "net_" not in vars(mlp)
        expected = _torch_proba(mlp, X)  # builds net_ from the saved weights
        assert_allclose(proba, expected, rtol=1e-6, atol=1e-12)
        assert 0.05 < proba[:, 1].std()  # real candidates, not a degenerate table
        # Once the net exists, predictions read its weights: still the same numbers.
        assert_allclose(mlp.predict_proba(X), proba, rtol=1e-12, atol=0)


def test_numpy_inference_equals_torch_after_fit(data):
    X, y = data
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    assert_allclose(clf.predict_proba(X), _torch_proba(clf, X), rtol=1e-6, atol=1e-12)
    # Training further changes the net; predictions follow it.
    clf.net_.partial_fit(clf._check_X(X), y.astype(np.float32))
    assert_allclose(clf.predict_proba(X), _torch_proba(clf, X), rtol=1e-6, atol=1e-12)


def test_predict_runs_blas_single_threaded_and_restores_it(data, monkeypatch):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    X, y = data
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    before = blas_threads()
    seen = []
    real = classifier_module._forward

    def spy(*args):
        seen.append(blas_threads())
        return real(*args)

    monkeypatch.setattr(classifier_module, "_forward", spy)
    clf.predict_proba(X)
    assert seen and all(set(threads) == {1} for threads in seen)
    assert blas_threads() == before


@pytest.mark.parametrize("hidden", [(), (7,), (16, 8), (128, 64, 32)])
def test_module_shapes_match_the_torch_module(hidden):
    module = OversegMLPModule(5, hidden_units=hidden)
    torch_shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    assert classifier_module._module_shapes(5, hidden) == torch_shapes
    dtypes = {str(t.dtype) for t in module.state_dict().values()}
    assert dtypes == {"torch.float32"}


def test_stored_weights_are_checked_on_load(data):
    X, y = data
    clf = OversegMLPClassifier(**FAST, random_state=0).fit(X, y)
    state = clf._get_persist_state()

    def load(module_state):
        fresh = OversegMLPClassifier(**FAST, random_state=0)
        fresh._set_persist_state({**state, "module_state": module_state})
        return fresh

    assert_array_equal(load(state["module_state"]).predict_proba(X), clf.predict_proba(X))
    bad = dict(state["module_state"])
    bad["output.bias"] = np.array([np.nan], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load(bad)
    bad = dict(state["module_state"])
    bad["hidden.0.weight"] = bad["hidden.0.weight"].astype(np.float64)
    with pytest.raises(ValueError, match="dtype float64"):
        load(bad)
    bad = dict(state["module_state"])
    del bad["hidden.3.bias"]
    with pytest.raises(ValueError, match=r"hidden_units=\(16, 8\).*missing \['hidden.3.bias'\]"):
        load(bad)

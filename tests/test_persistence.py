"""Tests for saving and loading estimators without pickle."""

from __future__ import annotations

import json
import pickle
import types

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sklearn_overseg.classification.classifier import OversegMLPClassifier
from sklearn_overseg.io import persistence
from sklearn_overseg.io.persistence import (
    ARRAYS_NAME,
    CONFIG_NAME,
    SCHEMA_VERSION,
    load_estimator,
    load_metadata,
    save_estimator,
)


@pytest.fixture(scope="module")
def frame():
    X, y = make_classification(n_samples=120, n_features=5, class_sep=2.0, random_state=0)
    X[:, 0] *= 1e3
    return pd.DataFrame(X, columns=list("abcde")), y


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch):
    """Any unpickling during a test is a failure."""

    def _forbidden(*args, **kwargs):
        raise AssertionError("pickle must not be used")

    monkeypatch.setattr(pickle, "load", _forbidden)
    monkeypatch.setattr(pickle, "loads", _forbidden)


def _round_trip(est, path):
    save_estimator(est, path)
    return load_estimator(path)


def _read_config(path):
    with open(path / CONFIG_NAME, encoding="utf-8") as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------- round trips
def test_mlp_pipeline_round_trip(frame, tmp_path):
    X, y = frame
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "clf",
                OversegMLPClassifier(
                    hidden_units=(16, 8),
                    max_epochs=20,
                    lr=1e-2,
                    class_weight={0: 1.0, 1: 2.0},
                    optimizer__weight_decay=1e-4,
                    random_state=0,
                ),
            ),
        ]
    ).fit(X, y)
    loaded = _round_trip(pipe, tmp_path / "mlp")
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    assert_array_equal(loaded.predict(X), pipe.predict(X))
    clf, clf0 = loaded.named_steps["clf"], pipe.named_steps["clf"]
    assert clf.get_params() == clf0.get_params()
    assert clf.get_params()["optimizer__weight_decay"] == 1e-4
    assert clf.pos_weight_ == 2.0
    assert clf.n_iter_ == clf0.n_iter_
    assert_array_equal(clf.classes_, [0, 1])
    assert_array_equal(loaded.feature_names_in_, list("abcde"))
    # the rebuilt skorch net is usable on its own
    X32 = loaded.named_steps["scale"].transform(X).astype(np.float32)
    assert_array_equal(clf.net_.predict(X32), clf0.net_.predict(X32))
    # the torch weights went to arrays.npz, not to JSON
    with np.load(tmp_path / "mlp" / ARRAYS_NAME, allow_pickle=False) as npz:
        shapes = sorted(npz[k].shape for k in npz.files)
    assert (8, 16) in shapes and (16, 5) in shapes
    # refitting the loaded (cloned) estimator reproduces the original fit exactly
    assert_array_equal(clone(loaded).fit(X, y).predict_proba(X), pipe.predict_proba(X))


def test_logistic_regression_round_trip(frame, tmp_path):
    X, y = frame
    lr = LogisticRegression(C=0.5).fit(X.to_numpy(), np.where(y == 1, "yes", "no"))
    loaded = _round_trip(lr, tmp_path / "lr")
    assert type(loaded) is LogisticRegression
    assert_array_equal(loaded.predict_proba(X.to_numpy()), lr.predict_proba(X.to_numpy()))
    assert_array_equal(loaded.classes_, ["no", "yes"])
    assert loaded.coef_.dtype == lr.coef_.dtype and loaded.coef_.shape == (1, 5)
    assert loaded.C == 0.5
    config = _read_config(tmp_path / "lr")
    assert config["schema_version"] == SCHEMA_VERSION
    assert config["estimator"]["class"] == "sklearn.linear_model._logistic:LogisticRegression"
    assert config["estimator"]["params"]["C"] == 0.5
    assert "coef_" in config["estimator"]["state"]


def test_feature_union_pipeline_round_trip(frame, tmp_path):
    X, y = frame
    pipe = Pipeline(
        [
            ("union", FeatureUnion([("pca", PCA(n_components=2)), ("minmax", MinMaxScaler())])),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    loaded = _round_trip(pipe, tmp_path / "fu")
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    union = loaded.named_steps["union"]
    assert [name for name, _ in union.transformer_list] == ["pca", "minmax"]
    assert_array_equal(union.transform(X), pipe.named_steps["union"].transform(X))
    assert_array_equal(
        union.get_feature_names_out(), pipe.named_steps["union"].get_feature_names_out()
    )


def test_column_transformer_with_pandas_output_round_trip(frame, tmp_path):
    X, y = frame
    ct = ColumnTransformer(
        [("scale", StandardScaler(), ["a", "b"]), ("drop", "drop", ["c"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())]).fit(X, y)
    loaded = _round_trip(pipe, tmp_path / "ct")
    out, expected = loaded.named_steps["ct"].transform(X), pipe.named_steps["ct"].transform(X)
    assert isinstance(out, pd.DataFrame)  # set_output survives
    pd.testing.assert_frame_equal(out, expected)
    assert list(out.columns) == ["a", "b", "d", "e"]
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_unfitted_estimator_round_trip(tmp_path):
    est = Pipeline([("scale", StandardScaler(with_mean=False)), ("clf", OversegMLPClassifier())])
    loaded = _round_trip(est, tmp_path / "unfitted")
    assert loaded.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert loaded.named_steps["scale"].with_mean is False
    assert loaded.named_steps["clf"].get_params() == OversegMLPClassifier().get_params()
    assert not hasattr(loaded.named_steps["clf"], "net_")


def test_value_encoding_round_trip(frame, tmp_path):
    """Every supported value type comes back with the same type, dtype and value."""
    X, _ = frame
    scaler = StandardScaler().fit(X)
    values = {
        "nan_": float("nan"),
        "inf_": float("-inf"),
        "big_int_": 2**70,
        "np_int_": np.int64(7),
        "np_float_": np.float32(0.1),
        "np_bool_": np.bool_(True),
        "tuple_": (1, "a", None, (2.5,)),
        "dict_": {0: "zero", "k": [1, 2], (1, 2): np.arange(3), None: True},
        "slice_": slice(1, 5, None),
        "dtype_": np.dtype("<i2"),
        "types_": [np.float32, float, str],
        "ufunc_": np.log1p,
        "strings_": np.array(["x", "yy"], dtype=object),
        "unicode_": np.array([["a", "b"]]),
        "empty_": np.zeros((0, 3), dtype=np.uint8),
        "rng_": np.random.RandomState(3),
        "gen_": np.random.default_rng(5),
    }
    for key, value in values.items():
        setattr(scaler, key, value)
    loaded = _round_trip(scaler, tmp_path / "values")
    assert np.isnan(loaded.nan_) and loaded.inf_ == float("-inf")
    assert loaded.big_int_ == 2**70
    for key in ("np_int_", "np_float_", "np_bool_"):
        assert type(getattr(loaded, key)) is type(values[key])
        assert getattr(loaded, key) == values[key]
    assert loaded.tuple_ == (1, "a", None, (2.5,))
    assert set(loaded.dict_) == {0, "k", (1, 2), None}
    assert loaded.dict_[0] == "zero" and loaded.dict_["k"] == [1, 2]
    assert_array_equal(loaded.dict_[(1, 2)], np.arange(3))
    assert loaded.slice_ == slice(1, 5, None)
    assert loaded.dtype_ == np.dtype("<i2")
    assert loaded.types_ == [np.float32, float, str]
    assert loaded.ufunc_ is np.log1p
    assert loaded.strings_.dtype == object and loaded.strings_.tolist() == ["x", "yy"]
    assert loaded.unicode_.dtype == values["unicode_"].dtype
    assert loaded.empty_.shape == (0, 3) and loaded.empty_.dtype == np.uint8
    assert loaded.rng_.randint(1000, size=5).tolist() == (
        np.random.RandomState(3).randint(1000, size=5).tolist()
    )
    assert loaded.gen_.integers(1000, size=5).tolist() == (
        np.random.default_rng(5).integers(1000, size=5).tolist()
    )
    assert_array_equal(loaded.transform(X), scaler.transform(X))


# ----------------------------------------------------------------------------- refusals at save
def test_hist_gradient_boosting_raises_type_error_at_save(frame, tmp_path):
    X, y = frame
    hgb = HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    pipe = Pipeline([("scale", StandardScaler().fit(X)), ("hgb", hgb)])
    with pytest.raises(TypeError, match=r"HistGradientBoostingClassifier attribute '_\w+'"):
        save_estimator(pipe, tmp_path / "hgb")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.array([1, "a"], dtype=object), "object array holding int"),
        (lambda x: x, "unsupported type builtins.function"),
        (pd.Series([1.0]), "unsupported type pandas"),
        (np.ma.masked_array([1.0, 2.0]), "unsupported type numpy.ma"),
        ({"f": open}, "unsupported type builtins.builtin_function_or_method"),
        (json.dumps, "unsupported type builtins.function"),
    ],
)
def test_unsupported_values_name_estimator_and_attribute(tmp_path, value, match):
    est = LogisticRegression()
    est.weird_ = value
    with pytest.raises(TypeError, match=match) as info:
        save_estimator(est, tmp_path / "m")
    assert "LogisticRegression attribute 'weird_'" in str(info.value)
    assert not (tmp_path / "m").exists()


def test_estimator_outside_allowlist_refused_at_save(tmp_path):
    class Local(LogisticRegression):
        pass

    with pytest.raises(TypeError, match="outside the allowed modules"):
        save_estimator(Local(), tmp_path / "m")
    with pytest.raises(TypeError, match="expects a scikit-learn estimator"):
        save_estimator({"not": "an estimator"}, tmp_path / "m")


def test_metadata(tmp_path):
    save_estimator(LogisticRegression(), tmp_path / "m", metadata={"trained_on": ["v1", "v2"]})
    assert load_metadata(tmp_path / "m") == {"trained_on": ["v1", "v2"]}
    save_estimator(LogisticRegression(), tmp_path / "n")
    assert load_metadata(tmp_path / "n") is None
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_estimator(LogisticRegression(), tmp_path / "o", metadata={"x": np.arange(2)})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_estimator(LogisticRegression(), tmp_path / "o", metadata={"x": float("nan")})
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- files
def test_refuses_to_overwrite_unless_asked(frame, tmp_path):
    X, y = frame
    path = tmp_path / "model"
    save_estimator(LogisticRegression(C=1.0).fit(X, y), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_estimator(LogisticRegression(C=2.0), path)
    assert load_estimator(path).C == 1.0
    save_estimator(LogisticRegression(C=2.0), path, overwrite=True)
    assert load_estimator(path).C == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no leftovers
    assert sorted(p.name for p in path.iterdir()) == [ARRAYS_NAME, CONFIG_NAME]


def test_overwrite_never_deletes_foreign_directories(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a model directory"):
        save_estimator(LogisticRegression(), precious, overwrite=True)
    assert (precious / "data.txt").read_text() == "keep me"
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(FileExistsError):
        save_estimator(LogisticRegression(), afile)
    with pytest.raises(ValueError, match="not a model directory"):
        save_estimator(LogisticRegression(), afile, overwrite=True)
    assert afile.read_text() == "x"


def test_failed_write_leaves_old_model_and_no_temporaries(monkeypatch, tmp_path):
    path = tmp_path / "model"
    save_estimator(LogisticRegression(C=3.0), path)

    def _disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.np, "savez", _disk_full)
    with pytest.raises(OSError, match="disk full"):
        save_estimator(LogisticRegression(C=4.0), path, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        save_estimator(LogisticRegression(C=4.0), tmp_path / "new")
    monkeypatch.undo()
    assert load_estimator(path).C == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_missing_parent_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="parent directory"):
        save_estimator(LogisticRegression(), tmp_path / "no" / "such" / "model")


# ----------------------------------------------------------------------------- refusals at load
def _tamper(path, edit):
    config = _read_config(path)
    edit(config)
    (path / CONFIG_NAME).write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("os:system", "not in the allowlist"),
        ("builtins:eval", "not in the allowlist"),
        ("subprocess:Popen", "not in the allowlist"),
        ("sklearnx.evil:Thing", "not in the allowlist"),
        ("sklearn.base:np.load", "not defined there"),  # reached through a re-export
        ("sklearn.base:__builtins__", "invalid qualified name"),
        ("sklearn.base:clone", "not an estimator class"),
        ("sklearn.linear_model:LogisticRegression", "not defined there"),
        ("no-colon", "Invalid class reference"),
    ],
)
def test_load_refuses_classes_outside_allowlist(tmp_path, name, match):
    path = tmp_path / "m"
    save_estimator(LogisticRegression(), path)

    def edit(config):
        config["estimator"]["class"] = name

    _tamper(path, edit)
    with pytest.raises(ValueError, match=match):
        load_estimator(path)


def test_load_refuses_tampered_nested_values(frame, tmp_path):
    X, y = frame
    path = tmp_path / "m"
    save_estimator(Pipeline([("clf", LogisticRegression())]).fit(X, y), path)

    def nested_class(config):
        step = config["estimator"]["params"]["steps"][0]["items"][1]
        step["class"] = "os:system"

    _tamper(path, nested_class)
    with pytest.raises(ValueError, match="not in the allowlist"):
        load_estimator(path)

    save_estimator(LogisticRegression().fit(X, y), path, overwrite=True)

    def function_value(config):
        config["estimator"]["state"]["coef_"] = {"__kind__": "function", "name": "os:system"}

    _tamper(path, function_value)
    with pytest.raises(ValueError, match="not in the allowlist"):
        load_estimator(path)

    save_estimator(LogisticRegression().fit(X, y), path, overwrite=True)

    def shadow_method(config):
        config["estimator"]["state"]["predict"] = 1

    _tamper(path, shadow_method)
    with pytest.raises(ValueError, match="shadow"):
        load_estimator(path)


def test_load_never_unpickles_object_arrays(tmp_path):
    path = tmp_path / "m"
    save_estimator(LogisticRegression(), path)
    # an attacker swaps in an npz holding a pickled object array
    with open(path / ARRAYS_NAME, "wb") as fh:
        np.savez(fh, a00000=np.array([{"x": 1}], dtype=object), allow_pickle=True)

    def edit(config):
        config["estimator"]["state"]["evil_"] = {"__kind__": "ndarray", "key": "a00000"}

    _tamper(path, edit)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_estimator(path)


def test_load_checks_format_and_schema(tmp_path):
    path = tmp_path / "m"
    save_estimator(LogisticRegression(), path)
    _tamper(path, lambda c: c.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(ValueError, match="newer"):
        load_estimator(path)
    _tamper(path, lambda c: c.update(format="something else"))
    with pytest.raises(ValueError, match="not written by save_estimator"):
        load_estimator(path)
    (path / CONFIG_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_estimator(path)
    with pytest.raises(FileNotFoundError):
        load_estimator(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"config\.json is missing"):
        load_estimator(empty)


def test_load_warns_on_other_sklearn_version(tmp_path):
    path = tmp_path / "m"
    save_estimator(LogisticRegression(), path)
    _tamper(path, lambda c: c["library_versions"].update(sklearn="0.0.1"))
    with pytest.warns(UserWarning, match="scikit-learn 0.0.1"):
        load_estimator(path)


def test_voting_ensemble_round_trip(tmp_path):
    """Soft-voting ensembles (the shipped model's classifier) save without pickle."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.utils import Bunch

    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = (X[:, 0] + 0.3 * rng.randn(120) > 0).astype(int)
    members = [(f"m{i}", OversegMLPClassifier(random_state=i, max_epochs=5)) for i in range(2)]
    vote = VotingClassifier(members, voting="soft").fit(X, y)
    save_estimator(vote, tmp_path / "vote")
    loaded = load_estimator(tmp_path / "vote")
    assert isinstance(loaded.named_estimators_, Bunch)
    assert list(loaded.named_estimators_) == ["m0", "m1"]
    np.testing.assert_array_equal(loaded.predict_proba(X), vote.predict_proba(X))


# ----------------------------------------------------------------------------- bad model files
@pytest.fixture(scope="module")
def mlp_model(frame, tmp_path_factory):
    """A small fitted MLP saved once; tests damage copies of it."""
    X, y = frame
    clf = OversegMLPClassifier(hidden_units=(8, 4), max_epochs=3, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("mlp") / "model"
    save_estimator(clf, path)
    return path


def _copy_model(source, tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(source, target)
    return target


def _model_error(path, *fragments):
    with pytest.raises(persistence.ModelFileError) as info:
        load_estimator(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, ValueError)


def test_truncated_and_empty_arrays_are_model_file_errors(mlp_model, tmp_path):
    path = _copy_model(mlp_model, tmp_path)
    data = (path / ARRAYS_NAME).read_bytes()
    (path / ARRAYS_NAME).write_bytes(data[: len(data) // 2])
    _model_error(path, "truncated or corrupt")
    (path / ARRAYS_NAME).write_bytes(b"")
    _model_error(path, "empty")
    (path / ARRAYS_NAME).write_bytes(b"PK\x03\x04" + b"\0" * 40)
    _model_error(path, "truncated or corrupt")


def _weights(path):
    with np.load(path / ARRAYS_NAME, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _module_keys(path):
    """Array keys of the stored torch weights (float32 arrays of ndim 2)."""
    return [k for k, v in _weights(path).items() if v.dtype == np.float32 and v.ndim == 2]


def test_non_finite_weights_are_refused(mlp_model, tmp_path):
    path = _copy_model(mlp_model, tmp_path)
    arrays = _weights(path)
    key = _module_keys(path)[0]
    arrays[key] = arrays[key].copy()
    arrays[key][0, 0] = np.nan
    np.savez(path / ARRAYS_NAME, **arrays)
    _model_error(path, "NaN or infinite")


def test_weights_that_do_not_fit_hidden_units_are_refused(mlp_model, tmp_path):
    path = _copy_model(mlp_model, tmp_path)
    config = _read_config(path)
    config["estimator"]["params"]["hidden_units"] = {"__kind__": "tuple", "items": [16, 4]}
    (path / CONFIG_NAME).write_text(json.dumps(config))
    _model_error(path, "hidden_units=(16, 4)")
    # Same names, wrong dtype.
    path = _copy_model(mlp_model, tmp_path / "b")
    arrays = _weights(path)
    key = _module_keys(path)[0]
    arrays[key] = arrays[key].astype(np.float64)
    np.savez(path / ARRAYS_NAME, **arrays)
    _model_error(path, "dtype float64")


def test_deeply_nested_config_is_refused(mlp_model, tmp_path):
    path = _copy_model(mlp_model, tmp_path)
    config = _read_config(path)
    config["metadata"] = "@DEEP@"
    # 150: parsed, then measured; 5000: too deep for json to parse at all
    for depth in (150, 5000):
        text = json.dumps(config).replace('"@DEEP@"', "[" * depth + "]" * depth)
        (path / CONFIG_NAME).write_text(text)
        _model_error(path, "nested too deeply")
    (path / CONFIG_NAME).write_text(json.dumps(config).replace('"@DEEP@"', "[" * 50 + "]" * 50))
    load_estimator(path)  # 50 levels are fine


def test_parameters_are_validated_on_load(tmp_path):
    from sklearn_overseg.correction.corrector import SegmentationCorrector

    path = tmp_path / "corrector"
    save_estimator(SegmentationCorrector(), path)
    config = _read_config(path)
    assert config["estimator"]["params"]["threshold"] == 0.5
    config["estimator"]["params"]["threshold"] = 5.0
    (path / CONFIG_NAME).write_text(json.dumps(config))
    _model_error(path, "threshold")
    config["estimator"]["params"]["threshold"] = 0.7
    (path / CONFIG_NAME).write_text(json.dumps(config))
    assert load_estimator(path).threshold == 0.7


def test_shipped_models_pass_the_load_checks():
    from sklearn_overseg.pretrained import load_pretrained

    for kind in ("axial", "contact"):
        model = load_pretrained(kind=kind)
        assert 0 <= (model.threshold if not isinstance(model.threshold, dict) else 0.5) <= 1


# ------------------------------------------------------- modules of before the re-layout
def _old_names() -> list[tuple[str, str]]:
    """``(old module, name)`` for every public class and function that moved."""
    import importlib

    from sklearn_overseg.io._moved import MOVED_MODULES

    pairs = []
    for old in sorted(MOVED_MODULES):
        candidates = set()
        for new in {MOVED_MODULES[old], *_split_targets(old)}:
            module = importlib.import_module(new)
            candidates |= {
                name
                for name, obj in vars(module).items()
                if not name.startswith("_")
                and isinstance(obj, type | types.FunctionType)
                and obj.__module__ == new
            }
        pairs += [(old, name) for name in sorted(candidates)]
    return pairs


def _split_targets(old: str) -> set[str]:
    from sklearn_overseg.io._moved import SPLIT_MODULES

    return set(SPLIT_MODULES.get(old, {}).values())


@pytest.mark.parametrize(("old", "name"), _old_names(), ids="{0[0]}:{0[1]}".format)
def test_names_of_before_the_relayout_resolve_to_the_same_objects(old, name):
    from sklearn_overseg.io._moved import moved_module

    obj = persistence._resolve(f"{old}:{name}", "class")
    assert obj.__name__ == name and obj.__module__ == moved_module(old, name) != old


def test_the_relayout_alias_cannot_leave_the_allowlist():
    from sklearn_overseg.io._moved import MOVED_MODULES, SPLIT_MODULES

    targets = set(MOVED_MODULES.values()) | {
        new for split in SPLIT_MODULES.values() for new in split.values()
    }
    assert all(new.startswith("sklearn_overseg.") for new in targets)
    assert all(old.startswith("sklearn_overseg.") for old in MOVED_MODULES)


@pytest.mark.parametrize("kind", ["default", "contact"])
def test_shipped_models_saved_with_the_old_module_names_load_the_same(kind, tmp_path):
    """A model saved before the re-layout (class strings of the old flat modules) loads."""
    import shutil

    from sklearn_overseg.io._moved import MOVED_MODULES, SPLIT_MODULES
    from sklearn_overseg.pretrained import PRETRAINED_DIR

    shipped = PRETRAINED_DIR.parent / kind
    old_dir = tmp_path / kind
    shutil.copytree(shipped, old_dir)
    back = {new: old for old, new in MOVED_MODULES.items()}
    back |= {new: old for old, split in SPLIT_MODULES.items() for new in split.values()}
    text = (shipped / CONFIG_NAME).read_text(encoding="utf-8")
    for new in sorted(back, key=len, reverse=True):
        text = text.replace(f'"{new}:', f'"{back[new]}:')
    assert '"sklearn_overseg.contact:' in text and '"sklearn_overseg.screening.' not in text
    (old_dir / CONFIG_NAME).write_text(text, encoding="utf-8")

    def classes(est):
        params = est.get_params(deep=True).values()
        return [type(v) for v in (est, *params) if hasattr(v, "get_params")]

    new_model, old_model = load_estimator(shipped), load_estimator(old_dir)
    assert classes(old_model) == classes(new_model)
    assert repr(old_model) == repr(new_model)

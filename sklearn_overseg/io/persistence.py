"""Save and load fitted estimators without pickle.

A saved model is a directory::

    model_dir/
        config.json   # schema version, versions, metadata, the estimator tree as JSON
        arrays.npz    # every numpy array of the tree (np.savez, read with allow_pickle=False)

The estimator tree
------------------
Each estimator becomes a JSON node ``{"__kind__": "estimator", "class": "module:qualname",
"params": {...}, "state": {...}, "hook": bool}``:

* ``class`` names are mapped from the modules of before the re-layout into stage
  subpackages (``sklearn_overseg.contact`` is now ``sklearn_overseg.screening.contact``,
  see :mod:`sklearn_overseg.io._moved`), so older models load.
* ``class`` must live in a module under an allowlisted prefix (:data:`ALLOWED_MODULES`:
  ``sklearn`` and ``sklearn_overseg``) and must be found again under exactly that name on
  load (so a re-exported name such as ``sklearn.base:np`` cannot smuggle in other code);
  loading refuses anything else with a ``ValueError`` before importing it.
* ``params`` is ``get_params(deep=False)``; nested estimators (Pipeline ``steps``,
  FeatureUnion ``transformer_list``, ColumnTransformer ``transformers``, ...) are nodes
  themselves, so their fitted state travels with them.
* ``state`` is the fitted state: every instance attribute that is not a constructor
  parameter, the private ones included. We keep private attributes, which goes beyond
  "attributes ending in ``_``", because sklearn needs some of them to predict (for example
  ``ColumnTransformer._columns``/``_remainder``, and ``_sklearn_output_config``, which holds
  ``set_output(transform="pandas")``). Leaving them out would load a model that predicts
  differently or not at all.

Values may be None, bool, int, float (NaN/inf included), str, numpy scalars and arrays
(object arrays only when they hold strings, e.g. ``feature_names_in_``), list, tuple, dict
(any of these keys), slice, numpy dtypes and scalar types, builtin scalar types, numpy
``RandomState``/``Generator`` (their state), numpy ufuncs, functions and classes from
allowlisted modules, and nested estimators. Anything
else (e.g. the tree predictors and loss objects of ``HistGradientBoostingClassifier``)
raises a ``TypeError`` at save time naming the estimator and the attribute, before
anything is written.

Hook protocol
-------------
An estimator whose learned state is not made of such values (for example a torch
network) defines two methods, used instead of the generic attribute dump::

    def _get_persist_state(self) -> dict[str, Any]: ...   # encodable values only
    def _set_persist_state(self, state: dict[str, Any]) -> None: ...

On load the estimator is built as ``cls(**params)`` and then ``_set_persist_state`` is
called with the decoded state.
:class:`~sklearn_overseg.classification.classifier.OversegMLPClassifier` stores its torch
``state_dict`` this way.

Loading checks what it reads before anything uses it: a truncated, empty or corrupt
``arrays.npz``, a ``config.json`` nested deeper than :data:`MAX_JSON_DEPTH`, stored arrays
whose shape or dtype disagree with the estimator they rebuild (e.g. ``hidden_units`` that
do not match the weights), non-finite network weights and parameters outside their
``_parameter_constraints`` (``_validate_params``, e.g. a ``threshold`` of 5) all raise a
:class:`ModelFileError` (a ``ValueError``) naming the model directory and the problem.

Writes are atomic: the directory is written next to the target under a temporary name
and moved into place with :func:`os.replace`. An existing target is only replaced with
``overwrite=True`` and only if it is itself a saved model (never an arbitrary directory);
the old model is moved aside first and removed only once the new one is in place.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import os
import types
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.utils import Bunch

from ._moved import moved_module

__all__ = [
    "ALLOWED_MODULES",
    "MAX_JSON_DEPTH",
    "SCHEMA_VERSION",
    "ModelFileError",
    "load_estimator",
    "load_metadata",
    "save_estimator",
]

SCHEMA_VERSION = 1
FORMAT_NAME = "sklearn_overseg.estimator"
CONFIG_NAME = "config.json"
ARRAYS_NAME = "arrays.npz"
#: Top-level packages whose classes and functions a saved model may name.
ALLOWED_MODULES = ("sklearn", "sklearn_overseg")

#: Deepest nesting of lists/objects accepted in ``config.json`` (the shipped models use 20).
MAX_JSON_DEPTH = 100

_KIND = "__kind__"


class ModelFileError(ValueError):
    """A saved model that cannot be loaded; the message names the directory and why."""


_BUILTIN_TYPES = {t.__name__: t for t in (bool, int, float, complex, str, bytes)}


def _module_allowed(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in ALLOWED_MODULES)


def _qualified_name(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _package_version() -> str:
    try:
        from sklearn_overseg import __version__
    except Exception:  # a half-installed package must not stop a save
        return "unknown"
    return str(__version__)


# ----------------------------------------------------------------------------- encoding
class _Encoder:
    """Turn an estimator tree into JSON-ready values plus a dict of numpy arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _store(self, array: np.ndarray) -> str:
        key = f"a{len(self.arrays):05d}"
        self.arrays[key] = array
        return key

    def estimator(self, est: BaseEstimator, where: str) -> dict[str, Any]:
        cls = type(est)
        name = _qualified_name(cls)
        if not _module_allowed(cls.__module__):
            raise TypeError(
                f"Cannot save {where}: class {name} is outside the allowed modules "
                f"{list(ALLOWED_MODULES)}, so it could not be loaded again."
            )
        params = est.get_params(deep=False)
        enc_params = {
            key: self.value(params[key], cls.__name__, key, f"{where}.{key}")
            for key in sorted(params)
        }
        hook = callable(getattr(cls, "_get_persist_state", None)) and callable(
            getattr(cls, "_set_persist_state", None)
        )
        if hook:
            raw_state = est._get_persist_state()
            if not isinstance(raw_state, Mapping):
                raise TypeError(
                    f"{cls.__name__}._get_persist_state() must return a dict; "
                    f"got {type(raw_state).__name__}."
                )
        else:
            raw_state = {key: val for key, val in vars(est).items() if key not in params}
        state = {
            str(key): self.value(raw_state[key], cls.__name__, str(key), f"{where}.{key}")
            for key in sorted(raw_state)
        }
        return {
            _KIND: "estimator",
            "class": name,
            "params": enc_params,
            "state": state,
            "hook": hook,
        }

    def value(self, v: Any, owner: str, attr: str, where: str) -> Any:
        """Encode one value; ``owner``/``attr`` name the culprit in errors."""
        t = type(v)
        if v is None or t in (bool, str, int):
            return v
        if t is float:
            return v if math.isfinite(v) else {_KIND: "float", "value": repr(v)}
        if isinstance(v, BaseEstimator):
            return self.estimator(v, where)
        if isinstance(v, np.generic):
            if v.dtype.hasobject:
                self._fail(v, owner, attr, where)
            return {_KIND: "npscalar", "key": self._store(np.asarray(v))}
        if t is np.ndarray:
            return self._array(v, owner, attr, where)
        if t is list:
            return [self.value(x, owner, attr, f"{where}[{i}]") for i, x in enumerate(v)]
        if t is tuple:
            items = [self.value(x, owner, attr, f"{where}[{i}]") for i, x in enumerate(v)]
            return {_KIND: "tuple", "items": items}
        if t is dict or t is Bunch:
            items = [
                [
                    self.value(k, owner, attr, f"{where} key {k!r}"),
                    self.value(x, owner, attr, f"{where}[{k!r}]"),
                ]
                for k, x in v.items()
            ]
            return {_KIND: "bunch" if t is Bunch else "dict", "items": items}
        if t is slice:
            parts = [self.value(x, owner, attr, where) for x in (v.start, v.stop, v.step)]
            return {_KIND: "slice", "items": parts}
        if t is np.dtype or isinstance(v, np.dtype):
            if v.hasobject or v.fields is not None:
                self._fail(v, owner, attr, where)
            return {_KIND: "dtype", "value": v.str}
        if isinstance(v, type):
            return {_KIND: "type", "name": self._type_name(v, owner, attr, where)}
        if t is np.random.RandomState:
            return {_KIND: "randomstate", "state": self.value(v.get_state(), owner, attr, where)}
        if t is np.random.Generator:
            bitgen = type(v.bit_generator)
            if getattr(np.random, bitgen.__name__, None) is not bitgen:
                self._fail(v, owner, attr, where)
            state = self.value(v.bit_generator.state, owner, attr, where)
            return {_KIND: "generator", "bit_generator": bitgen.__name__, "state": state}
        if isinstance(v, np.ufunc):
            if getattr(np, v.__name__, None) is not v:
                self._fail(v, owner, attr, where)
            return {_KIND: "ufunc", "name": v.__name__}
        if isinstance(v, types.FunctionType) and _module_allowed(v.__module__ or ""):
            return {_KIND: "function", "name": _qualified_name(v)}
        self._fail(v, owner, attr, where)
        return None  # unreachable

    def _array(self, v: np.ndarray, owner: str, attr: str, where: str) -> dict[str, Any]:
        if v.dtype == object:
            flat = v.ravel().tolist()
            if not all(type(x) is str or isinstance(x, np.str_) for x in flat):
                bad = next(type(x).__name__ for x in flat if not isinstance(x, str))
                raise TypeError(
                    f"Cannot save {owner} attribute {attr!r} ({where}): object array holding "
                    f"{bad} values; only numeric/bool/str arrays can be saved without pickle."
                )
            as_str = np.array(flat, dtype=str).reshape(v.shape) if flat else v.astype(str)
            return {_KIND: "strarray", "key": self._store(as_str)}
        if v.dtype.hasobject:
            self._fail(v, owner, attr, where)
        return {_KIND: "ndarray", "key": self._store(v)}

    def _type_name(self, v: type, owner: str, attr: str, where: str) -> str:
        if issubclass(v, np.generic) and getattr(np, v.__name__, None) is v:
            return f"numpy:{v.__name__}"
        if _BUILTIN_TYPES.get(v.__name__) is v:
            return f"builtins:{v.__name__}"
        if _module_allowed(v.__module__):
            return _qualified_name(v)
        self._fail(v, owner, attr, where)
        return ""  # unreachable

    @staticmethod
    def _fail(v: Any, owner: str, attr: str, where: str) -> None:
        kind = type(v)
        raise TypeError(
            f"Cannot save {owner} attribute {attr!r} ({where}): unsupported type "
            f"{kind.__module__}.{kind.__qualname__}. Saving without pickle supports numpy "
            "arrays, scalars, strings, None, lists/tuples/dicts of these and nested "
            "estimators; an estimator with other learned state must implement "
            "_get_persist_state()/_set_persist_state()."
        )


# ----------------------------------------------------------------------------- decoding
def _resolve(name: Any, what: str) -> Any:
    """Import ``module:qualname`` from an allowlisted module, refusing everything else."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise ValueError(f"Invalid {what} reference {name!r} in the model config.")
    module_name, qualname = name.split(":")
    # A model saved before the package was grouped by stage names the old modules
    # (``sklearn_overseg.contact``); only sklearn_overseg names are mapped, so the
    # allowlist below still sees what is imported.
    module_name = moved_module(module_name, qualname)
    if not _module_allowed(module_name):
        raise ValueError(
            f"Refusing to load {what} {name!r}: module {module_name!r} is not in the "
            f"allowlist {list(ALLOWED_MODULES)}."
        )
    parts = qualname.split(".")
    if not all(p.isidentifier() and not p.startswith("__") for p in parts):
        raise ValueError(f"Refusing to load {what} {name!r}: invalid qualified name.")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in parts:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Cannot find {what} {name!r}: {exc}") from exc
    # a name reached through a re-export (e.g. ``sklearn.base:np.load``) is refused
    if getattr(obj, "__module__", None) != module_name or getattr(obj, "__qualname__", None) != (
        qualname
    ):
        raise ValueError(f"Refusing to load {what} {name!r}: it is not defined there.")
    return obj


class _Decoder:
    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays

    def _array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"The model config refers to a missing array {key!r}.")
        return self.arrays[key]

    def estimator(self, node: Mapping[str, Any]) -> BaseEstimator:
        cls = _resolve(node.get("class"), "class")
        if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
            raise ValueError(f"Refusing to load {node.get('class')!r}: not an estimator class.")
        params = {str(k): self.value(v) for k, v in dict(node.get("params", {})).items()}
        est = cls(**params)
        state = {str(k): self.value(v) for k, v in dict(node.get("state", {})).items()}
        for key in state:
            # a tampered state must not shadow methods or properties of the class
            attr = getattr(cls, key, None)
            if callable(attr) or isinstance(attr, property) or key.startswith("__"):
                raise ValueError(
                    f"Refusing to load {cls.__name__}: saved state {key!r} would shadow a "
                    "class attribute."
                )
        if callable(getattr(est, "_validate_params", None)) and hasattr(
            cls, "_parameter_constraints"
        ):
            # The constructor stores parameters as given; fit would check them, but a
            # loaded model goes straight to predict.
            est._validate_params()
        if node.get("hook"):
            if not callable(getattr(cls, "_set_persist_state", None)):
                raise ValueError(f"{cls.__name__} has no _set_persist_state() to restore it.")
            est._set_persist_state(state)
        else:
            vars(est).update(state)
        return est

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, bool | int | float | str):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict) or _KIND not in v:
            raise ValueError(f"Malformed value in the model config: {v!r:.200}")
        kind = v[_KIND]
        if kind == "estimator":
            return self.estimator(v)
        if kind == "float":
            return float(v["value"])
        if kind == "ndarray":
            return self._array(v["key"])
        if kind == "npscalar":
            return self._array(v["key"])[()]
        if kind == "strarray":
            return self._array(v["key"]).astype(object)
        if kind == "tuple":
            return tuple(self.value(x) for x in v["items"])
        if kind == "dict":
            return {self.value(k): self.value(x) for k, x in v["items"]}
        if kind == "bunch":
            # Ensembles (VotingClassifier, StackingClassifier) index members by name.
            return Bunch(**{self.value(k): self.value(x) for k, x in v["items"]})
        if kind == "slice":
            return slice(*(self.value(x) for x in v["items"]))
        if kind == "dtype":
            return np.dtype(str(v["value"]))
        if kind == "type":
            return self._type(v["name"])
        if kind == "randomstate":
            rng = np.random.RandomState()
            rng.set_state(self.value(v["state"]))
            return rng
        if kind == "generator":
            bitgen = getattr(np.random, str(v["bit_generator"]), None)
            if not (isinstance(bitgen, type) and issubclass(bitgen, np.random.BitGenerator)):
                raise ValueError(f"Refusing to load bit generator {v['bit_generator']!r}.")
            gen = bitgen()
            gen.state = self.value(v["state"])
            return np.random.Generator(gen)
        if kind == "ufunc":
            func = getattr(np, str(v["name"]), None)
            if not isinstance(func, np.ufunc):
                raise ValueError(f"Refusing to load {v['name']!r}: not a numpy ufunc.")
            return func
        if kind == "function":
            func = _resolve(v["name"], "function")
            if not isinstance(func, types.FunctionType):
                raise ValueError(f"Refusing to load {v['name']!r}: not a function.")
            return func
        raise ValueError(f"Unknown value kind {kind!r} in the model config.")

    @staticmethod
    def _type(name: Any) -> type:
        if isinstance(name, str) and name.startswith("numpy:"):
            t = getattr(np, name[6:], None)
            if isinstance(t, type) and issubclass(t, np.generic):
                return t
        elif isinstance(name, str) and name.startswith("builtins:"):
            if name[9:] in _BUILTIN_TYPES:
                return _BUILTIN_TYPES[name[9:]]
        else:
            t = _resolve(name, "type")
            if isinstance(t, type):
                return t
        raise ValueError(f"Refusing to load type {name!r}.")


# ----------------------------------------------------------------------------- files
def _is_model_dir(path: Path) -> bool:
    try:
        with open(path / CONFIG_NAME, encoding="utf-8") as fh:
            return json.load(fh).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def _json_depth(value: Any) -> int:
    """Deepest nesting of lists and dicts in a parsed JSON value (iterative)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_estimator(
    estimator: BaseEstimator,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save an estimator (fitted or not) to a directory, without pickle.

    Parameters
    ----------
    estimator : BaseEstimator
        A scikit-learn compatible estimator from an allowlisted package (``sklearn``,
        ``sklearn_overseg``), possibly a Pipeline/FeatureUnion/ColumnTransformer.
    path : str or path-like
        Target directory; its parent must exist.
    overwrite : bool, default=False
        Replace an existing saved model at ``path``.
    metadata : mapping, default=None
        Free JSON-serialisable information stored in ``config.json`` (see
        :func:`load_metadata`).

    Returns
    -------
    path : pathlib.Path
        The written directory.

    Raises
    ------
    TypeError
        If the estimator holds a value that cannot be saved without pickle (the message
        names the estimator and attribute), or ``metadata`` is not JSON-serialisable.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``overwrite`` is True but ``path`` is not a saved model.
    """
    if not isinstance(estimator, BaseEstimator):
        raise TypeError(
            f"save_estimator expects a scikit-learn estimator; got {type(estimator).__name__}."
        )
    path = Path(path)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict or None; got {type(metadata).__name__}.")
    try:
        meta = None if metadata is None else json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from exc

    encoder = _Encoder()
    tree = encoder.estimator(estimator, type(estimator).__name__)
    config = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "package_version": _package_version(),
        "library_versions": {"sklearn": sklearn.__version__, "numpy": np.__version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "metadata": meta,
        "estimator": tree,
    }
    config_text = json.dumps(config, indent=1, allow_nan=False)

    exists = path.exists() or path.is_symlink()
    if exists and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if exists and not (path.is_dir() and not path.is_symlink() and _is_model_dir(path)):
        raise ValueError(
            f"Refusing to overwrite {path}: it is not a model directory written by save_estimator."
        )
    parent = path.absolute().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"The parent directory of {path} does not exist: {parent}")

    from .volumes import atomic_output

    with atomic_output(
        path, directory=True, overwrite=overwrite, replaceable=(_is_model_dir, "a saved model")
    ) as tmp:
        with open(tmp / ARRAYS_NAME, "wb") as fh:
            np.savez(fh, allow_pickle=False, **encoder.arrays)
            fh.flush()
            os.fsync(fh.fileno())
        # config last: a directory with a config.json is complete
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
            fh.write(config_text)
            fh.flush()
            os.fsync(fh.fileno())
    _fsync_dir(parent)
    return path


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise FileNotFoundError(f"No saved model directory at {path}.")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ModelFileError(f"{path} is not a saved model: {CONFIG_NAME} is missing.")
    try:
        with open(config_path, encoding="utf-8") as fh:
            config = json.load(fh)
    except RecursionError:
        raise ModelFileError(
            f"{config_path} is nested too deeply to be a saved model "
            f"(more than {MAX_JSON_DEPTH} levels)."
        ) from None
    except ValueError as exc:
        raise ModelFileError(f"{config_path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {config_path}: {exc.strerror or exc}") from exc
    if _json_depth(config) > MAX_JSON_DEPTH:
        raise ModelFileError(
            f"{config_path} is nested too deeply to be a saved model "
            f"(more than {MAX_JSON_DEPTH} levels)."
        )
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{config_path} was not written by save_estimator.")
    version = config.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version:
        raise ModelFileError(f"{config_path} has an invalid schema_version {version!r}.")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses schema version {version}, newer than this sklearn_overseg "
            f"supports ({SCHEMA_VERSION}); upgrade sklearn_overseg to load it."
        )
    return config


def load_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the ``metadata`` stored by :func:`save_estimator` (without loading the model).

    Parameters
    ----------
    path : str or path-like
        A directory written by :func:`save_estimator`.

    Returns
    -------
    metadata : dict or None
    """
    return _read_config(Path(path)).get("metadata")


def load_estimator(path: str | os.PathLike) -> BaseEstimator:
    """Rebuild an estimator saved by :func:`save_estimator`; never unpickles.

    Parameters
    ----------
    path : str or path-like
        A directory written by :func:`save_estimator`.

    Returns
    -------
    estimator : BaseEstimator
        The estimator, fitted if it was fitted when saved, predicting identically.

    Raises
    ------
    ModelFileError
        A ``ValueError``: if the config is malformed, nested deeper than
        :data:`MAX_JSON_DEPTH`, from a newer schema, or names a class or function
        outside the allowlisted modules; if ``arrays.npz`` is empty, truncated or
        corrupt; if stored arrays do not fit the estimator they rebuild or network
        weights are not finite; if a parameter fails the estimator's
        ``_parameter_constraints``.
    FileNotFoundError
        If ``path`` is not a directory.
    """
    path = Path(path)
    config = _read_config(path)
    saved = config.get("library_versions", {}).get("sklearn")
    if saved is not None and saved != sklearn.__version__:
        warnings.warn(
            f"{path} was saved with scikit-learn {saved}, this is {sklearn.__version__}; "
            "predictions may differ.",
            UserWarning,
            stacklevel=2,
        )
    arrays_path = path / ARRAYS_NAME
    if not arrays_path.is_file():
        raise ModelFileError(f"{path} is not a complete saved model: {ARRAYS_NAME} is missing.")
    arrays = _read_arrays(arrays_path)
    tree = config.get("estimator")
    if not isinstance(tree, dict) or tree.get(_KIND) != "estimator":
        raise ModelFileError(f"{path / CONFIG_NAME} holds no estimator.")
    try:
        return _Decoder(arrays).estimator(tree)
    except (MemoryError, ModelFileError):
        raise
    except Exception as exc:
        # Builds and state setters fail on a tampered or mismatched file with their own
        # exception types (torch's size-mismatch RuntimeError, TypeError of an unknown
        # parameter, InvalidParameterError): all of them mean this file is unusable.
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelFileError(f"cannot load the model in {path}: {text}") from exc


def _read_arrays(arrays_path: Path) -> dict[str, np.ndarray]:
    if arrays_path.stat().st_size == 0:
        raise ModelFileError(f"{arrays_path} is empty (0 bytes): the model was not saved whole.")
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError("it holds a single array, not an .npz archive")
            return {key: npz[key] for key in npz.files}
    except MemoryError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelFileError(
            f"{arrays_path} is truncated or corrupt ({type(exc).__name__}: {text})."
        ) from exc

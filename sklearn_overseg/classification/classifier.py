"""The paper's MLP pair classifier as a scikit-learn estimator.

Design
------
:class:`OversegMLPClassifier` is a thin :class:`~sklearn.base.BaseEstimator` wrapper that
builds a skorch :class:`~skorch.NeuralNetBinaryClassifier` in :meth:`~OversegMLPClassifier.fit`
and keeps it as ``net_``, rather than a subclass of the skorch net. Why:

* skorch nets carry dozens of constructor arguments and ``__getattr__``-style prefixed
  parameters; as a subclass every sklearn API check (``clone``, ``get_params``,
  ``check_estimator``) would see that surface. The wrapper exposes only the handful of
  hyper-parameters that matter here, all clone-safe.
* learned state then follows sklearn's rules to the letter (``classes_``,
  ``n_features_in_``, ``feature_names_in_``, ``net_``), the class labels can be anything
  binary (skorch hard-codes ``classes_ == [0, 1]``), and input validation, NaN checks and
  DataFrame handling are sklearn's own (:func:`~sklearn.utils.validation.validate_data`).
* persistence without pickle only has to store the torch ``state_dict`` and the few
  learned attributes (:meth:`_get_persist_state` / :meth:`_set_persist_state`).

Inference runs in numpy (the module's forward pass in eval mode: standardise, Linear and
ReLU, dropout off, sigmoid), so a loaded model predicts without importing torch or skorch
(about 6 s of start-up on a shared 2-core machine); they are imported by ``fit`` and by
the first access to ``net_``. ``tests/test_classifier.py`` checks the numpy
probabilities against the torch module's. For the same reason the net's class
(:class:`~sklearn_overseg.classification._weighted_net.WeightedBinaryNet`, which weighs the loss by
``sample_weight``) lives in a module of its own, imported when a net is built.

Extra skorch settings pass through ``**kwargs`` with skorch's prefixes (for instance
``optimizer__weight_decay=1e-4`` or ``iterator_train__num_workers=0``); they are part of
``get_params`` so they survive ``clone`` and can be searched by ``GridSearchCV``.

Reproducibility: ``random_state`` is turned into one integer seed per ``fit``. Training runs
inside :func:`torch.random.fork_rng` after :func:`torch.manual_seed(seed) <torch.manual_seed>`,
so weight initialisation, dropout masks and mini-batch shuffling are all seeded, refits
are bit-identical, and the caller's global torch RNG state is left untouched. The
validation split uses the same seed.

Threads: fitting runs with one torch thread (:func:`_one_torch_thread`), and
the caller's setting is restored afterwards. For a network this small, intra-op threading
only adds synchronisation: on the shared 2-core machine a 30-epoch fit took 0.13-0.3 s
with one thread and 3.7-9.7 s with two while other processes were busy. It also makes
results independent of the thread count a joblib/loky worker happens to get.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

if TYPE_CHECKING:
    from skorch import NeuralNetBinaryClassifier

__all__ = ["OversegMLPClassifier"]

# skorch parameter families a user may set through ``**kwargs``; ``module__*`` is reserved
# because the module is configured by ``hidden_units``/``dropout`` and the fitted scaler.
_NET_KWARG_PREFIXES = (
    "optimizer__",
    "criterion__",
    "iterator_train__",
    "iterator_valid__",
    "callbacks__",
    "dataset__",
)
_NET_KWARG_NAMES = frozenset({"optimizer", "device", "callbacks"})
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_PREDICT_CHUNK = 65536


_THREADS_LOCK = threading.Lock()
_threads_users = 0
_threads_saved = 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded; restore the global setting when the last user leaves.

    Reference-counted so that fits running concurrently in threads neither fight over the
    setting nor leave it at 1.
    """
    global _threads_users, _threads_saved
    import torch

    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            # Set even when torch already reports 1 thread: under an OpenMP limit set from
            # outside (threadpoolctl.threadpool_limits, joblib's loky workers) it does, yet
            # each op ran 10-30x slower until torch.set_num_threads(1) was called.
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0 and torch.get_num_threads() != _threads_saved:
                torch.set_num_threads(_threads_saved)


_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_controller: Any = None
_blas_limiter: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS single-threaded; reference-counted like :func:`_one_torch_thread`.

    The forward pass multiplies small matrices (a candidate table by a few hundred
    weights), where BLAS threads only wait for each other: on the shared 2-core machine
    163 rows took 125-143 ms with two threads against 24 ms with one.
    """
    global _blas_users, _blas_controller, _blas_limiter
    with _BLAS_LOCK:
        if _blas_users == 0:
            if _blas_controller is None:
                from threadpoolctl import ThreadpoolController

                # Built once (it scans the loaded libraries, ~10 ms); a limit then costs µs.
                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _is_net_kwarg(key: str) -> bool:
    return key in _NET_KWARG_NAMES or key.startswith(_NET_KWARG_PREFIXES)


def _silent(*args: Any, **kwargs: Any) -> None:
    """Sink for skorch callbacks when ``verbose=0``."""


class OversegMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary MLP classifier for candidate pairs (the paper's 128-64-32 network).

    A feed-forward network with ReLU hidden layers, dropout and one logit output, trained
    with Adam on :class:`torch.nn.BCEWithLogitsLoss` through skorch, with stratified early
    stopping. Features are standardised inside the network (mean and standard deviation
    learned in ``fit``), so any numeric feature matrix can be fed directly.

    Parameters
    ----------
    hidden_units : tuple of int, default=(128, 64, 32)
        Width of each hidden layer. ``()`` gives a logistic-regression model.
    dropout : float, default=0.3
        Dropout probability after each hidden layer, in ``[0, 1)``.
    lr : float, default=1e-3
        Adam learning rate.
    max_epochs : int, default=200
        Maximum number of passes over the training data.
    batch_size : int, default=64
        Mini-batch size.
    patience : int, default=10
        Early stopping: epochs without improvement of the monitored loss before training
        stops; the weights of the best epoch are restored.
    class_weight : {"balanced"}, dict or None, default="balanced"
        Class-imbalance handling through the loss' ``pos_weight``. ``"balanced"`` uses
        ``n_negative / n_positive`` counted in ``fit``; a dict ``{label: weight}`` uses
        ``weight[positive] / weight[negative]`` (missing labels weigh 1); None disables it.
    valid_fraction : float or None, default=0.2
        Fraction of the training data held out (stratified) to monitor ``valid_loss`` for
        early stopping. When None or 0, or when the minority class is too small to give
        it at least two validation samples, no data are held out and early stopping
        monitors ``train_loss``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, shuffling and the validation split. Pass an
        int for bit-identical refits.
    verbose : int, default=0
        0 trains silently; 1 prints skorch's per-epoch table.
    **kwargs : dict
        Extra skorch settings with skorch prefixes (``optimizer__*``, ``criterion__*``,
        ``iterator_train__*``, ``iterator_valid__*``, ``callbacks__*``, ``dataset__*``) or
        ``optimizer``, ``device``, ``callbacks`` (extra callbacks appended to early
        stopping). Validated in ``fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels; ``classes_[1]`` is the positive class (probability column 1).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Column names, when ``X`` was a DataFrame with string column names.
    net_ : skorch.NeuralNetBinaryClassifier
        The trained skorch net; its ``history`` holds the training log. A model loaded
        by :func:`~sklearn_overseg.io.persistence.load_estimator` builds it (importing torch)
        on first access; predictions do not need it.
    n_iter_ : int
        Number of epochs trained.
    pos_weight_ : float or None
        The ``pos_weight`` given to the loss.

    See Also
    --------
    sklearn_overseg.classification._modules.OversegMLPModule : the torch module.

    Notes
    -----
    Sample weights (:meth:`fit`) scale each row's loss; with one full batch
    (``batch_size`` at least the number of rows), ``dropout=0`` and no validation split,
    a weight of 2 trains exactly as the row repeated twice, up to float32 rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg.classification.classifier import OversegMLPClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> clf = OversegMLPClassifier(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        "hidden_units": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), Mapping, None],
        "valid_fraction": [Interval(Real, 0, 1, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        hidden_units: tuple[int, ...] = (128, 64, 32),
        dropout: float = 0.3,
        lr: float = 1e-3,
        max_epochs: int = 200,
        batch_size: int = 64,
        patience: int = 10,
        class_weight: str | Mapping | None = "balanced",
        valid_fraction: float | None = 0.2,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        **kwargs: Any,
    ) -> None:
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.class_weight = class_weight
        self.valid_fraction = valid_fraction
        self.random_state = random_state
        self.verbose = verbose
        self._net_kwargs = dict(kwargs)

    # ------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get parameters, including skorch pass-through ``**kwargs``.

        Parameters
        ----------
        deep : bool, default=True
            Unused (no nested estimators); kept for the sklearn API.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update(getattr(self, "_net_kwargs", {}))
        return params

    def set_params(self, **params: Any) -> OversegMLPClassifier:
        """Set parameters; skorch-prefixed keys are stored as pass-through kwargs.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : OversegMLPClassifier
        """
        net_kwargs = {key: params.pop(key) for key in list(params) if _is_net_kwarg(key)}
        if net_kwargs:
            self._net_kwargs = {**getattr(self, "_net_kwargs", {}), **net_kwargs}
        if params:
            super().set_params(**params)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _validate_hyperparameters(self) -> dict[str, Any]:
        """Check what ``_parameter_constraints`` cannot express; return all normalised.

        The types and ranges are checked by ``_validate_params`` (``fit`` runs it through
        ``_fit_context``); here: the entries of ``hidden_units`` and the skorch kwargs.
        """
        try:
            hidden = tuple(self.hidden_units)
        except TypeError:
            raise ValueError(
                f"hidden_units must be a sequence of positive integers; got {self.hidden_units!r}."
            ) from None
        for units in hidden:
            if isinstance(units, bool) or not isinstance(units, Integral) or units < 1:
                raise ValueError(
                    f"each entry of hidden_units must be an integer >= 1; got {units!r}."
                )
        vf = self.valid_fraction
        cw = self.class_weight
        unknown = sorted(key for key in self._net_kwargs if not _is_net_kwarg(key))
        if unknown:
            raise ValueError(
                f"Unknown keyword argument(s) {unknown} for OversegMLPClassifier; extra "
                f"settings must be skorch parameters with one of the prefixes "
                f"{list(_NET_KWARG_PREFIXES)} or one of {sorted(_NET_KWARG_NAMES)}."
            )
        if cw is not None and "criterion__pos_weight" in self._net_kwargs:
            raise ValueError(
                "criterion__pos_weight conflicts with class_weight; set class_weight=None "
                "to pass pos_weight yourself."
            )
        return {
            "hidden_units": tuple(int(units) for units in hidden),
            "dropout": float(self.dropout),
            "lr": float(self.lr),
            "max_epochs": int(self.max_epochs),
            "batch_size": int(self.batch_size),
            "patience": int(self.patience),
            "valid_fraction": 0.0 if vf is None else float(vf),
        }

    # ------------------------------------------------------------------ data
    def _check_X(self, X: Any) -> np.ndarray:
        """Validate ``X`` at predict time; return it as contiguous float32."""
        return self._to_float32(validate_data(self, X, reset=False, dtype=(np.float64, np.float32)))

    @staticmethod
    def _to_float32(X: np.ndarray) -> np.ndarray:
        if X.size and float(np.max(np.abs(X))) > _FLOAT32_MAX:
            raise ValueError(
                f"X contains values too large for float32 (max |x| = {np.max(np.abs(X)):g}); "
                "the network computes in float32."
            )
        return np.ascontiguousarray(X, dtype=np.float32)

    def _pos_weight(self, n_neg: float, n_pos: float) -> float | None:
        cw = self.class_weight
        if cw is None:
            return None
        if isinstance(cw, str):  # "balanced", validated earlier
            return n_neg / n_pos
        unknown = [label for label in cw if label not in set(self.classes_.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight has labels {unknown} that are not in y's classes "
                f"{self.classes_.tolist()}."
            )
        w_neg = float(cw.get(self.classes_[0], 1.0))
        w_pos = float(cw.get(self.classes_[1], 1.0))
        if not (w_neg > 0 and w_pos > 0):
            raise ValueError(f"class_weight values must be positive; got {dict(cw)!r}.")
        return w_pos / w_neg

    # ------------------------------------------------------------------ net
    def _build_net(
        self,
        hp: dict[str, Any],
        *,
        n_features: int,
        mean: np.ndarray,
        scale: np.ndarray,
        pos_weight: float | None,
        seed: int,
        use_valid: bool,
        weighted: bool = False,
    ) -> NeuralNetBinaryClassifier:
        import torch
        from skorch.callbacks import EarlyStopping
        from skorch.dataset import ValidSplit

        from ._modules import OversegMLPModule
        from ._weighted_net import WeightedBinaryNet

        sink = print if self.verbose else _silent
        stopper = EarlyStopping(
            monitor="valid_loss" if use_valid else "train_loss",
            patience=hp["patience"],
            load_best=True,
            sink=sink,
        )
        extra = dict(self._net_kwargs)
        callbacks = [("early_stopping", stopper), *list(extra.pop("callbacks", None) or [])]
        kwargs: dict[str, Any] = {
            "module": OversegMLPModule,
            "module__n_features": n_features,
            "module__hidden_units": hp["hidden_units"],
            "module__dropout": hp["dropout"],
            "module__feature_mean": mean,
            "module__feature_scale": scale,
            "criterion": torch.nn.BCEWithLogitsLoss,
            "optimizer": torch.optim.Adam,
            "lr": hp["lr"],
            "max_epochs": hp["max_epochs"],
            "batch_size": hp["batch_size"],
            "train_split": (
                ValidSplit(hp["valid_fraction"], stratified=True, random_state=seed)
                if use_valid
                else None
            ),
            "callbacks": callbacks,
            "iterator_train__shuffle": True,
            "verbose": int(self.verbose),
            "device": "cpu",
        }
        if pos_weight is not None:
            kwargs["criterion__pos_weight"] = torch.tensor(pos_weight, dtype=torch.float32)
        if weighted:
            # WeightedBinaryNet.get_loss reduces the per-row losses with the weights
            kwargs["criterion__reduction"] = "none"
        kwargs.update(extra)
        return WeightedBinaryNet(**kwargs)

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> OversegMLPClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric features; NaN or infinite values raise ``ValueError``.
        y : array-like of shape (n_samples,)
            Binary labels (two distinct values).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the loss, in the feature standardisation
            and in the ``"balanced"`` class weight. Rescaled to mean 1, so only ratios
            matter. Routed by metadata routing once requested
            (``set_fit_request(sample_weight=True)``).

        Returns
        -------
        self : OversegMLPClassifier
            The fitted estimator.
        """
        hp = self._validate_hyperparameters()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}."
            )
        classes, y_enc = np.unique(y, return_inverse=True)
        if classes.size != 2:
            raise ValueError(
                "OversegMLPClassifier needs samples of 2 classes in y; got 1 class: "
                f"{classes.tolist()}."
            )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            class_weight = np.bincount(y_enc, weights=sw, minlength=2)
            if not class_weight.min() > 0:
                empty = classes.tolist()[int(np.argmin(class_weight))]
                raise ValueError(
                    f"sample_weight gives class {empty!r} a total weight of 0: the network "
                    "needs weighted samples of 2 classes."
                )
        X32 = self._to_float32(X)
        self.classes_ = classes
        counts = np.bincount(y_enc, minlength=2)
        weighted_counts = counts if sw is None else class_weight
        self.pos_weight_ = self._pos_weight(float(weighted_counts[0]), float(weighted_counts[1]))

        # float64 statistics: features may span many orders of magnitude
        X64 = X32.astype(np.float64)
        if sw is None:
            mean = X64.mean(axis=0)
            std = X64.std(axis=0)
        else:
            mean = np.average(X64, axis=0, weights=sw)
            std = np.sqrt(np.average((X64 - mean) ** 2, axis=0, weights=sw))
        # constant (or numerically constant) columns are centred but not scaled
        # (relative test only: a feature of values ~1e-6 is not constant)
        scale = np.where(std > 10 * np.finfo(np.float32).eps * np.abs(mean), std, 1.0)
        use_valid = hp["valid_fraction"] > 0 and counts.min() * hp["valid_fraction"] >= 2

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        net = self._build_net(
            hp,
            n_features=X32.shape[1],
            mean=mean.astype(np.float32),
            scale=scale.astype(np.float32),
            pos_weight=self.pos_weight_,
            seed=seed,
            use_valid=use_valid,
            weighted=sw is not None,
        )
        X_net: Any = X32
        if sw is not None:
            X_net = {"X": X32, "sample_weight": (sw / sw.mean()).astype(np.float32)}
        import torch

        with _one_torch_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net.fit(X_net, y_enc.astype(np.float32))
        self.__dict__.pop("_module_state", None)  # weights of an earlier load, now stale
        self.net_ = net
        self.n_iter_ = len(net.history)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Column ``j`` is the probability of ``classes_[j]``.
        """
        check_is_fitted(self)
        X32 = self._check_X(X)
        layers, mean, scale = _float64_layers(self._module_arrays())
        proba = np.empty((X32.shape[0], 2), dtype=np.float64)
        with _one_blas_thread():
            # chunks bound the float64 activations' memory on very large tables
            for start in range(0, X32.shape[0], _PREDICT_CHUNK):
                rows = slice(start, start + _PREDICT_CHUNK)
                logits = _forward(X32[rows], layers, mean, scale)
                proba[rows, 0] = _sigmoid(-logits)
                proba[rows, 1] = _sigmoid(logits)
        return proba

    def _module_arrays(self) -> dict[str, np.ndarray]:
        """The network's ``state_dict`` as numpy arrays, from the net if it was built."""
        net = self.__dict__.get("net_")
        if net is None:
            return self._module_state
        return {
            name: tensor.detach().cpu().numpy() for name, tensor in net.module_.state_dict().items()
        }

    def __getattr__(self, name: str) -> Any:
        # ``net_`` of a loaded model is built on first use: prediction runs in numpy, so
        # torch and skorch are imported only by those who fit or inspect the net.
        if name == "net_":
            module_state = self.__dict__.get("_module_state")
            if module_state is not None:
                net = self._rebuild_net(module_state)
                self.__dict__["net_"] = net
                return net
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def predict(self, X: Any) -> np.ndarray:
        """Predict class labels (positive when its probability exceeds 0.5).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > 0.5).astype(np.intp)]

    # ------------------------------------------------------------------ persistence
    def _get_persist_state(self) -> dict[str, Any]:
        """Learned state as arrays/scalars for :mod:`sklearn_overseg.io.persistence`.

        Returns
        -------
        state : dict
            The public learned attributes (except ``net_``) and, under
            ``"module_state"``, the torch ``state_dict`` as float32 numpy arrays.
        """
        state = {
            key: value
            for key, value in vars(self).items()
            if key.endswith("_") and not key.startswith("_") and key != "net_"
        }
        if "net_" in self.__dict__ or "_module_state" in self.__dict__:
            state["module_state"] = {
                name: np.array(value, copy=True) for name, value in self._module_arrays().items()
            }
        return state

    def _set_persist_state(self, state: Mapping[str, Any]) -> None:
        """Restore the state written by :meth:`_get_persist_state` (rebuilds ``net_``).

        Parameters
        ----------
        state : mapping
            As returned by :meth:`_get_persist_state`.
        """
        state = dict(state)
        module_state = state.pop("module_state", None)
        for key, value in state.items():
            setattr(self, key, value)
        self.__dict__.pop("net_", None)
        if module_state is None:
            self.__dict__.pop("_module_state", None)
            return
        self._validate_params()  # parameters read from a file: checked as fit would
        hp = self._validate_hyperparameters()  # a tampered config fails on load, not later
        _check_module_state(module_state, int(self.n_features_in_), hp["hidden_units"])
        self._module_state = {name: np.asarray(value) for name, value in module_state.items()}

    def _rebuild_net(self, module_state: Mapping[str, np.ndarray]) -> NeuralNetBinaryClassifier:
        """A skorch net holding the saved weights (what ``fit`` would have left)."""
        import torch

        hp = self._validate_hyperparameters()
        net = self._build_net(
            hp,
            n_features=int(self.n_features_in_),
            mean=np.asarray(module_state["mean"]),
            scale=np.asarray(module_state["scale"]),
            pos_weight=self.pos_weight_,
            seed=0,
            use_valid=False,
        )
        # initialize() draws random weights; keep the caller's RNG stream intact
        with _one_torch_thread(), torch.random.fork_rng(devices=[]):
            net.initialize()
        net.module_.load_state_dict(
            {name: torch.from_numpy(np.array(value)) for name, value in module_state.items()}
        )
        net.module_.eval()
        return net


def _module_shapes(n_features: int, hidden: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the ``state_dict`` of ``OversegMLPModule(n_features, hidden)``.

    Derived without building the module (that would import torch); the tests compare it
    with the torch module's own ``state_dict``.
    """
    shapes: dict[str, tuple[int, ...]] = {"mean": (n_features,), "scale": (n_features,)}
    width = n_features
    for k, units in enumerate(hidden):
        # Each hidden block is (Linear, ReLU, Dropout): the Linears are hidden.0, .3, .6, ...
        shapes[f"hidden.{3 * k}.weight"] = (units, width)
        shapes[f"hidden.{3 * k}.bias"] = (units,)
        width = units
    shapes["output.weight"] = (1, width)
    shapes["output.bias"] = (1,)
    return shapes


def _check_module_state(stored: Mapping[str, Any], n_features: int, hidden) -> None:
    """Refuse stored weights that do not fit the network of ``hidden``, or are not finite.

    Checked on load, in numpy: a mismatch would otherwise surface as a shape error deep in
    the first prediction, and NaN weights would turn every probability into NaN.
    """
    expected = _module_shapes(n_features, tuple(hidden))
    names, wanted = set(stored), set(expected)
    if names != wanted:
        extra, missing = sorted(names - wanted), sorted(wanted - names)
        raise ValueError(
            f"the stored network weights do not fit hidden_units={tuple(hidden)}: "
            f"unexpected {extra or 'none'}, missing {missing or 'none'}."
        )
    for name, shape in expected.items():
        value = np.asarray(stored[name])
        if value.shape != shape or value.dtype != np.float32:
            raise ValueError(
                f"stored weight {name!r} has shape {value.shape} and dtype {value.dtype}, but "
                f"the network of hidden_units={tuple(hidden)} needs {shape} float32."
            )
        if not np.isfinite(value).all():
            raise ValueError(f"stored weight {name!r} holds NaN or infinite values.")


def _float64_layers(
    state: Mapping[str, np.ndarray],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """``(weight, bias)`` of each Linear of :class:`OversegMLPModule`, in order, in float64.

    The hidden Linears are ``hidden.{3k}`` (each followed by ReLU and Dropout), then
    ``output``.
    """
    hidden = sorted(
        {int(name.split(".")[1]) for name in state if name.startswith("hidden.")},
    )
    names = [f"hidden.{k}" for k in hidden] + ["output"]
    layers = [
        (
            np.asarray(state[f"{name}.weight"], dtype=np.float64),
            np.asarray(state[f"{name}.bias"], dtype=np.float64),
        )
        for name in names
    ]
    mean = np.asarray(state["mean"], dtype=np.float64)
    scale = np.asarray(state["scale"], dtype=np.float64)
    return layers, mean, scale


def _forward(X32: np.ndarray, layers, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """One logit per row: :meth:`OversegMLPModule.forward` in eval mode, in numpy.

    float64 on the float32 weights, as the torch path did: float32 GEMM results depend on
    the batch size (~1e-7), which would make a row's probability depend on its batch.
    Dropout is the identity in eval mode.
    """
    h = (X32.astype(np.float64) - mean) / scale
    for weight, bias in layers[:-1]:
        h = np.maximum(h @ weight.T + bias, 0.0)
    weight, bias = layers[-1]
    return (h @ weight.T + bias)[:, 0]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # sigmoid(-z) rather than 1 - sigmoid(z): keeps precision for confident rows
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))

"""One classifier per candidate kind, behind a single ``predict_proba``.

Axial pairs (a cell split between z layers, :mod:`sklearn_overseg.screening.axial`) and contact
pairs (a cell cut by a tilted surface, :mod:`sklearn_overseg.screening.contact`) look alike to the
feature transformers but not to a model: a re-sliced contact pair has no natural gap,
its negatives are every touching neighbour rather than stacked cells, and its positives
are far rarer. :class:`KindClassifier` routes each row of a candidate table to the model
of its ``kind``, so one :class:`~sklearn_overseg.correction.corrector.SegmentationCorrector` with a
:class:`~sklearn_overseg.screening.contact.CombinedScreener` judges both kinds::

    SegmentationCorrector(screener=CombinedScreener(), classifier=KindClassifier())
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._table_estimators import check_takes_table, fit_with_sample_weight

__all__ = ["KINDS", "KindClassifier"]

#: Candidate kinds a :class:`KindClassifier` routes, each the name of its parameter.
KINDS: tuple[str, ...] = ("axial", "contact", "lateral")


def _check_table(table, what: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{what} expects a candidate table (pandas DataFrame with a 'kind' column), "
            f"got {type(table).__name__}."
        )
    if "kind" not in table.columns:
        raise ValueError(
            f"{what}: the candidate table has no 'kind' column (columns: "
            f"{list(table.columns)[:8]}...); build it with a screener."
        )
    return table


class KindClassifier(ClassifierMixin, BaseEstimator):
    """Judge each candidate with the classifier of its kind (axial, contact or lateral).

    Parameters
    ----------
    axial : classifier or Pipeline, optional
        Judges rows with ``kind == "axial"``; any estimator taking the candidate table
        (e.g. :func:`~sklearn_overseg.classification.pipeline.make_default_pipeline`). ``None`` uses
        ``make_default_pipeline(random_state=random_state)``.
    contact : classifier or Pipeline, optional
        Judges rows with ``kind == "contact"``; ``None`` as for ``axial``.
    lateral : classifier or Pipeline, optional
        Judges rows with ``kind == "lateral"`` (pieces that share a layer, from
        :class:`~sklearn_overseg.screening.lateral.LateralScreener`); ``None`` uses
        :func:`~sklearn_overseg.classification.pipeline.make_lateral_pipeline`.
    random_state : int, RandomState or None
        Seed of the default pipelines built for ``None`` parts; estimators given
        explicitly keep their own. A ``RandomState`` is drawn from once per default
        part and fit.

    Attributes
    ----------
    estimators_ : dict of str to estimator
        Fitted clone per kind present in the training table.
    classes_ : ndarray
        Sorted class labels seen in :meth:`fit`; columns of :meth:`predict_proba`.

    Notes
    -----
    The input ``X`` is a candidate table (a DataFrame with a ``kind`` column and
    whatever columns the parts read), not a numeric array; the estimator tags say so
    (``input_tags.two_d_array`` is False).

    Nested parameters follow scikit-learn (``set_params(axial__clf__lr=1e-3)``, grid
    keys such as ``"contact__features__emd"``). When the part is ``None``,
    :meth:`set_params` first puts the default pipeline in its place so that its
    parameters can be set.

    Sample weights reach each part with its rows: with metadata routing enabled, through
    the parts' requests (the default parts request them); without, as the
    ``sample_weight`` of the part's ``fit`` (of its last step for a Pipeline).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_overseg.classification.dispatch import KindClassifier
    >>> table = pd.DataFrame(
    ...     {"kind": ["axial", "contact"] * 4, "overlap_px": [9, 1, 8, 2, 1, 9, 2, 8]}
    ... )
    >>> y = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    >>> judge = make_pipeline(
    ...     make_column_transformer(("passthrough", ["overlap_px"])), LogisticRegression()
    ... )
    >>> clf = KindClassifier(axial=judge, contact=judge).fit(table, y)
    >>> sorted(clf.estimators_)
    ['axial', 'contact']
    >>> clf.predict(table).tolist()
    [1, 0, 1, 0, 0, 1, 0, 1]
    """

    _parameter_constraints: ClassVar[dict] = {
        "axial": [None, HasMethods(["fit", "predict_proba"])],
        "contact": [None, HasMethods(["fit", "predict_proba"])],
        "lateral": [None, HasMethods(["fit", "predict_proba"])],
        "random_state": ["random_state"],
    }

    def __init__(self, *, axial=None, contact=None, lateral=None, random_state=None) -> None:
        self.axial = axial
        self.contact = contact
        self.lateral = lateral
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a candidate table (a DataFrame with a 'kind' column), not numbers.
        tags.input_tags.two_d_array = False
        return tags

    def _default(self, kind: str, random_state=None):
        from .pipeline import make_default_pipeline, make_lateral_pipeline

        if kind == "lateral":
            return make_lateral_pipeline(random_state=random_state)
        return make_default_pipeline(random_state=random_state)

    def set_params(self, **params):
        """Set parameters; ``axial__*``, ``contact__*``, ``lateral__*`` work when the part is None.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : KindClassifier
        """
        if "random_state" in params:
            # The default parts built below must see the new seed.
            super().set_params(random_state=params.pop("random_state"))
        for name in KINDS:
            nested = any(key.startswith(f"{name}__") for key in params)
            if nested and params.get(name, getattr(self, name)) is None:
                params = {**params, name: self._default(name, self.random_state)}
        return super().set_params(**params)

    def _template(self, kind: str, random_state=None):
        if kind not in KINDS:
            raise ValueError(
                f"unknown candidate kind {kind!r}: KindClassifier routes only {list(KINDS)}."
            )
        part = getattr(self, kind)
        if part is not None:
            return clone(part)
        return self._default(kind, self.random_state if random_state is None else random_state)

    def get_metadata_routing(self) -> MetadataRouter:
        """How :meth:`fit` routes metadata (``sample_weight``) to the parts.

        Returns
        -------
        routing : MetadataRouter
        """
        router = MetadataRouter(owner=self)
        for kind in KINDS:
            part = getattr(self, kind)
            router.add(
                **{kind: part if part is not None else self._default(kind)},
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
        return router

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: pd.DataFrame, y, sample_weight=None):
        """Fit one clone per kind present in ``X["kind"]``.

        Parameters
        ----------
        X : DataFrame
            Candidate table (one row per pair, with a ``kind`` column).
        y : array-like of shape (n_rows,)
            Labels (1 = one cell wrongly split, 0 = two cells), aligned with the rows.
        sample_weight : array-like of shape (n_rows,), default=None
            Row weights; each part gets those of its rows.

        Returns
        -------
        self : KindClassifier

        Raises
        ------
        ValueError
            If ``y`` and the table differ in length, the table is empty, a kind is not
            one of :data:`KINDS`, or a kind's rows hold a single class.
        TypeError
            If a part reads numeric arrays only (it would be given the table).
        """
        X = _check_table(X, "KindClassifier.fit")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(
                f"y must be 1D with one label per table row: table has {len(X)} rows, "
                f"y has shape {y.shape}."
            )
        if len(X) == 0:
            raise ValueError("KindClassifier.fit got an empty candidate table.")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, np.empty((len(X), 0)), ensure_non_negative=True
            )
        routing = get_config()["enable_metadata_routing"]
        if routing:
            metadata = {} if sample_weight is None else {"sample_weight": sample_weight}
            routed = process_routing(self, "fit", **metadata)
        kinds = X["kind"].to_numpy()
        present = list(dict.fromkeys(kinds.tolist()))
        # Check every kind before fitting any: a bad kind should not cost a long fit.
        rng = self.random_state
        if rng is not None and not isinstance(rng, Integral):
            rng = check_random_state(rng)
        templates = {}
        for kind in map(str, present):
            templates[kind] = self._template(kind, rng)
            check_takes_table(templates[kind], owner=f"KindClassifier.{kind}")
        for kind in templates:
            classes, counts = np.unique(y[kinds == kind], return_counts=True)
            if len(classes) < 2:
                raise ValueError(
                    f"the {kind!r} rows hold a single class ({classes[0]!r} x {counts[0]}): "
                    f"a {kind} classifier needs both kinds of pairs; give more volumes or "
                    "synthesise more flaws of that kind."
                )
        self.estimators_ = {}
        for kind, est in templates.items():
            rows = kinds == kind
            if routing:
                params = {
                    key: _safe_indexing(value, np.flatnonzero(rows))
                    for key, value in routed[kind].fit.items()
                }
                self.estimators_[kind] = est.fit(X[rows], y[rows], **params)
            else:
                weights = None if sample_weight is None else sample_weight[rows]
                self.estimators_[kind] = fit_with_sample_weight(
                    est, X[rows], y[rows], weights, owner=f"KindClassifier.{kind}"
                )
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, each row judged by the classifier of its kind.

        Parameters
        ----------
        X : DataFrame
            Candidate table with a ``kind`` column.

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes)
            In the table's row order; columns follow :attr:`classes_`.

        Raises
        ------
        ValueError
            If the table holds a kind no classifier was fitted for.
        """
        check_is_fitted(self, "estimators_")
        X = _check_table(X, "KindClassifier.predict_proba")
        kinds = X["kind"].to_numpy()
        unseen = sorted({str(k) for k in kinds} - set(self.estimators_))
        if unseen:
            raise ValueError(
                f"candidate kind(s) {unseen} were not in the training table; this "
                f"KindClassifier was fitted for {sorted(self.estimators_)}."
            )
        proba = np.zeros((len(X), len(self.classes_)))
        for kind, est in self.estimators_.items():
            rows = np.flatnonzero(kinds == kind)
            if len(rows) == 0:
                continue
            part = np.asarray(est.predict_proba(X.iloc[rows]))
            # A part's classes are a subset of classes_ (both sorted): place its columns.
            columns = np.searchsorted(self.classes_, est.classes_)
            proba[np.ix_(rows, columns)] = part
        return proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class of every row.

        Parameters
        ----------
        X : DataFrame
            Candidate table with a ``kind`` column.

        Returns
        -------
        labels : ndarray of shape (n_rows,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

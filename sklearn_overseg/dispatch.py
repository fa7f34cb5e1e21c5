"""One classifier per candidate kind, behind a single ``predict_proba``.

Axial pairs (a cell split between z layers, :mod:`sklearn_overseg.screening`) and contact
pairs (a cell cut by a tilted surface, :mod:`sklearn_overseg.contact`) look alike to the
feature transformers but not to a model: a re-sliced contact pair has no natural gap,
its negatives are every touching neighbour rather than stacked cells, and its positives
are far rarer. :class:`KindClassifier` routes each row of a candidate table to the model
of its ``kind``, so one :class:`~sklearn_overseg.corrector.SegmentationCorrector` with a
:class:`~sklearn_overseg.contact.CombinedScreener` judges both kinds::

    SegmentationCorrector(screener=CombinedScreener(), classifier=KindClassifier())
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

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
        (e.g. :func:`~sklearn_overseg.pipeline.make_default_pipeline`). ``None`` uses
        ``make_default_pipeline(random_state=random_state)``.
    contact : classifier or Pipeline, optional
        Judges rows with ``kind == "contact"``; ``None`` as for ``axial``.
    lateral : classifier or Pipeline, optional
        Judges rows with ``kind == "lateral"`` (pieces that share a layer, from
        :class:`~sklearn_overseg.lateral.LateralScreener`); ``None`` uses
        :func:`~sklearn_overseg.pipeline.make_lateral_pipeline`.
    random_state : int, RandomState or None
        Seed of the default pipelines built for ``None`` parts; estimators given
        explicitly keep their own.

    Attributes
    ----------
    estimators_ : dict of str to estimator
        Fitted clone per kind present in the training table.
    classes_ : ndarray
        Sorted class labels seen in :meth:`fit`; columns of :meth:`predict_proba`.

    Notes
    -----
    Nested parameters follow scikit-learn (``set_params(axial__clf__lr=1e-3)``, grid
    keys such as ``"contact__features__emd"``). When the part is ``None``,
    :meth:`set_params` first puts the default pipeline in its place so that its
    parameters can be set.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_overseg.pipeline import make_features
    >>> from sklearn.pipeline import make_pipeline
    >>> judge = make_pipeline(make_features(emd=False), LogisticRegression())
    >>> clf = KindClassifier(axial=judge, contact=judge)   # fitted per kind on a table
    """

    _parameter_constraints: ClassVar[dict] = {
        "axial": [None, object],
        "contact": [None, object],
        "lateral": [None, object],
        "random_state": ["random_state"],
    }

    def __init__(self, axial=None, contact=None, lateral=None, random_state=None) -> None:
        self.axial = axial
        self.contact = contact
        self.lateral = lateral
        self.random_state = random_state

    def _default(self, kind: str):
        from .pipeline import make_default_pipeline, make_lateral_pipeline

        seed = self.random_state
        if seed is not None and not isinstance(seed, (int, np.integer)):
            seed = None  # a RandomState instance cannot seed the torch MLP
        if kind == "lateral":
            return make_lateral_pipeline(random_state=seed)
        return make_default_pipeline(random_state=seed)

    def set_params(self, **params):
        """Set parameters; ``axial__*`` / ``contact__*`` work even when the part is None.

        Returns
        -------
        self
        """
        if "random_state" in params:
            # The default parts built below must see the new seed.
            super().set_params(random_state=params.pop("random_state"))
        for name in KINDS:
            nested = any(key.startswith(f"{name}__") for key in params)
            if nested and params.get(name, getattr(self, name)) is None:
                params = {**params, name: self._default(name)}
        return super().set_params(**params)

    def _template(self, kind: str):
        if kind not in KINDS:
            raise ValueError(
                f"unknown candidate kind {kind!r}: KindClassifier routes only {list(KINDS)}."
            )
        part = getattr(self, kind)
        return clone(part) if part is not None else self._default(kind)

    def fit(self, table: pd.DataFrame, y):
        """Fit one clone per kind present in ``table["kind"]``.

        Parameters
        ----------
        table : DataFrame
            Candidate table (one row per pair, with a ``kind`` column).
        y : array-like of shape (n_rows,)
            Labels (1 = one cell wrongly split, 0 = two cells), aligned with the rows.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``y`` and the table differ in length, the table is empty, a kind is not
            one of :data:`KINDS`, or a kind's rows hold a single class.
        """
        self._validate_params()
        table = _check_table(table, "KindClassifier.fit")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(table):
            raise ValueError(
                f"y must be 1D with one label per table row: table has {len(table)} rows, "
                f"y has shape {y.shape}."
            )
        if len(table) == 0:
            raise ValueError("KindClassifier.fit got an empty candidate table.")
        kinds = table["kind"].to_numpy()
        present = list(dict.fromkeys(kinds.tolist()))
        # Check every kind before fitting any: a bad kind should not cost a long fit.
        templates = {str(kind): self._template(str(kind)) for kind in present}
        for kind in templates:
            classes, counts = np.unique(y[kinds == kind], return_counts=True)
            if len(classes) < 2:
                raise ValueError(
                    f"the {kind!r} rows hold a single class ({classes[0]!r} x {counts[0]}): "
                    f"a {kind} classifier needs both kinds of pairs; give more volumes or "
                    "synthesise more flaws of that kind."
                )
        self.estimators_ = {
            kind: est.fit(table[kinds == kind], y[kinds == kind]) for kind, est in templates.items()
        }
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        """Class probabilities, each row judged by the classifier of its kind.

        Parameters
        ----------
        table : DataFrame
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
        table = _check_table(table, "KindClassifier.predict_proba")
        kinds = table["kind"].to_numpy()
        unseen = sorted({str(k) for k in kinds} - set(self.estimators_))
        if unseen:
            raise ValueError(
                f"candidate kind(s) {unseen} were not in the training table; this "
                f"KindClassifier was fitted for {sorted(self.estimators_)}."
            )
        proba = np.zeros((len(table), len(self.classes_)))
        for kind, est in self.estimators_.items():
            rows = np.flatnonzero(kinds == kind)
            if len(rows) == 0:
                continue
            part = np.asarray(est.predict_proba(table.iloc[rows]))
            # A part's classes are a subset of classes_ (both sorted): place its columns.
            columns = np.searchsorted(self.classes_, est.classes_)
            proba[np.ix_(rows, columns)] = part
        return proba

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Most probable class of every row.

        Parameters
        ----------
        table : DataFrame

        Returns
        -------
        labels : ndarray of shape (n_rows,)
        """
        return self.classes_[np.argmax(self.predict_proba(table), axis=1)]

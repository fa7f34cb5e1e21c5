"""How the meta-estimators hand a candidate table, and its weights, to their parts.

:class:`~sklearn_overseg.correction.corrector.SegmentationCorrector` and
:class:`~sklearn_overseg.classification.dispatch.KindClassifier` give their classifiers the
candidate table itself (one row per pair, its masks in a ``geometry`` column), not numbers. This
module says whether a classifier can take it, fits one with row weights when metadata routing is
off, and makes the default pipelines request those weights when it is on.
"""

from __future__ import annotations

import inspect
from typing import Any

from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags

__all__ = ["check_takes_table", "fit_with_sample_weight", "request_sample_weight"]

_DROPPED = (None, "drop", "passthrough")
# Estimators of these packages validate their input as numbers unless they are one of
# the table-reading compositions below; estimators of other packages are trusted.
_KNOWN_PACKAGES = ("sklearn", "sklearn_overseg")
_TABLE_READERS = (ColumnTransformer, FunctionTransformer)


def _first_readers(estimator: Any) -> list:
    """The estimators that see the table first, looking through compositions."""
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if not _is_dropped(step)]
        return _first_readers(steps[0]) if steps else []
    if isinstance(estimator, FeatureUnion):
        return [r for _, t in estimator.transformer_list for r in _first_readers(t)]
    if not isinstance(estimator, BaseEstimator):
        return [estimator]
    params = estimator.get_params(deep=False)
    if isinstance(params.get("estimator"), BaseEstimator):  # GridSearchCV, Calibrated...
        return _first_readers(params["estimator"])
    members = params.get("estimators")
    if isinstance(members, list) and all(isinstance(m, tuple) for m in members):
        return [r for _, m in members if not _is_dropped(m) for r in _first_readers(m)]
    return [estimator]


def _is_dropped(step: Any) -> bool:
    return isinstance(step, str | type(None)) and step in _DROPPED


def _reads_numbers_only(estimator: Any) -> bool:
    if not isinstance(estimator, BaseEstimator) or isinstance(estimator, _TABLE_READERS):
        return False
    if type(estimator).__module__.split(".")[0] not in _KNOWN_PACKAGES:
        return False
    return bool(get_tags(estimator).input_tags.two_d_array)


def check_takes_table(estimator: Any, *, owner: str) -> None:
    """Refuse a classifier that would get the candidate table but reads numbers only.

    Parameters
    ----------
    estimator : estimator
        The classifier (or pipeline) that will be fitted on the candidate table.
    owner : str
        How error messages name the parameter, e.g. ``"SegmentationCorrector.classifier"``.

    Raises
    ------
    TypeError
        If the first estimator to see the table is a scikit-learn (or this package's)
        estimator of 2D numeric arrays, e.g. a bare ``HistGradientBoostingClassifier``.
    """
    bad = [est for est in _first_readers(estimator) if _reads_numbers_only(est)]
    if bad:
        name = type(bad[0]).__name__
        raise TypeError(
            f"{owner} is given the candidate table (one row per candidate pair, its masks "
            f"in a 'geometry' column), but {name} reads a numeric 2D array only. Put the "
            "feature transformers in front of it: wrap it with "
            f"make_default_pipeline(classifier={name}(...)) from "
            "sklearn_overseg.classification.pipeline."
        )


def _takes_sample_weight(estimator: Any) -> bool:
    parameters = inspect.signature(estimator.fit).parameters
    return "sample_weight" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def fit_with_sample_weight(estimator: Any, X: Any, y: Any, sample_weight: Any, *, owner: str):
    """``estimator.fit(X, y)`` with row weights, metadata routing being off.

    Without routing, a :class:`~sklearn.pipeline.Pipeline` takes weights only as
    ``<last step>__sample_weight``; the weights go there, which is what the feature
    pipelines of this package need (their feature steps are unweighted).

    Parameters
    ----------
    estimator : estimator
    X, y
        Training table and labels.
    sample_weight : array-like of shape (n_rows,) or None
    owner : str
        Named in the error when the estimator cannot take weights.

    Returns
    -------
    estimator
        Fitted.
    """
    if sample_weight is None:
        return estimator.fit(X, y)
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        if _is_dropped(last) or not _takes_sample_weight(last):
            raise TypeError(
                f"{owner} got sample_weight, but the last step {name!r} of its pipeline "
                "takes no sample_weight in fit."
            )
        return estimator.fit(X, y, **{f"{name}__sample_weight": sample_weight})
    if not _takes_sample_weight(estimator):
        raise TypeError(
            f"{owner} got sample_weight, but {type(estimator).__name__}.fit takes no sample_weight."
        )
    return estimator.fit(X, y, sample_weight=sample_weight)


def request_sample_weight(estimator: Any):
    """Make a default pipeline's classifier request ``sample_weight`` (routing on only).

    The default parts are built inside the meta-estimators, where a user cannot set
    their requests; with metadata routing enabled the classifier asks for the weights
    and the steps before it that could take them decline them.

    Parameters
    ----------
    estimator : Pipeline
        As made by :func:`~sklearn_overseg.classification.pipeline.make_default_pipeline` or
        :func:`~sklearn_overseg.classification.pipeline.make_lateral_pipeline`.

    Returns
    -------
    estimator
        The same object.
    """
    if not get_config()["enable_metadata_routing"] or not isinstance(estimator, Pipeline):
        return estimator
    for _, step in estimator.steps[:-1]:
        # Feature steps stay unweighted, as fit_with_sample_weight leaves them; a step
        # that could take weights (a StandardScaler) must say so, or routing refuses.
        if not _is_dropped(step) and hasattr(step, "set_fit_request"):
            step.set_fit_request(sample_weight=False)
    clf = estimator.steps[-1][1]
    members = [m for _, m in clf.estimators] if isinstance(clf, VotingClassifier) else [clf]
    for member in members:
        if hasattr(member, "set_fit_request"):
            member.set_fit_request(sample_weight=True)
    return estimator

"""The default candidate classifier: features of the table, then a model.

The features are a :class:`~sklearn.compose.ColumnTransformer` over the candidate table,
so each block is a named step that a grid search can replace or ``"drop"``::

    GridSearchCV(make_default_pipeline(), {"features__emd": ["drop", GeoWassersteinFeatures()]})

Blocks beyond the paper: ``context`` (:mod:`sklearn_overseg.features.context`: is the merged pair
truncated, and as tall as one cell or two?) and ``meta``, which passes the screener's gap
length through; both can be dropped to recover the paper's feature set. ``interface``
(:mod:`sklearn_overseg.features.interface`: how much the facing masks overlap) is ``"drop"``
unless asked for (``make_features(interface=True)`` or ``set_params``).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import Pipeline

from ..features.context import CONTEXT_COLUMNS, CellContextFeatures
from ..features.geo_wasserstein import GeoWassersteinFeatures
from ..features.interface import InterfaceFeatures
from ..features.overlap_topology import OverlapTopologyFeatures
from ._table_estimators import request_sample_weight
from .classifier import OversegMLPClassifier

__all__ = ["make_default_pipeline", "make_features", "make_lateral_pipeline"]

_SEED_MAX = np.iinfo(np.int32).max


def make_features(
    *,
    statistics="paper",
    normalize: bool = False,
    emd: bool = True,
    topology: bool = True,
    context: bool = True,
    interface: bool = False,
    n_jobs: int | None = None,
    random_state=None,
) -> ColumnTransformer:
    """The feature block: Geo-Wasserstein, overlap topology, context, interface, gap length.

    Parameters
    ----------
    statistics : str or sequence of float, default="paper"
        Summary statistics of the within-cell EMDs (see
        :class:`~sklearn_overseg.features.geo_wasserstein.GeoWassersteinFeatures`).
    normalize : bool, default=False
        Divide distances by the pair's equivalent radius.
    emd, topology, context : bool, default=True
        Include each block (Geo-Wasserstein, overlap topology, cell context); a dropped
        block is ``"drop"`` so ``set_params`` can bring it back.
    interface : bool, default=False
        Include the interface-overlap block (:class:`~sklearn_overseg.InterfaceFeatures`).
        Off by default: the shipped model does not use it (with it, stitched volumes
        got fewer false joins but the paper's flaw at z/4 a lower F1; see
        ``docs/model_card.md``).
    n_jobs : int, optional
    random_state : int, RandomState or None

    Returns
    -------
    features : ColumnTransformer
        Pandas output, index kept.
    """
    emd_step = (
        GeoWassersteinFeatures(
            statistics=statistics, normalize=normalize, n_jobs=n_jobs, random_state=random_state
        )
        if emd
        else "drop"
    )
    topo_step = OverlapTopologyFeatures() if topology else "drop"
    context_step = CellContextFeatures() if context else "drop"
    interface_step = InterfaceFeatures() if interface else "drop"
    features = ColumnTransformer(
        [
            ("emd", emd_step, ["geometry"]),
            ("topo", topo_step, ["geometry"]),
            ("context", context_step, ["geometry", *CONTEXT_COLUMNS]),
            ("interface", interface_step, ["geometry"]),
            ("meta", "passthrough", ["gap"]),
        ],
        verbose_feature_names_out=False,
    )
    return features.set_output(transform="pandas")


def _default_classifier(n_ensemble: int, random_state):
    if isinstance(n_ensemble, bool) or not isinstance(n_ensemble, Integral) or n_ensemble < 1:
        raise ValueError(f"n_ensemble must be a positive integer, got {n_ensemble!r}.")
    n_ensemble = int(n_ensemble)
    if n_ensemble == 1:
        return OversegMLPClassifier(random_state=random_state)
    # No seed asked for: every member draws fresh randomness.
    seeds = [None if random_state is None else random_state + i for i in range(n_ensemble)]
    members = [(f"mlp{i}", OversegMLPClassifier(random_state=s)) for i, s in enumerate(seeds)]
    return VotingClassifier(members, voting="soft")


def _check_random_state_param(random_state):
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, Integral):
        raise TypeError(
            f"random_state must be None, an int or a numpy RandomState, got {random_state!r}."
        )
    return int(random_state)


def make_default_pipeline(
    classifier=None,
    *,
    statistics="paper",
    normalize: bool = False,
    n_ensemble: int = 1,
    n_jobs: int | None = None,
    random_state=None,
) -> Pipeline:
    """Features of the candidate table followed by a classifier.

    Parameters
    ----------
    classifier : classifier, optional
        Any scikit-learn classifier with ``predict_proba``; defaults to the paper's MLP
        (:class:`~sklearn_overseg.classification.classifier.OversegMLPClassifier`).
    n_ensemble : int, default=1
        With the default classifier, average the probabilities of this many MLPs
        trained from different seeds (soft :class:`~sklearn.ensemble.VotingClassifier`).
        Measured on held-out plant tissue at 4:1:1, single MLPs reached pair F1 0.957 and
        0.970 depending on the seed; five averaged reached 0.978.
    random_state : int, RandomState instance or None, default=None
        Seeds the features and the default classifier. An int ``s`` gives the MLPs of
        an ensemble the seeds ``s, s + 1, ...``; a ``RandomState`` is drawn from once,
        here, for such an int, so two pipelines made from equally seeded
        ``RandomState`` objects fit identically; None leaves every part unseeded
        (fresh randomness in each fit).
    statistics, normalize, n_jobs
        Passed to :func:`make_features`.

    Returns
    -------
    pipeline : Pipeline
        Steps ``features`` and ``clf``.

    Notes
    -----
    With metadata routing enabled (``sklearn.set_config(enable_metadata_routing=True)``),
    the default classifier requests ``sample_weight`` in ``fit``, so that
    ``pipeline.fit(table, y, sample_weight=w)`` (and the meta-estimators building this
    pipeline for you) weigh the rows. A ``classifier`` you give keeps its own requests.
    Without routing, pass ``clf__sample_weight=w``.
    """
    random_state = _check_random_state_param(random_state)
    if isinstance(random_state, np.random.RandomState):
        # An integer seed fixed now: a RandomState held by the parts would be consumed
        # by every call, so features computed in fit and in predict would differ.
        random_state = int(random_state.randint(_SEED_MAX))
    given = classifier is not None
    if not given:
        classifier = _default_classifier(n_ensemble, random_state)
    pipeline = Pipeline(
        [
            (
                "features",
                make_features(
                    statistics=statistics,
                    normalize=normalize,
                    n_jobs=n_jobs,
                    random_state=random_state,
                ),
            ),
            ("clf", classifier),
        ]
    )
    return pipeline if given else request_sample_weight(pipeline)


def make_lateral_pipeline(
    classifier=None, *, context: bool = False, n_ensemble: int = 1, random_state=None
) -> Pipeline:
    """Features of lateral candidates (pieces sharing a layer) followed by a classifier.

    Parameters
    ----------
    classifier : classifier, optional
        Any scikit-learn classifier with ``predict_proba``. Defaults to the paper's MLP
        on standardised features (the lateral features mix fractions with layer counts).
        On stitched training volumes (GroupKFold over volumes) it reached ROC AUC 0.983,
        as gradient boosting did (0.984), and unlike boosting it is saved without pickle.
    context : bool, default=False
        Also compute :class:`~sklearn_overseg.features.context.CellContextFeatures`
        (size and truncation of the pair relative to the volume's typical cell): the
        ``features`` step becomes a :class:`~sklearn.pipeline.FeatureUnion` of
        ``lateral`` and ``context``.
    n_ensemble : int, default=1
        With the default classifier, average this many MLPs from different seeds.
    random_state : int, RandomState instance or None, default=None
        Seed of the default classifier, as in :func:`make_default_pipeline`: an int
        ``s`` gives the MLPs of an ensemble the seeds ``s, s + 1, ...``; a
        ``RandomState`` is drawn from once, here, for such an int; None leaves the
        MLPs unseeded.

    Returns
    -------
    pipeline : Pipeline
        Steps ``features`` (:class:`~sklearn_overseg.features.lateral.LateralFeatures`,
        or a union with the context features), ``scale`` (only with the default
        classifier) and ``clf``.

    Notes
    -----
    With metadata routing enabled, the default classifier requests ``sample_weight``
    in ``fit`` (the scaler does not: feature steps are unweighted, as without
    routing); a ``classifier`` you give keeps its own requests. Without routing, pass
    ``clf__sample_weight=w``.

    Examples
    --------
    >>> from sklearn_overseg.classification.pipeline import make_lateral_pipeline
    >>> [name for name, _ in make_lateral_pipeline().steps]
    ['features', 'scale', 'clf']
    """
    from sklearn.preprocessing import StandardScaler

    from ..features.lateral import LateralFeatures

    random_state = _check_random_state_param(random_state)
    features = LateralFeatures()
    if context:
        from sklearn.pipeline import FeatureUnion

        from ..features.context import CellContextFeatures

        # n_jobs=1: both blocks are cheap, and under parallel_config(n_jobs=k) a default
        # union would send the whole table, masks included, to worker processes (measured
        # on benchmarks/paper_medium.py: +1 GB peak RSS, +10 % time).
        features = FeatureUnion(
            [("lateral", LateralFeatures()), ("context", CellContextFeatures())], n_jobs=1
        )
    if classifier is not None:
        return Pipeline([("features", features), ("clf", classifier)])
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(_SEED_MAX))
    pipeline = Pipeline(
        [
            ("features", features),
            ("scale", StandardScaler()),
            ("clf", _default_classifier(n_ensemble, random_state)),
        ]
    )
    return request_sample_weight(pipeline)

"""The default candidate classifier: features of the table, then a model.

The features are a :class:`~sklearn.compose.ColumnTransformer` over the candidate table,
so each block is a named step that a grid search can replace or ``"drop"``::

    GridSearchCV(make_default_pipeline(), {"features__emd": ["drop", GeoWassersteinFeatures()]})

Two blocks go beyond the paper: ``context`` (:mod:`sklearn_overseg.context`: is the merged
pair truncated, and as tall as one cell or two?) and ``meta``, which passes the screener's
gap length through. Both can be dropped to recover the paper's feature set.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from .classifier import OversegMLPClassifier
from .context import CONTEXT_COLUMNS, CellContextFeatures
from .features import GeoWassersteinFeatures, OverlapTopologyFeatures

__all__ = ["make_default_pipeline", "make_features"]


def make_features(
    *,
    statistics="paper",
    normalize: bool = False,
    emd: bool = True,
    topology: bool = True,
    context: bool = True,
    n_jobs: int | None = None,
    random_state=None,
) -> ColumnTransformer:
    """The feature block: Geo-Wasserstein, overlap topology and the gap length.

    Parameters
    ----------
    statistics : str or sequence of float, default="paper"
        Summary statistics of the within-cell EMDs (see
        :class:`~sklearn_overseg.features.GeoWassersteinFeatures`).
    normalize : bool, default=False
        Divide distances by the pair's equivalent radius.
    emd, topology, context : bool, default=True
        Include each block (Geo-Wasserstein, overlap topology, cell context); a dropped
        block is ``"drop"`` so ``set_params`` can bring it back.
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
    features = ColumnTransformer(
        [
            ("emd", emd_step, ["geometry"]),
            ("topo", topo_step, ["geometry"]),
            ("context", context_step, ["geometry", *CONTEXT_COLUMNS]),
            ("meta", "passthrough", ["gap"]),
        ],
        verbose_feature_names_out=False,
    )
    return features.set_output(transform="pandas")


def make_default_pipeline(
    classifier=None,
    *,
    statistics="paper",
    normalize: bool = False,
    n_jobs: int | None = None,
    random_state=None,
) -> Pipeline:
    """Features of the candidate table followed by a classifier.

    Parameters
    ----------
    classifier : classifier, optional
        Any scikit-learn classifier with ``predict_proba``; defaults to the paper's MLP
        (:class:`~sklearn_overseg.classifier.OversegMLPClassifier`).
    statistics, normalize, n_jobs, random_state
        Passed to :func:`make_features`.

    Returns
    -------
    pipeline : Pipeline
        Steps ``features`` and ``clf``.
    """
    if classifier is None:
        classifier = OversegMLPClassifier(random_state=random_state)
    return Pipeline(
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

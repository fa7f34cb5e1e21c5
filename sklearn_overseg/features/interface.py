"""Interface features: how much the two facing masks of a candidate pair overlap.

A's last mask and B's first are consecutive cross-sections of one cell when the pair is
one cell; when IoU stitching failed to link them it is usually because their IoU fell
just short of the linking threshold, while the facing masks of two stacked cells (a cell
ending on the dome of the next) overlap little of either. The paper's features see this
only through shapes (the EMD across the gap) and the overlap curve's fit; these give the
overlap itself, relative to each mask. They matter most for pieces one layer tall
(a lost tip or a mask that lost its link), which have no curve to fit.

This block is an addition to the paper and opt-in: ``make_features(interface=True)``, or
``features__interface`` set to an ``InterfaceFeatures()`` in a grid search. Retraining the
shipped recipe with it gave fewer false joins on stitched volumes but a lower pair F1 on
the paper's flaw at z/4 (``docs/model_card.md``), so the shipped model goes without.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from ._common import _check_input_features, _facing_layers, _geometries, _table_tags

__all__ = ["InterfaceFeatures"]

_NAMES = ("iface_cover_a", "iface_cover_b", "iface_iou", "iface_area_ratio")


class InterfaceFeatures(TransformerMixin, BaseEstimator):
    """Overlap of the facing masks (A's last non-empty layer, B's first) of each pair.

    Reads the ``geometry`` column of the candidate table. Output columns:
    ``iface_cover_a`` (overlap / area of A's facing mask), ``iface_cover_b`` (overlap /
    area of B's), ``iface_iou`` (overlap / union) and ``iface_area_ratio`` (smaller /
    larger facing area), all in [0, 1] and defined for pieces one layer tall.

    ``X`` is a candidate table, not a numeric array (the estimator tags say
    ``two_d_array=False``). Nothing is learned but the table's columns.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the table seen in :meth:`fit`.
    feature_names_in_ : ndarray of str
        Column names of the table seen in :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import AxialGapScreener, InterfaceFeatures
    >>> vol = np.zeros((5, 8, 8), dtype=np.uint16)
    >>> vol[:2, 2:6, 2:6] = 1     # A's last mask: 16 px
    >>> vol[3:, 2:6, 3:7] = 2     # B's first: 16 px, shifted by a column (12 px shared)
    >>> table = AxialGapScreener().screen(vol)
    >>> InterfaceFeatures().set_output(transform="pandas").fit_transform(table).round(3)
                 iface_cover_a  iface_cover_b  iface_iou  iface_area_ratio
    candidate
    0:1-2:axial           0.75           0.75        0.6               1.0
    """

    _parameter_constraints: ClassVar[dict] = {}

    def __sklearn_tags__(self):
        return _table_tags(super().__sklearn_tags__())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: pd.DataFrame, y: Any = None) -> InterfaceFeatures:
        """Check the table; nothing is learned.

        Parameters
        ----------
        X : DataFrame
            Candidate table.
        y : ignored

        Returns
        -------
        self
        """
        _geometries(X, type(self).__name__)
        validate_data(self, X, skip_check_array=True, reset=True)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Compute the interface features of every row.

        Parameters
        ----------
        X : DataFrame
            Candidate table.

        Returns
        -------
        features : ndarray of shape (n_rows, 4)
        """
        check_is_fitted(self)
        geoms = _geometries(X, type(self).__name__)
        validate_data(self, X, skip_check_array=True, reset=False)
        out = np.empty((len(geoms), len(_NAMES)), dtype=float)
        for i, (row_id, geom) in enumerate(zip(X.index, geoms, strict=True)):
            keep_a, keep_b = _facing_layers(geom, row_id, type(self).__name__)
            mask_a, mask_b = geom.a[keep_a[-1]], geom.b[keep_b[0]]
            area_a, area_b = np.count_nonzero(mask_a), np.count_nonzero(mask_b)
            shared = np.count_nonzero(mask_a & mask_b)
            out[i] = (
                shared / area_a,
                shared / area_b,
                shared / (area_a + area_b - shared),
                min(area_a, area_b) / max(area_a, area_b),
            )
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str, optional
            Must equal ``feature_names_in_`` when given.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self)
        _check_input_features(self, input_features)
        return np.asarray(_NAMES, dtype=object)

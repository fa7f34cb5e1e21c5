"""Topology features of a candidate table (Algorithm 3 of the paper).

:class:`OverlapTopologyFeatures` reads only the ``geometry`` column of the table (one
:class:`~sklearn_overseg.screening.candidates.PairGeometry` per row), like
:class:`~sklearn_overseg.features.geo_wasserstein.GeoWassersteinFeatures`.

Plain R² of a quadratic fit is never below the linear one (nested models), which would
make the paper's ``argmax`` class constant. Both fits are therefore scored with the
**adjusted** R², which penalises the extra coefficient; a perfect fit still scores 1.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ..screening.candidates import PairGeometry
from ._common import _check_input_features, _facing_layers, _geometries, _nonempty, _table_tags

__all__ = ["OverlapTopologyFeatures"]


# Smallest per-class standard deviation of R² used for z-scoring (R² lives in [~-1, 1]).
_STD_FLOOR = 1e-2


def _adjusted_r2(y: np.ndarray, degree: int) -> float:
    """Adjusted R² of a least-squares polynomial fit of ``y`` against its index.

    A constant curve is fitted perfectly and scores 1. Returns NaN when the fit has no
    residual degree of freedom (the caller decides what that means).
    """
    n = y.size
    dof = n - degree - 1
    if dof <= 0:
        return float("nan")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot <= 1e-12 * max(float(np.sum(y**2)), 1.0):
        return 1.0
    # Index rescaled to [-1, 1] keeps the Vandermonde matrix well conditioned.
    x = np.linspace(-1.0, 1.0, n)
    coef = np.polynomial.polynomial.polyfit(x, y, degree)
    resid = y - np.polynomial.polynomial.polyval(x, coef)
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot
    return 1.0 - (1.0 - r2) * (n - 1) / dof


def _is_unimodal(y: np.ndarray) -> bool:
    """Non-decreasing, non-increasing, or non-decreasing then non-increasing."""
    steps = np.sign(np.diff(y))
    steps = steps[steps != 0]
    return not bool(np.any((steps[:-1] < 0) & (steps[1:] > 0)))


def _curve_features(overlaps: np.ndarray, min_points: int) -> tuple[float, float, float, int, int]:
    """``(r2_linear, r2_quadratic, r2, class, monotonic)`` of an overlap curve."""
    y = np.asarray(overlaps, dtype=float)
    if y.size < min_points:
        # Too short to judge a trend: call it a clean, linear, monotone curve.
        return 1.0, 1.0, 1.0, 0, 1
    r2_lin = _adjusted_r2(y, 1)
    r2_quad = _adjusted_r2(y, 2)
    if np.isnan(r2_quad):
        # Three points fix a parabola exactly: no evidence for curvature.
        r2_quad = r2_lin
    cls = int(r2_quad > r2_lin)
    monotonic = int(_is_unimodal(y))
    r2 = 1.0 if monotonic else max(r2_lin, r2_quad)
    return r2_lin, r2_quad, r2, cls, monotonic


def _topology_row(geom: PairGeometry, row_id: Any, min_points: int) -> np.ndarray:
    """``[r2_linear, r2_quadratic, r2, class, monotonic, gap_overlap_frac, gap_area_ratio]``."""
    keep_a, keep_b = _facing_layers(geom, row_id, "OverlapTopologyFeatures")
    stack = geom.layers()
    stack = stack[_nonempty(stack)]
    overlaps = np.count_nonzero(stack[:-1] & stack[1:], axis=(1, 2))
    a_last, b_first = geom.a[keep_a[-1]], geom.b[keep_b[0]]
    area_a, area_b = np.count_nonzero(a_last), np.count_nonzero(b_first)
    inter = np.count_nonzero(a_last & b_first)
    small, large = min(area_a, area_b), max(area_a, area_b)
    return np.asarray(
        [*_curve_features(overlaps, min_points), inter / small, small / large], dtype=float
    )


class OverlapTopologyFeatures(TransformerMixin, BaseEstimator):
    """Topological shape of a candidate pair seen as one cell (Algorithm 3 of the paper).

    The layers of A then B with the gap removed (``geometry.layers()``, empty layers
    skipped) give an overlap curve: the pixel count shared by each pair of consecutive
    layers. Linear and quadratic least-squares fits of that curve are scored with the
    adjusted R²; the class is the better fit (0 = linear, 1 = quadratic, ties linear), and
    a monotone or unimodal curve (rise then fall) scores ``R² = 1`` as in the paper. The
    per-class normalisation of ``R²`` is learned in :meth:`fit`.

    Parameters
    ----------
    normalize : bool, default=True
        Output ``topo_r2_normalized``: ``R²`` z-scored with the mean and standard deviation
        of the training rows of the same class (standard deviation floored at 0.01; a
        class unseen in fit uses the statistics of all training rows).
    min_points : int, default=3
        Overlap curves shorter than this (at least 3) are not fitted: they get
        ``R²_linear = R²_quadratic = R² = 1``, class 0 and ``monotonic = 1``.

    Attributes
    ----------
    class_mean_ : ndarray of shape (2,)
        Mean ``R²`` of the training rows of class 0 (linear) and 1 (quadratic); NaN for
        a class absent from the training table.
    class_std_ : ndarray of shape (2,)
        Their standard deviation (before flooring); NaN for an absent class.
    class_count_ : ndarray of shape (2,)
        Training rows per class.
    global_mean_, global_std_ : float
        Statistics of all training rows, used for a class unseen in fit.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Notes
    -----
    Adjusted rather than plain R²: the quadratic model contains the linear one, so its
    plain R² is never lower and the paper's ``argmax`` would always pick it. With three
    points the parabola interpolates exactly, so the quadratic score is set to the linear
    one. A constant curve scores 1.

    Output columns: ``topo_r2_linear``, ``topo_r2_quadratic``, ``topo_r2``,
    ``topo_class``, ``topo_monotonic``, ``topo_r2_normalized`` (only when ``normalize``),
    ``gap_overlap_frac`` (shared pixels of A's last and B's first non-empty layer over the
    smaller area) and ``gap_area_ratio`` (smaller over larger of those two areas).

    ``X`` is a candidate table, not a numeric array (the estimator tags say
    ``two_d_array=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import AxialGapScreener, OverlapTopologyFeatures
    >>> vol = np.zeros((7, 8, 8), dtype=np.uint16)
    >>> vol[1:3, 2:6, 2:6] = 1
    >>> vol[0, 3:5, 3:5] = 1      # a tapered top
    >>> vol[4:, 3:7, 2:6] = 2     # shifted by one row, after a blank layer
    >>> table = AxialGapScreener().screen(vol)
    >>> topo = OverlapTopologyFeatures().set_output(transform="pandas").fit_transform(table)
    >>> topo[["topo_r2", "topo_class", "topo_monotonic", "gap_overlap_frac"]].round(3)
                 topo_r2  topo_class  topo_monotonic  gap_overlap_frac
    candidate
    0:1-2:axial    0.395         1.0             0.0              0.75
    """

    _parameter_constraints: ClassVar[dict] = {
        "normalize": ["boolean"],
        "min_points": [Interval(Integral, 3, None, closed="left")],
    }

    def __init__(self, *, normalize: bool = True, min_points: int = 3) -> None:
        self.normalize = normalize
        self.min_points = min_points

    def __sklearn_tags__(self):
        return _table_tags(super().__sklearn_tags__())

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        geoms = _geometries(X, type(self).__name__)
        if not geoms:
            return np.empty((0, 7), dtype=float)
        return np.vstack(
            [
                _topology_row(geom, row_id, int(self.min_points))
                for geom, row_id in zip(geoms, X.index, strict=True)
            ]
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: pd.DataFrame, y: Any = None) -> OverlapTopologyFeatures:
        """Learn the per-class mean and standard deviation of ``R²``.

        Parameters
        ----------
        X : DataFrame
            Candidate table with a ``geometry`` column of PairGeometry, at least one row.
        y : ignored

        Returns
        -------
        self : OverlapTopologyFeatures
        """
        raw = self._raw(X)
        if raw.shape[0] == 0:
            raise ValueError(
                "OverlapTopologyFeatures.fit needs at least one row to learn the "
                "normalisation; got an empty table."
            )
        validate_data(self, X, skip_check_array=True, reset=True)
        r2, cls = raw[:, 2], raw[:, 3].astype(int)
        self.class_count_ = np.array([np.sum(cls == c) for c in (0, 1)])
        self.class_mean_ = np.array(
            [r2[cls == c].mean() if n else np.nan for c, n in enumerate(self.class_count_)]
        )
        self.class_std_ = np.array(
            [r2[cls == c].std() if n else np.nan for c, n in enumerate(self.class_count_)]
        )
        self.global_mean_ = float(r2.mean())
        self.global_std_ = float(r2.std())
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Compute the topology features of every row.

        Parameters
        ----------
        X : DataFrame
            Candidate table with a ``geometry`` column of PairGeometry.

        Returns
        -------
        features : ndarray of shape (n_rows, n_features_out)
            A DataFrame indexed like ``X`` under ``set_output(transform="pandas")``.
        """
        check_is_fitted(self, "class_mean_")
        # Parameters may have been set since fit.
        self._validate_params()
        raw = self._raw(X)
        validate_data(self, X, skip_check_array=True, reset=False)
        if not self.normalize:
            return raw
        cls = raw[:, 3].astype(int)
        seen = self.class_count_[cls] > 0
        mean = np.where(seen, self.class_mean_[cls], self.global_mean_)
        std = np.where(seen, self.class_std_[cls], self.global_std_)
        z = (raw[:, 2] - mean) / np.maximum(std, _STD_FLOOR)
        return np.column_stack([raw[:, :5], z, raw[:, 5:]])

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
        check_is_fitted(self, "class_mean_")
        _check_input_features(self, input_features)
        names = ["topo_r2_linear", "topo_r2_quadratic", "topo_r2", "topo_class", "topo_monotonic"]
        if self.normalize:
            names.append("topo_r2_normalized")
        names += ["gap_overlap_frac", "gap_area_ratio"]
        return np.asarray(names, dtype=object)

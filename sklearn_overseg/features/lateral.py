"""Features of ``kind="lateral"`` pairs: pieces of one cell that share a layer.

The candidates come from :class:`~sklearn_overseg.screening.lateral.LateralScreener`
(see there why per-slice segmentation makes them). :class:`LateralFeatures` asks of each
shared layer whether the union of the two pieces continues the cross-sections above and
below better than either piece alone does (IoU gains), how the areas compare, and how
convex the union is: a cell's cross-section is nearly convex, the union of two
neighbouring cells is not.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import effective_n_jobs
from ..screening.candidates import PairGeometry
from ._common import _table_tags

__all__ = ["LateralFeatures"]


#: Names of the columns :class:`LateralFeatures` produces.
LATERAL_FEATURES: tuple[str, ...] = (
    "lat_area_ratio",
    "lat_contact_ratio",
    "lat_solidity_union",
    "lat_solidity_gain",
    "lat_iou_gain_above",
    "lat_iou_gain_below",
    "lat_iou_union_above",
    "lat_iou_union_below",
    "lat_area_union_above",
    "lat_area_union_below",
    "lat_cover_small",
    "lat_cover_large",
    "lat_foreign_small",
    "lat_foreign_large",
    "lat_has_above",
    "lat_has_below",
    "lat_layers_a",
    "lat_layers_b",
    "lat_shared_layers",
)


def _iou(p: np.ndarray, q: np.ndarray) -> float:
    union = np.count_nonzero(p | q)
    return float(np.count_nonzero(p & q)) / union if union else 0.0


def _hull_pixel_counts(masks: np.ndarray) -> np.ndarray:
    """Pixels of each mask's convex hull image, as ``skimage.morphology.convex_hull_image``.

    Exactly ``np.count_nonzero(convex_hull_image(mask))`` with its defaults (the hull of
    the pixels' edge midpoints, border pixels included) for each mask of the stack, at a
    fraction of the cost: the solidity features of the shipped model were trained on
    skimage's counts, and that call dominated the lateral features' time.

    Parameters
    ----------
    masks : ndarray of bool, shape (k, Y, X)
        Masks on one frame.

    Returns
    -------
    counts : ndarray of int64, shape (k,)
        0 for an empty mask.

    Notes
    -----
    skimage takes the convex hull of the points ``(r +- 1/2, c)`` and ``(r, c +- 1/2)`` of
    every mask pixel and marks the grid points in that closed polygon. Here, in doubled
    coordinates (all integers, so every test below is exact), level ``Y = 2r + 1`` is the
    centre of row ``r`` and ``2r``, ``2r + 2`` its top and bottom edge. Per level only the
    extreme points matter: the polygon's right boundary is the least concave majorant of
    the rightmost ``X`` per level, its left boundary the mirror image. The majorants are
    found for all masks and both sides at once by dropping every point on or below the
    chord of its neighbours until none is; each row's hull pixels are then the integers
    between the boundaries at the row's centre.
    """
    masks = np.asarray(masks, dtype=bool)
    k, h, w = masks.shape
    filled = masks.any(axis=2)
    left = np.argmax(masks, axis=2).astype(np.int64)
    right = w - 1 - np.argmax(masks[:, :, ::-1], axis=2).astype(np.int64)
    # Chains 0..k-1: rightmost 2X per level; chains k..2k-1: minus the leftmost 2X, so
    # that both boundaries are majorants. ``none`` marks levels without mask pixels.
    none = np.int64(-4 * w - 8)
    n_levels = 2 * h + 1
    chains = np.full((2 * k, n_levels), none, dtype=np.int64)
    side = (np.where(filled, 2 * right, none), np.where(filled, -2 * left, none))
    for chain, edge in zip((chains[:k], chains[k:]), side, strict=True):
        chain[:, 1::2] = np.where(filled, edge + 1, none)  # the row's left/right corner
        chain[:, 0:-1:2] = edge  # top corners of the row's extreme pixel
        chain[:, 2::2] = np.maximum(chain[:, 2::2], edge)  # and its bottom corners
    chain, y = np.nonzero(chains != none)
    if len(y) == 0:
        return np.zeros(k, dtype=np.int64)
    points = np.stack((chain, y, chains[chain, y]))
    while points.shape[1] > 2:
        chain, y, x = points
        dy, dx = y[1:] - y[:-1], x[1:] - x[:-1]
        # A point on or below the chord of its neighbours is no vertex of the majorant;
        # dropping all of them at once keeps every vertex (each lies above every chord).
        # Chains are sorted, so equal ids two apart mean three points of one chain.
        drop = (dx[:-1] * dy[1:] <= dx[1:] * dy[:-1]) & (chain[2:] == chain[:-2])
        if not drop.any():
            break
        points = points[:, np.concatenate(([True], ~drop, [True]))]
    chain, y, x = points
    # Each chain at each row centre: the segment around it, if the chain spans the row.
    stride = n_levels + 1
    q_chain = np.repeat(np.arange(2 * k), h)
    q_y = np.tile(2 * np.arange(h) + 1, 2 * k)
    at = np.searchsorted(chain * stride + y, q_chain * stride + q_y, side="right") - 1
    nxt = np.minimum(at + 1, len(y) - 1)
    spans = (at >= 0) & (chain[at] == q_chain) & (chain[nxt] == q_chain) & (nxt > at)
    y0, x0, x1 = y[at], x[at], x[nxt]
    dy = np.where(spans, y[nxt] - y0, 1)
    # floor(X / 2) at the row centre: the last column inside, and for the mirrored left
    # chain minus the first column inside; their sum + 1 is the row's hull width.
    col = ((x0 * dy + (x1 - x0) * (q_y - y0)) // (2 * dy)).reshape(2 * k, h)
    width = np.maximum(col[:k] + col[k:] + 1, 0)
    return np.where(spans.reshape(2 * k, h)[:k], width, 0).sum(axis=1)


def _solidities(masks: np.ndarray) -> list[float]:
    """Area over convex hull area of each mask of a stack; 1.0 below three pixels."""
    # Not cropped to the masks' box first (skimage's hull needed that for speed): the
    # hull's pixels never leave a mask's box, and this count barely slows on a large frame.
    area = np.count_nonzero(masks, axis=(1, 2))
    hull = _hull_pixel_counts(masks)
    return [int(n) / int(m) if n >= 3 and m else 1.0 for n, m in zip(area, hull, strict=True)]


def _lateral_row(geom: PairGeometry, contact_px: int) -> np.ndarray:
    a, b = geom.a, geom.b
    s0, s1 = geom.extra.get("shared", (0, a.shape[0]))
    union = a | b
    area_a = np.count_nonzero(a, axis=(1, 2))
    area_b = np.count_nonzero(b, axis=(1, 2))
    # The shared layer where the two pieces are most alike in size: the cut layer.
    shared = np.arange(s0, s1)
    balance = np.minimum(area_a[shared], area_b[shared]) / np.maximum(
        np.maximum(area_a[shared], area_b[shared]), 1
    )
    s = int(shared[np.argmax(balance)])
    small, large = sorted((int(area_a[s]), int(area_b[s])))
    out = {
        "lat_area_ratio": small / max(large, 1),
        "lat_contact_ratio": contact_px / max(np.sqrt(max(small, 1)), 1.0),
    }
    solidity_union, solidity_a, solidity_b = _solidities(np.stack((union[s], a[s], b[s])))
    out["lat_solidity_union"] = solidity_union
    out["lat_solidity_gain"] = solidity_union - min(solidity_a, solidity_b)
    for name, step in (("above", -1), ("below", 1)):
        t = s + step
        has = 0 <= t < union.shape[0] and union[t].any()
        if has:
            ref = union[t]
            best_piece = max(_iou(a[s], ref), _iou(b[s], ref))
            iou_union = _iou(union[s], ref)
            out[f"lat_iou_union_{name}"] = iou_union
            out[f"lat_iou_gain_{name}"] = iou_union - best_piece
            out[f"lat_area_union_{name}"] = np.count_nonzero(union[s]) / np.count_nonzero(ref)
        else:
            out[f"lat_iou_union_{name}"] = 0.0
            out[f"lat_iou_gain_{name}"] = 0.0
            out[f"lat_area_union_{name}"] = 1.0
        out[f"lat_has_{name}"] = float(has)
    # Pixels of each piece that the other piece covers in the layers next to the cut: a
    # piece of the same cell lies in the other piece's footprint, a neighbour does not.
    near = [t for t in (s - 1, s + 1) if 0 <= t < union.shape[0]]
    other_cells = geom.extra.get("other")
    pieces = sorted(((a, b), (b, a)), key=lambda pair: np.count_nonzero(pair[0][s]))
    for name, (piece, other) in zip(("small", "large"), pieces, strict=True):
        footprint = np.zeros(piece.shape[1:], dtype=bool)
        for t in near:
            footprint |= other[t]
        own = np.count_nonzero(piece[s])
        out[f"lat_cover_{name}"] = np.count_nonzero(piece[s] & footprint) / own if own else 0.0
        if other_cells is not None:
            foreign = np.zeros(piece.shape[1:], dtype=bool)
            for t in near:
                foreign |= other_cells[t]
            hit = np.count_nonzero(piece[s] & foreign)
            out[f"lat_foreign_{name}"] = hit / own if own else 0.0
        else:
            out[f"lat_foreign_{name}"] = 0.0
    out["lat_layers_a"] = float(np.count_nonzero(area_a))
    out["lat_layers_b"] = float(np.count_nonzero(area_b))
    out["lat_shared_layers"] = float(s1 - s0)
    return np.array([out[name] for name in LATERAL_FEATURES], dtype=float)


class LateralFeatures(TransformerMixin, BaseEstimator):
    """Does the union of two pieces that share a layer look like one cross-section?

    For the shared layer where the two pieces are most alike in size: the pieces' area
    ratio, their contact relative to the smaller piece's size, the solidity (area over
    convex hull) of the union and its gain over the pieces, and, towards the layers above
    and below, the IoU of the union with the cross-section there and its gain over the
    better piece alone, and the area ratio of union and neighbour. A missing neighbour
    layer gives a gain of 0 and an indicator of 0 (never NaN), so one-layer pieces at the
    volume's border are judged on what there is.

    Parameters
    ----------
    n_jobs : int, optional
        Threads over rows.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the table seen in :meth:`fit`.
    feature_names_in_ : ndarray of str
        Column names of the table seen in :meth:`fit`.

    Notes
    -----
    ``X`` is a candidate table, not a numeric array (the estimator tags say
    ``two_d_array=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import LateralFeatures, LateralScreener
    >>> vol = np.zeros((5, 6, 8), dtype=np.uint16)
    >>> vol[:, 1:5, 1:7] = 1
    >>> vol[2, 1:5, 4:7] = 2
    >>> table = LateralScreener().screen(vol)
    >>> features = LateralFeatures().fit_transform(table)
    >>> features.shape
    (1, 19)
    """

    _parameter_constraints: ClassVar[dict] = {"n_jobs": [Integral, None]}

    def __init__(self, *, n_jobs: int | None = None) -> None:
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        return _table_tags(super().__sklearn_tags__())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: pd.DataFrame, y: Any = None) -> LateralFeatures:
        """Check the table; nothing is learned.

        Parameters
        ----------
        X : DataFrame
            Candidate table with ``geometry`` and ``contact_px`` columns.
        y : ignored

        Returns
        -------
        self
        """
        _check_lateral_table(X)
        validate_data(self, X, skip_check_array=True, reset=True)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """One row of :data:`LATERAL_FEATURES` per candidate.

        Parameters
        ----------
        X : DataFrame
            Candidate table with ``geometry`` and ``contact_px`` columns.

        Returns
        -------
        features : ndarray of shape (n_rows, 19)
        """
        check_is_fitted(self, "n_features_in_")
        _check_lateral_table(X)
        if len(X) == 0:
            return np.zeros((0, len(LATERAL_FEATURES)))
        rows = Parallel(n_jobs=effective_n_jobs(self.n_jobs, len(X)), prefer="threads")(
            delayed(_lateral_row)(g, int(c))
            for g, c in zip(X["geometry"], X["contact_px"], strict=True)
        )
        return np.vstack(rows)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "n_features_in_")
        return np.asarray(LATERAL_FEATURES, dtype=object)


def _check_lateral_table(X: Any) -> None:
    if not isinstance(X, pd.DataFrame) or not {"geometry", "contact_px"} <= set(X.columns):
        raise TypeError(
            "LateralFeatures expects a candidate table (DataFrame with 'geometry' and "
            f"'contact_px' columns), got {type(X).__name__}."
        )

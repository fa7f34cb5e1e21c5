"""Pieces of one cell that share a layer: screening and features of ``kind="lateral"`` pairs.

Per-slice 2D segmentation sometimes cuts a cell's cross-section in two. IoU stitching
then continues the cell through one piece only; the other becomes a new label that lies
*beside* the first in that layer, not above or below it, so the axial screener never
pairs them. :class:`LateralScreener` lists pairs of labels that touch in-plane (share a
pixel edge within a layer) while their z-ranges overlap in at most ``max_shared_layers``
layers. Distinct neighbouring cells in tissue share many layers, so this keeps the
candidates few; the pieces of a cut cross-section share one (the cut layer).

Each row's geometry holds both labels' masks on the same window of layers (the shared
layers and ``context_layers`` on each side), in one frame: ``a`` and ``b`` are aligned
layer by layer, ``gap`` is 0 and ``extra["shared"]`` gives the shared layers' positions
in the window. :class:`LateralFeatures` asks of each shared layer whether the union of
the two pieces continues the cross-sections above and below better than either piece
alone does (IoU gains), how the areas compare, and how convex the union is: a cell's
cross-section is nearly convex, the union of two neighbouring cells is not.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import effective_n_jobs
from .candidates import PairGeometry
from .cells import CellIndex
from .features import _table_tags
from .screening import BaseScreener, build_table

__all__ = ["LateralFeatures", "LateralScreener", "lateral_pairs"]

_KEY = np.int64(1) << 31


def _in_plane_offsets(max_distance: int) -> list[tuple[int, int]]:
    """In-plane offsets (dy, dx), one of each +/- pair, up to ``max_distance`` pixels."""
    return [
        (dy, dx)
        for dy in range(0, max_distance + 1)
        for dx in range(-max_distance, max_distance + 1)
        if (dy > 0 or dx > 0) and dy * dy + dx * dx <= max_distance * max_distance
    ]


def _shifted_pairs(volume, dy: int, dx: int):
    """Views ``first, second`` of the volume such that second is first moved by (dy, dx)."""
    ny, nx = volume.shape[1], volume.shape[2]
    ys0, ys1 = slice(0, ny - dy), slice(dy, ny)
    if dx >= 0:
        xs0, xs1 = slice(0, nx - dx), slice(dx, nx)
    else:
        xs0, xs1 = slice(-dx, nx), slice(0, nx + dx)
    return volume[:, ys0, xs0], volume[:, ys1, xs1]


def _meeting_pairs(index: CellIndex, first, second) -> np.ndarray:
    """One key per voxel where two labels meet (``first`` and ``second`` aligned views).

    The key is ``min(position) * _KEY + max(position)`` of the two labels in the index.
    """
    meet = (first != second) & (first != 0) & (second != 0)
    pa = index.positions(first[meet]).astype(np.int64)
    pb = index.positions(second[meet]).astype(np.int64)
    return np.minimum(pa, pb) * _KEY + np.maximum(pa, pb)


def lateral_pairs(
    index: CellIndex,
    *,
    max_shared_layers: int = 1,
    max_distance: int = 1,
    footprint: bool = False,
) -> pd.DataFrame:
    """Pairs of cells that touch in-plane and share at most ``max_shared_layers`` layers.

    Parameters
    ----------
    index : CellIndex
    max_shared_layers : int, default=1
        Largest overlap of the two z-ranges (in layers).
    max_distance : int, default=1
        In-plane distance in pixels at which two labels count as touching: 1 is a
        shared pixel edge; 2 also pairs pieces one pixel apart (a cut whose boundary a
        segmenter eroded) and diagonal neighbours.
    footprint : bool, default=False
        Also pair labels that share a layer (at most ``max_shared_layers``) without
        touching in it, when one lies in the other's footprint: a voxel of one directly
        above or below a voxel of the other. A cross-section cut into parts that do not
        touch (a concave cell, a thin bridge lost) leaves such pieces.

    Returns
    -------
    pairs : DataFrame
        Columns ``pos_a, pos_b, gap, overlap_px, contact_px`` (positions in the index;
        A is the cell that starts higher, ties broken by the taller, then the smaller
        id). ``contact_px`` is the in-plane contact in pixel edges, and so is
        ``overlap_px`` for pairs that touch in-plane; for pairs found by ``footprint``
        alone, ``contact_px`` is 0 and ``overlap_px`` the voxels one has directly above
        or below the other.
    """
    volume = index.volume
    columns = ("pos_a", "pos_b", "gap", "overlap_px", "contact_px")
    keys = [
        _meeting_pairs(index, *_shifted_pairs(volume, dy, dx))
        for dy, dx in _in_plane_offsets(max_distance)
    ]
    uniq, counts = np.unique(np.concatenate([np.zeros(0, np.int64), *keys]), return_counts=True)
    overlaps = counts
    if footprint and volume.shape[0] > 1:
        below, n_below = np.unique(
            _meeting_pairs(index, volume[:-1], volume[1:]), return_counts=True
        )
        only_below = ~np.isin(below, uniq)
        uniq = np.concatenate([uniq, below[only_below]])
        counts = np.concatenate([counts, np.zeros(int(only_below.sum()), dtype=counts.dtype)])
        overlaps = np.concatenate([overlaps, n_below[only_below]])
    if uniq.size == 0:
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64) for c in columns})
    p, q = uniq // _KEY, uniq % _KEY
    z_first, z_last = index.z_first.astype(np.int64), index.z_last.astype(np.int64)
    shared = np.minimum(z_last[p], z_last[q]) - np.maximum(z_first[p], z_first[q]) + 1
    # Pairs found above/below only and sharing no layer are axial pairs, not lateral.
    keep = (shared <= max_shared_layers) & (shared >= 1)
    p, q, counts, overlaps = p[keep], q[keep], counts[keep], overlaps[keep]
    height = z_last - z_first
    # A starts higher; then the taller one; then the smaller id (p < q already).
    swap = (z_first[q] < z_first[p]) | ((z_first[q] == z_first[p]) & (height[q] > height[p]))
    pos_a, pos_b = np.where(swap, q, p), np.where(swap, p, q)
    pairs = pd.DataFrame(
        {
            "pos_a": pos_a,
            "pos_b": pos_b,
            "gap": np.zeros(len(pos_a), dtype=np.int64),
            "overlap_px": overlaps.astype(np.int64),
            "contact_px": counts.astype(np.int64),
        }
    )
    return pairs.sort_values(["pos_a", "pos_b"], kind="stable").reset_index(drop=True)


def _lateral_geometry(context_layers: int):
    def geometry(index: CellIndex, label_a, label_b, gap, spacing) -> PairGeometry:
        box_a = index.bboxes[index.position(label_a)]
        box_b = index.bboxes[index.position(label_b)]
        s0, s1 = max(box_a[0], box_b[0]), min(box_a[1], box_b[1])  # shared [s0, s1)
        n_z = index.volume.shape[0]
        w0, w1 = max(0, int(s0) - context_layers), min(n_z, int(s1) + context_layers)
        y0, y1, x0, x1 = index.union_frame(label_a, label_b)
        crop = np.asarray(index.volume[w0:w1, y0:y1, x0:x1])
        return PairGeometry(
            a=crop == label_a,
            b=crop == label_b,
            gap=0,
            spacing=(spacing[1], spacing[2]),
            layer_step=spacing[0],
            origin=(y0, x0),
            # Third labels in the window: a piece lying under another cell's footprint
            # more likely belongs to that cell than to its in-plane neighbour.
            extra={
                "shared": (int(s0) - w0, int(s1) - w0),
                "other": (crop != 0) & (crop != label_a) & (crop != label_b),
            },
        )

    return geometry


class LateralScreener(BaseScreener):
    """List pieces of one cell that share a layer: in-plane neighbours with short z-overlap.

    Parameters
    ----------
    max_shared_layers : int, default=1
        Largest overlap of the two labels' z-ranges, in layers. The pieces of a
        cross-section cut by a 2D segmenter share one layer; distinct neighbouring
        cells usually share many.
    max_distance : int, default=1
        In-plane distance in pixels at which two labels count as touching (see
        :func:`lateral_pairs`).
    context_layers : int, default=2
        Layers kept above and below the shared ones in each row's geometry.
    footprint : bool, default=False
        Also list pieces that share a layer without touching in it when one lies in
        the other's footprint (directly above or below it; see :func:`lateral_pairs`).
    spacing : tuple of float, optional
        Voxel size (z, y, x) stored in the geometry.
    n_jobs : int, optional
        Threads used to cut out the pair geometries.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import LateralScreener
    >>> vol = np.zeros((5, 6, 8), dtype=np.uint16)
    >>> vol[:, 1:5, 1:7] = 1
    >>> vol[2, 1:5, 4:7] = 2    # the cross-section of layer 2 cut in two
    >>> LateralScreener().screen(vol)[["cell_a", "cell_b", "kind", "contact_px"]].to_dict("records")
    [{'cell_a': 1, 'cell_b': 2, 'kind': 'lateral', 'contact_px': 4}]
    """

    _parameter_constraints: ClassVar[dict] = {
        "max_shared_layers": [Interval(Integral, 1, None, closed="left")],
        "max_distance": [Interval(Integral, 1, None, closed="left")],
        "context_layers": [Interval(Integral, 1, None, closed="left")],
        "footprint": ["boolean"],
        "spacing": ["array-like", None],
        "n_jobs": [Integral, None],
    }

    kind = "lateral"

    def __init__(
        self,
        *,
        max_shared_layers: int = 1,
        max_distance: int = 1,
        context_layers: int = 2,
        footprint: bool = False,
        spacing=None,
        n_jobs: int | None = None,
    ) -> None:
        self.max_shared_layers = max_shared_layers
        self.max_distance = max_distance
        self.context_layers = context_layers
        self.footprint = footprint
        self.spacing = spacing
        self.n_jobs = n_jobs

    def screen(
        self,
        volume,
        *,
        volume_id: str = "0",
        spacing=None,
        index: CellIndex | None = None,
    ) -> pd.DataFrame:
        """Screen one label volume and return its candidate table of lateral pairs.

        Parameters
        ----------
        volume : array-like of int, shape (Z, Y, X)
            Label volume, 0 = background. Never modified.
        volume_id : str, default="0"
        spacing : tuple of float, optional
        index : CellIndex, optional

        Returns
        -------
        table : DataFrame
            Candidate table with ``kind == "lateral"``.
        """
        index, spacing = self._prepare(volume, spacing, index)
        if not isinstance(index.volume, np.ndarray):
            index = dataclasses.replace(index, volume=np.asarray(index.volume))
        pairs = lateral_pairs(
            index,
            max_shared_layers=self.max_shared_layers,
            max_distance=self.max_distance,
            footprint=self.footprint,
        )
        return build_table(
            index,
            pairs,
            volume_id=str(volume_id),
            kind="lateral",
            spacing=spacing,
            n_jobs=self.n_jobs,
            geometry=_lateral_geometry(int(self.context_layers)),
        )


# ----------------------------------------------------------------------------- features

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

"""Pieces of one cell that share a layer: screening of ``kind="lateral"`` pairs.

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
in the window. :class:`~sklearn_overseg.features.lateral.LateralFeatures` computes their
features.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval

from .base import BaseScreener, build_table
from .candidates import PairGeometry
from .cells import CellIndex

__all__ = ["LateralScreener", "lateral_pairs"]


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

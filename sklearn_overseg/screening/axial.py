"""Candidate screening along the imaging axis (Algorithm 1 of the paper).

A pair (A, B) is a candidate when A's last z-layer mask overlaps B's first z-layer mask
across ``min_gap``..``max_gap`` missing layers, and no *complete* cell (one whose first and
last layers both lie inside the gap) covers the overlap. Partial masks inside the gap are
allowed: they are what 2D under-segmentation leaves behind (paper, appendix C.1).

Unlike the authors' public code, which compares every pair of labels in Python
(O(N²)) and keeps only one-layer gaps without ever checking the gap, the search here is
one vectorised pass per layer: the layer where cells end is compared with the layer
``gap + 1`` below where cells begin, and pairs are counted with :func:`numpy.unique` on
combined keys. Cost is linear in voxels.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval

from .base import BaseScreener, build_table
from .candidates import PairGeometry
from .cells import CellIndex

__all__ = ["AxialGapScreener", "cut_axial_geometry", "screen_axial_pairs"]


def _pair_counts(keys_a: np.ndarray, keys_b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unique (a, b) position pairs and their pixel counts."""
    if keys_a.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    combined = keys_a.astype(np.int64) * (1 << 31) + keys_b.astype(np.int64)
    uniq, counts = np.unique(combined, return_counts=True)
    return uniq // (1 << 31), uniq % (1 << 31), counts.astype(np.int64)


def screen_axial_pairs(
    index: CellIndex,
    *,
    min_gap: int = 0,
    max_gap: int = 1,
    min_overlap: int = 1,
    min_overlap_fraction: float = 0.0,
    min_blocking_fraction: float = 0.5,
    z_range: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Find axial candidate pairs in an indexed volume, without geometry.

    Parameters
    ----------
    index : CellIndex
    min_gap, max_gap : int
        Range of missing layers between A's last and B's first layer.
    min_overlap : int
        Minimum overlap in pixels between A's last and B's first mask.
    min_overlap_fraction : float
        Minimum overlap as a fraction of the smaller of the two masks.
    min_blocking_fraction : float
        A complete cell inside the gap rejects the pair when it covers at least this
        fraction of the overlap footprint; smaller complete cells are treated as
        noise (hallucinated masks) and tolerated.
    z_range : (int, int), optional
        Only pairs whose upper cell ends at a layer in ``[start, stop)``; the default is
        the whole volume. Slabs of ``z_range`` partition the result, which is how
        :mod:`sklearn_overseg.correction.blockwise` screens a volume slab by slab.

    Returns
    -------
    pairs : DataFrame
        Columns ``pos_a, pos_b, gap, overlap_px, area_a, area_b`` (positions in the
        index arrays), sorted by ``(pos_a, pos_b, gap)``.
    """
    n_z = index.volume.shape[0]
    start, stop = (0, n_z) if z_range is None else (int(z_range[0]), int(z_range[1]))
    pairs = pairs_in_block(
        index,
        index.volume,
        z_offset=0,
        z_range=(start, stop),
        n_z=n_z,
        min_gap=min_gap,
        max_gap=max_gap,
        min_overlap=min_overlap,
        min_overlap_fraction=min_overlap_fraction,
        min_blocking_fraction=min_blocking_fraction,
    )
    return sort_pairs(pairs)


#: Columns of the position-pair frames returned by the pair search.
PAIR_COLUMNS = ("pos_a", "pos_b", "gap", "overlap_px", "area_a", "area_b")


def sort_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs in the canonical order ``(pos_a, pos_b, gap)``, whatever slabs found them."""
    return pairs.sort_values(["pos_a", "pos_b", "gap"], kind="stable").reset_index(drop=True)


def pairs_in_block(
    index: CellIndex,
    block,
    *,
    z_offset: int,
    z_range: tuple[int, int],
    n_z: int,
    min_gap: int,
    max_gap: int,
    min_overlap: int,
    min_overlap_fraction: float,
    min_blocking_fraction: float,
) -> pd.DataFrame:
    """The pair search over the layers of ``block``, which starts at layer ``z_offset``.

    ``block`` must hold layers ``z_range[0]`` to ``z_range[1] + max_gap`` (clipped to the
    volume's ``n_z`` layers): a pair ending at the slab's last layer is compared with
    up to ``max_gap + 1`` layers below it. The index is only asked for positions and
    extents, never for voxels, so a worker can receive it without the volume.
    """
    volume = block
    columns = list(PAIR_COLUMNS)
    if len(index) == 0:
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64) for c in columns})
    z_first = index.z_first
    z_last = index.z_last
    found: list[tuple[np.ndarray, ...]] = []

    # Positions of the cells that end (or begin) at each layer, computed lazily and
    # kept only for the ``max_gap + 2`` layers a comparison can span.
    cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def layer(z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if z not in cache:
            pos = index.positions(np.asarray(volume[z - z_offset]))
            valid = pos >= 0
            safe = np.where(valid, pos, 0)
            ends = np.where(valid & (z_last[safe] == z), pos, -1)
            starts = np.where(valid & (z_first[safe] == z), pos, -1)
            cache[z] = (pos, ends, starts)
            for old in [k for k in cache if k < z - max_gap - 2]:
                del cache[old]
        return cache[z]

    for z in range(max(z_range[0], 0), min(z_range[1], n_z - 1 - min_gap)):
        _, ends, _ = layer(z)
        end_pixels = ends >= 0
        if not end_pixels.any():
            continue
        for gap in range(min_gap, max_gap + 1):
            zb = z + gap + 1
            if zb >= n_z:
                break
            _, _, starts = layer(zb)
            both = end_pixels & (starts >= 0)
            if not both.any():
                continue
            pa, pb, counts = _pair_counts(ends[both], starts[both])
            keep = pa != pb
            pa, pb, counts = pa[keep], pb[keep], counts[keep]
            if pa.size == 0:
                continue
            area_a = np.bincount(ends[end_pixels], minlength=len(index))[pa]
            start_pixels = starts >= 0
            area_b = np.bincount(starts[start_pixels], minlength=len(index))[pb]
            ok = counts >= min_overlap
            ok &= counts >= min_overlap_fraction * np.minimum(area_a, area_b)
            if gap > 0 and ok.any():
                ok &= ~_blocked_by_complete_cell(
                    index,
                    lambda zz: np.asarray(volume[zz - z_offset]),
                    z,
                    zb,
                    ends,
                    starts,
                    pa,
                    pb,
                    counts,
                    min_blocking_fraction,
                )
            if ok.any():
                found.append(
                    (
                        pa[ok],
                        pb[ok],
                        np.full(int(ok.sum()), gap, dtype=np.int64),
                        counts[ok],
                        area_a[ok],
                        area_b[ok],
                    )
                )
    if not found:
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64) for c in columns})
    arrays = [np.concatenate(parts) for parts in zip(*found, strict=True)]
    return pd.DataFrame(dict(zip(columns, arrays, strict=True)))


def _blocked_by_complete_cell(
    index: CellIndex,
    layer,
    z_a: int,
    z_b: int,
    ends: np.ndarray,
    starts: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    overlap: np.ndarray,
    min_fraction: float,
) -> np.ndarray:
    """For each pair, whether a complete cell inside the gap covers its overlap."""
    blocked = np.zeros(len(pa), dtype=bool)
    ys, xs = np.nonzero((ends >= 0) & (starts >= 0))
    pixel_keys = ends[ys, xs].astype(np.int64) * (1 << 31) + starts[ys, xs]
    pair_keys = pa.astype(np.int64) * (1 << 31) + pb
    order = np.argsort(pair_keys)
    slot = np.minimum(np.searchsorted(pair_keys[order], pixel_keys), len(pair_keys) - 1)
    pair_of_pixel = order[slot]
    in_pairs = pair_keys[pair_of_pixel] == pixel_keys
    ys, xs, pair_of_pixel = ys[in_pairs], xs[in_pairs], pair_of_pixel[in_pairs]
    pixel_number = np.arange(len(ys), dtype=np.int64)
    z_first, z_last = index.z_first, index.z_last
    hit_pixels: list[np.ndarray] = []
    hit_cells: list[np.ndarray] = []
    for zz in range(z_a + 1, z_b):
        pos = index.positions(layer(zz)[ys, xs])
        safe = np.where(pos >= 0, pos, 0)
        complete = (pos >= 0) & (z_first[safe] > z_a) & (z_last[safe] < z_b)
        hit_pixels.append(pixel_number[complete])
        hit_cells.append(pos[complete])
    if not hit_pixels or sum(h.size for h in hit_pixels) == 0:
        return blocked
    # A complete cell spanning several gap layers covers a footprint pixel once.
    pixels, cells, _ = _pair_counts(np.concatenate(hit_pixels), np.concatenate(hit_cells))
    pairs, _, counts = _pair_counts(pair_of_pixel[pixels], cells)
    blocked[pairs[counts >= min_fraction * overlap[pairs]]] = True
    return blocked


def cut_axial_geometry(
    volume,
    corner: tuple[int, int, int],
    label_a: int,
    label_b: int,
    gap: int,
    layers_a: tuple[int, int],
    layers_b: tuple[int, int],
    frame: tuple[int, int, int, int],
    spacing: tuple[float, float, float],
) -> PairGeometry:
    """The :class:`PairGeometry` of an axial pair, cut from a volume or a block of one.

    Parameters
    ----------
    volume : array-like of shape (Z, Y, X)
        The volume, or a block of it whose first voxel is ``corner`` in the volume.
    corner : tuple of int
        ``(z, y, x)`` of ``volume[0, 0, 0]`` in the whole volume.
    label_a, label_b : int
    gap : int
    layers_a, layers_b : tuple of int
        First and last layer (inclusive) of A and of B, in whole-volume coordinates.
    frame : tuple of int
        ``(y0, y1, x0, x1)`` of the pair's common in-plane frame, whole-volume coordinates.
    spacing : tuple of float
        Voxel size (z, y, x).
    """
    oz, oy, ox = corner
    y0, y1, x0, x1 = frame
    ys, xs = slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox)
    return PairGeometry(
        a=np.asarray(volume[layers_a[0] - oz : layers_a[1] + 1 - oz, ys, xs]) == label_a,
        b=np.asarray(volume[layers_b[0] - oz : layers_b[1] + 1 - oz, ys, xs]) == label_b,
        gap=int(gap),
        spacing=(spacing[1], spacing[2]),
        layer_step=spacing[0],
        origin=(y0, x0),
    )


def _axial_geometry(
    index: CellIndex,
    label_a: int,
    label_b: int,
    gap: int,
    spacing: tuple[float, float, float],
) -> PairGeometry:
    box_a = index.bboxes[index.position(label_a)]
    box_b = index.bboxes[index.position(label_b)]
    return cut_axial_geometry(
        index.volume,
        (0, 0, 0),
        label_a,
        label_b,
        gap,
        (int(box_a[0]), int(box_a[1]) - 1),
        (int(box_b[0]), int(box_b[1]) - 1),
        index.union_frame(label_a, label_b),
        spacing,
    )


class AxialGapScreener(BaseScreener):
    """List candidate splits along z: A's last layer overlaps B's first layer across a gap.

    This is Algorithm 1 of the paper, vectorised per layer. The result is a candidate
    table (see :mod:`sklearn_overseg.screening.candidates`) whose ``geometry`` column holds each
    pair's masks, so that feature transformers never need the volume.

    Parameters
    ----------
    min_gap : int, default=0
        Fewest missing layers between A and B. ``0`` also finds cells split without a
        missing layer (a relabel at a z plane).
    max_gap : int, default=1
        Most missing layers between A and B.
    min_overlap : int, default=1
        Minimum overlap in pixels between A's last mask and B's first mask.
    min_overlap_fraction : float, default=0.0
        Minimum overlap as a fraction of the smaller of those two masks.
    min_blocking_fraction : float, default=0.5
        A complete cell inside the gap (first and last layers both in the gap) rejects
        the pair only if it covers at least this fraction of the overlap; smaller ones
        are treated as hallucinated noise, as the paper allows.
    spacing : tuple of float, optional
        Voxel size (z, y, x) stored in the geometry so that features can work in
        physical units. Overridden by the ``spacing`` argument of :meth:`screen`.
    n_jobs : int, optional
        Threads used to cut out the pair geometries.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import AxialGapScreener
    >>> vol = np.zeros((5, 6, 6), dtype=np.uint16)
    >>> vol[:2, 1:5, 1:5] = 1   # upper part of a cell
    >>> vol[3:, 1:5, 1:5] = 2   # lower part, after a blank layer
    >>> table = AxialGapScreener().screen(vol)
    >>> table[["cell_a", "cell_b", "gap", "overlap_px"]].to_dict("records")
    [{'cell_a': 1, 'cell_b': 2, 'gap': 1, 'overlap_px': 16}]
    """

    _parameter_constraints: ClassVar[dict] = {
        "min_gap": [Interval(Integral, 0, None, closed="left")],
        "max_gap": [Interval(Integral, 0, None, closed="left")],
        "min_overlap": [Interval(Integral, 1, None, closed="left")],
        "min_overlap_fraction": [Interval(Real, 0, 1, closed="both")],
        "min_blocking_fraction": [Interval(Real, 0, 1, closed="right")],
        "spacing": ["array-like", None],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        *,
        min_gap: int = 0,
        max_gap: int = 1,
        min_overlap: int = 1,
        min_overlap_fraction: float = 0.0,
        min_blocking_fraction: float = 0.5,
        spacing=None,
        n_jobs: int | None = None,
    ) -> None:
        self.min_gap = min_gap
        self.max_gap = max_gap
        self.min_overlap = min_overlap
        self.min_overlap_fraction = min_overlap_fraction
        self.min_blocking_fraction = min_blocking_fraction
        self.spacing = spacing
        self.n_jobs = n_jobs

    kind = "axial"

    def _check_params(self) -> None:
        self._validate_params()
        if self.min_gap > self.max_gap:
            raise ValueError(f"min_gap ({self.min_gap}) must not exceed max_gap ({self.max_gap}).")

    def pair_search_params(self) -> dict:
        """This screener's keyword arguments of :func:`screen_axial_pairs`.

        Returns
        -------
        params : dict
            ``min_gap``, ``max_gap``, ``min_overlap``, ``min_overlap_fraction`` and
            ``min_blocking_fraction``.
        """
        names = (
            "min_gap",
            "max_gap",
            "min_overlap",
            "min_overlap_fraction",
            "min_blocking_fraction",
        )
        return {name: getattr(self, name) for name in names}

    def screen(
        self,
        volume,
        *,
        volume_id: str = "0",
        spacing=None,
        index: CellIndex | None = None,
    ) -> pd.DataFrame:
        """Screen one label volume and return its candidate table.

        Parameters
        ----------
        volume : array-like of int, shape (Z, Y, X)
            Label volume, 0 = background. Never modified.
        volume_id : str, default="0"
            Key written to the ``volume`` column and the row ids, so that tables from
            several volumes concatenate and group.
        spacing : tuple of float, optional
            Voxel size (z, y, x); defaults to the ``spacing`` parameter, then to 1.
        index : CellIndex, optional
            A prebuilt index of ``volume`` to reuse.

        Returns
        -------
        table : DataFrame
            One row per candidate pair, sorted by ``(cell_a, cell_b)``, indexed by
            ``"volume:a-b:axial"``.
        """
        index, spacing = self._prepare(volume, spacing, index)
        pairs = screen_axial_pairs(index, **self.pair_search_params())
        return build_table(
            index,
            pairs,
            volume_id=str(volume_id),
            kind="axial",
            spacing=spacing,
            n_jobs=self.n_jobs,
            geometry=_axial_geometry,
        )

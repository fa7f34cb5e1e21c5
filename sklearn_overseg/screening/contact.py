"""Screening of touching cells and re-slicing along their contact plane (paper §3.3).

3D segmenters (PlantSeg and the like) split cells along tilted, rugged surfaces rather
than between z layers. :class:`ContactScreener` lists every pair of face-adjacent cells
and turns each into the same :class:`~sklearn_overseg.screening.candidates.PairGeometry` the axial
screener produces, so that the feature transformers work unchanged:

1. **Adjacency** is one vectorised pass per z slab: the volume is compared with its copy
   shifted by one voxel along each axis, and the (smaller, larger) index positions of
   differing non-zero neighbours are combined into one 64-bit key whose
   :func:`numpy.unique` count is the contact area in voxel faces (``contact_px``).
   Only 6-connectivity (shared faces) counts: cells touching by an edge or a corner are
   not neighbours.
2. **Reference plane**: the contact surface is the set of midpoints of the faces shared by
   A and B (searched only where the two cells' boxes meet), in physical units. Its
   centroid and its direction of least variance (PCA) give the plane. A contact with
   fewer than three faces, or collinear faces, has no plane; the centroid-to-centroid
   direction is used instead (``extra["method"] == "centroids"``). The same fallback is
   taken when the PCA plane leaves one cell with no pixel on its side (flat cells whose
   contact is coplanar with them).
3. **Orientation**: the normal points from A to B. The screener calls A the cell whose
   centroid projects lower on the normal (ties: the smaller id), which is what
   "A before B along the cut normal" means in the candidate table.
4. **Re-slicing**: the pair's crop is sampled by nearest neighbour (a vectorised
   equivalent of ``scipy.ndimage.affine_transform(order=0)``, three times faster) on
   planes parallel to the reference plane, one ``step = min(spacing)`` apart, with an
   in-plane grid of the same step: anisotropic volumes are resampled isotropically.
   Layer ``s`` lies at signed distance ``s * step`` from the plane. As in the paper, the
   reference layer ``s = 0`` is removed: ``a`` holds A's masks on layers ``s < 0``
   (``a[-1]`` is ``s = -1``) and ``b`` holds B's masks on layers ``s > 0`` (``b[0]`` is
   ``s = +1``), hence ``gap = 1``. Pixels of A beyond the plane (and of B before it) are
   in neither stack, as in the paper's upward/downward fragments.

Choices made where the paper is silent:

- The in-plane grid passes through the projection of the voxel centre nearest to the
  contact centroid, and sample points are nudged by ``1e-3 * step`` towards B. For an
  axis-aligned contact every sample then falls on a voxel centre with no rounding tie,
  so a z-aligned split re-slices exactly into the axial layers: A's layers unchanged and
  B's first layer removed as the reference layer.
- In-plane axes: ``u`` = the y axis projected on the plane (the z axis when the normal
  is close to y) and ``v = normal × u``; for a z normal the frame is (y, x).
- Empty layers at the far ends of each stack are dropped (interior ones are kept so that
  layer indices stay physical) and the frame is cropped to the pixels of both stacks.
- A cell only one layer thin across the plane lives on the reference layer alone; that
  side then keeps the reference layer and ``gap`` is 0 (``extra["reference_kept"]``).
- ``max_layers`` keeps the layers nearest the plane and also shrinks the sampled frame
  to the slab that is kept, which bounds the cost for large cells.
- A pair that still has an empty side is dropped by the screener with a warning.
"""

from __future__ import annotations

import warnings
from itertools import pairwise
from numbers import Integral
from typing import ClassVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import MIN_ROWS_PER_WORKER, check_label_volume, check_spacing, effective_n_jobs
from .axial import AxialGapScreener, BaseScreener, build_table
from .candidates import PairGeometry, concat_tables, empty_candidate_table
from .cells import CellIndex
from .lateral import LateralScreener

__all__ = [
    "CombinedScreener",
    "ContactScreener",
    "cell_centroids",
    "contact_pairs",
    "reslice_pair",
]

# Voxels compared per slab in the adjacency pass; bounds the temporary arrays.
_SLAB_VOXELS = 1 << 22
# Key = smaller position * _KEY + larger position (positions < 2**31).
_KEY = np.int64(1) << np.int64(31)
# Sample points are pushed this far (in steps) towards B so that axis-aligned contacts,
# whose plane lies exactly between two voxel layers, never hit a rounding tie.
_TIE_BIAS = 1e-3
# Parallel tasks per worker when re-slicing pairs.
_BATCHES_PER_JOB = 4
# Middle eigenvalue below this fraction of the largest: faces collinear, no plane.
_DEGENERATE = 1e-6


# ----------------------------------------------------------------------- adjacency


def _neighbour_keys(index: CellIndex, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pair keys of the face neighbours ``first[i]``/``second[i]`` with different labels."""
    touch = (first != second) & (first != 0) & (second != 0)
    if not touch.any():
        return np.zeros(0, dtype=np.int64)
    pa = index.positions(first[touch])
    pb = index.positions(second[touch])
    return np.minimum(pa, pb) * _KEY + np.maximum(pa, pb)


def contact_pairs(index: CellIndex) -> pd.DataFrame:
    """All pairs of face-adjacent cells and their contact areas.

    Parameters
    ----------
    index : CellIndex
        Index of the volume to scan.

    Returns
    -------
    pairs : DataFrame
        Columns ``pos_p, pos_q, contact_px`` with ``pos_p < pos_q`` (positions in the
        index arrays, so ``p`` has the smaller id), sorted by ``(pos_p, pos_q)``.
        ``contact_px`` is the number of voxel faces the two cells share.
    """
    volume = index.volume
    n_z = volume.shape[0]
    plane = max(1, volume.shape[1] * volume.shape[2])
    depth = max(1, _SLAB_VOXELS // plane)
    uniques: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for z0 in range(0, n_z, depth):
        # One extra layer so that the z faces between slabs are counted once.
        slab = np.asarray(volume[z0 : min(n_z, z0 + depth + 1)])
        own = slab[: min(depth, n_z - z0)]
        keys = [
            _neighbour_keys(index, slab[:-1], slab[1:]),
            _neighbour_keys(index, own[:, :-1], own[:, 1:]),
            _neighbour_keys(index, own[:, :, :-1], own[:, :, 1:]),
        ]
        merged = np.concatenate(keys)
        if merged.size:
            u, c = np.unique(merged, return_counts=True)
            uniques.append(u)
            counts.append(c)
    columns = ("pos_p", "pos_q", "contact_px")
    if not uniques:
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64) for c in columns})
    keys, inverse = np.unique(np.concatenate(uniques), return_inverse=True)
    area = np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)
    return pd.DataFrame(
        {"pos_p": keys // _KEY, "pos_q": keys % _KEY, "contact_px": area},
        columns=list(columns),
    )


def cell_centroids(index: CellIndex) -> np.ndarray:
    """Centroid of every cell in voxel units (z, y, x), one vectorised pass in z slabs.

    Parameters
    ----------
    index : CellIndex

    Returns
    -------
    centroids : ndarray of float, shape (n_cells, 3)
        Row ``k`` is the centroid of ``index.labels[k]``.
    """
    volume = index.volume
    n_z, n_y, n_x = volume.shape
    n = len(index)
    sums = np.zeros((n, 3))
    depth = max(1, (_SLAB_VOXELS // 4) // max(1, n_y * n_x))
    for z0 in range(0, n_z, depth):
        slab = np.asarray(volume[z0 : z0 + depth])
        inside = slab != 0
        pos = index.positions(slab[inside])
        # Broadcast coordinate grids: masking copies only the labelled voxels.
        grids = np.ogrid[z0 : z0 + slab.shape[0], :n_y, :n_x]
        for axis, grid in enumerate(grids):
            weights = np.broadcast_to(grid.astype(float), slab.shape)[inside]
            sums[:, axis] += np.bincount(pos, weights=weights, minlength=n)
    return sums / np.maximum(index.voxel_counts, 1)[:, None]


# ---------------------------------------------------------------------- geometry


class _PairBox:
    """The pair's union bounding box as a code crop (1 = A, 2 = B), in physical units.

    Nothing here lists every voxel of the cells: centroids come from axis profiles and
    the pair's extent from the two ends of each occupied z column (a linear function of
    the position is extreme over a column at one of its ends).
    """

    def __init__(
        self,
        index: CellIndex,
        label_a: int,
        label_b: int,
        spacing: tuple[float, ...],
        centroids: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        rows = index.bboxes[[index.position(label_a), index.position(label_b)]]
        lo = rows[:, 0::2].min(axis=0)
        hi = rows[:, 1::2].max(axis=0)
        self.start = lo.astype(np.int64)
        # Shared faces lie where the two boxes, grown by one voxel, intersect.
        meet_lo = np.maximum(rows[:, 0::2].max(axis=0) - 1, lo) - lo
        meet_hi = np.minimum(rows[:, 1::2].min(axis=0) + 1, hi) - lo
        self.meet = tuple(
            slice(int(a), int(max(a, b))) for a, b in zip(meet_lo, meet_hi, strict=True)
        )
        self.spacing = np.asarray(spacing, dtype=float)
        crop = np.asarray(index.volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
        mask_a = crop == label_a
        mask_b = crop == label_b
        # A zero border lets the sampler clip indices instead of testing bounds.
        self.padded = np.zeros(tuple(n + 2 for n in crop.shape), dtype=np.uint8)
        self.codes = self.padded[1:-1, 1:-1, 1:-1]
        np.add(mask_a.view(np.uint8), 2 * mask_b.view(np.uint8), out=self.codes)
        if centroids is None:
            self.centroid_a = self._centroid(mask_a)
            self.centroid_b = self._centroid(mask_b)
        else:
            self.centroid_a, self.centroid_b = (c * self.spacing for c in centroids)

    def _physical(self, voxels: np.ndarray) -> np.ndarray:
        return (voxels + self.start) * self.spacing

    def _centroid(self, mask: np.ndarray) -> np.ndarray:
        n = max(int(np.count_nonzero(mask)), 1)
        mean = [
            np.count_nonzero(mask, axis=tuple(k for k in range(3) if k != axis))
            @ np.arange(mask.shape[axis])
            / n
            for axis in range(3)
        ]
        return self._physical(np.asarray(mean, dtype=float))

    def contact_points(self) -> np.ndarray:
        """Midpoints of the faces shared by A and B, physical (z, y, x), shape (n, 3)."""
        found = []
        codes = self.codes[self.meet]
        corner = np.array([s.start for s in self.meet], dtype=float)
        for axis in range(3):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis] = slice(None, -1)
            hi[axis] = slice(1, None)
            # Codes are 0, 1, 2: a sum of 3 is exactly an A-B face.
            faces = np.argwhere(codes[tuple(lo)] + codes[tuple(hi)] == 3).astype(float)
            faces[:, axis] += 0.5
            found.append(faces + corner)
        return self._physical(np.concatenate(found))

    def hull_points(
        self, origin: np.ndarray, normal: np.ndarray, half_width: float | None
    ) -> np.ndarray:
        """Voxels holding every extreme of A ∪ B along any direction, physical (n, 3).

        With ``half_width``, only voxels whose centre lies within that physical distance
        of the plane ``(origin, normal)`` count: the sampled frame then fits the slab
        that is kept rather than the whole pair.
        """
        union = self.codes > 0
        corner = np.zeros(3, dtype=np.int64)
        if half_width is not None:
            axes = [
                ((np.arange(n) + start) * sp - o) * d
                for n, start, sp, o, d in zip(
                    union.shape, self.start, self.spacing, origin, normal, strict=True
                )
            ]
            # float32 rounding and addition are monotone, so the computed distance is
            # extreme at the box's corners: when both extremes are in the slab, every
            # voxel is and ``near`` would be ``union`` itself.
            lows = [np.float32(a.min()) for a in axes]
            highs = [np.float32(a.max()) for a in axes]
            inside = (
                abs((lows[0] + lows[1]) + lows[2]) <= half_width
                and abs((highs[0] + highs[1]) + highs[2]) <= half_width
            )
            window = None if inside else _slab_window(axes, half_width)
            if window is not None:
                # The distance is only computed inside the slab's box; outside it no voxel
                # is near the plane, so ``near`` is the same as over the whole crop.
                distance = (
                    axes[0][window[0]].astype(np.float32)[:, None, None]
                    + axes[1][window[1]].astype(np.float32)[None, :, None]
                    + axes[2][window[2]].astype(np.float32)[None, None, :]
                )
                near = union[window] & (np.abs(distance) <= half_width)
                if near.any():
                    union = near
                    corner = np.array([w.start for w in window], dtype=np.int64)
        # First and last filled layer of each column as maxima over z of weighted masks:
        # reductions over the leading axis run on contiguous rows, unlike argmax.
        depth = union.shape[0]
        kind = np.uint8 if depth < 255 else np.int64
        rank = np.arange(1, depth + 1, dtype=kind)[:, None, None]
        top = np.multiply(union, rank).max(axis=0)
        ys, xs = np.nonzero(top)
        last = top[ys, xs].astype(np.int64) - 1
        first = depth - np.multiply(union, rank[::-1]).max(axis=0)[ys, xs].astype(np.int64)
        # Rows (first, y, x) then (last, y, x), written straight into the float result:
        # integers convert exactly, so this equals ``self._physical`` of the index rows.
        n = len(ys)
        ends = np.empty((2 * n, 3))
        start = self.start + corner
        ends[:n, 0] = first + start[0]
        ends[n:, 0] = last + start[0]
        ends[:n, 1] = ends[n:, 1] = ys + start[1]
        ends[:n, 2] = ends[n:, 2] = xs + start[2]
        ends *= self.spacing
        return ends


def _slab_window(axes: list[np.ndarray], half_width: float) -> tuple[slice, ...] | None:
    """Box of the crop outside which no voxel lies within ``half_width`` of the plane.

    ``axes[k]`` is the distance term contributed by the index along axis ``k``; a voxel's
    distance is their sum. Bounds are widened by a slack far above float32 rounding, so the
    box is conservative. None when no voxel can be near the plane.
    """
    lows = [float(a.min()) for a in axes]
    highs = [float(a.max()) for a in axes]
    slack = 1e-4 * (1.0 + sum(max(abs(lo), abs(hi)) for lo, hi in zip(lows, highs, strict=True)))
    window = []
    for k, values in enumerate(axes):
        rest_lo = sum(lows) - lows[k]
        rest_hi = sum(highs) - highs[k]
        ok = np.flatnonzero(
            (values + rest_lo <= half_width + slack) & (values + rest_hi >= -half_width - slack)
        )
        if ok.size == 0:
            return None
        window.append(slice(int(ok[0]), int(ok[-1]) + 1))
    return tuple(window)


def _sample_nearest(
    padded: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Nearest-neighbour sampling of ``padded[1:-1, 1:-1, 1:-1]`` at ``matrix @ o + offset``.

    Same result as ``scipy.ndimage.affine_transform(..., order=0, mode="grid-constant")``
    (rounding half up, zero outside) but about three times faster here: the coordinates
    are affine in the output index, so each axis is two broadcast additions, and indices
    outside the crop are clipped onto its zero border instead of being tested.
    """
    strides = (padded.shape[1] * padded.shape[2], padded.shape[2], 1)
    grids = [np.arange(n, dtype=float) for n in shape]
    full = np.empty(shape)  # reused: fresh large temporaries cost page faults
    kind = np.int32 if padded.size < 2**31 else np.intp
    flat = None
    for k in range(3):
        # +1 for the border, +0.5 so that truncation rounds to the nearest voxel.
        coord = (matrix[k, 0] * grids[0] + (offset[k] + 1.5))[:, None, None]
        # Adding an all-zero term changes nothing: skip it and keep the array small.
        if matrix[k, 1] != 0.0:
            coord = coord + (matrix[k, 1] * grids[1])[None, :, None]
        if matrix[k, 2] != 0.0:
            coord = np.add(coord, (matrix[k, 2] * grids[2])[None, None, :], out=full)
        # Clipped to the (integer) bounds first, values are non-negative and truncation
        # is floor.
        part = np.clip(coord, 0, padded.shape[k] - 1, out=full if coord is full else None)
        part = part.astype(kind)
        if strides[k] != 1:
            np.multiply(part, strides[k], out=part)
        flat = (
            part if flat is None else np.add(flat, part, out=None if flat.shape != shape else flat)
        )
    return padded.ravel()[np.broadcast_to(flat, shape)]


def _canonical(normal: np.ndarray) -> np.ndarray:
    """The sign of a direction fixed so that its first clearly non-zero component is > 0."""
    for value in normal:
        if abs(value) > 1e-9:
            return normal if value > 0 else -normal
    return normal


def _fit_plane(
    box: _PairBox, use_pca: bool = True
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray, np.ndarray, int]:
    """Contact centroid, unit normal (canonical sign), method, cell centroids, faces."""
    faces = box.contact_points()
    centroid_a, centroid_b = box.centroid_a, box.centroid_b
    between = centroid_b - centroid_a
    if len(faces) == 0:
        # Not touching: the plane halfway between the centroids still slices the pair.
        origin = (centroid_a + centroid_b) / 2
    else:
        origin = faces.mean(axis=0)
    normal = None
    if use_pca and len(faces) >= 3:
        centred = faces - origin
        values, vectors = np.linalg.eigh(centred.T @ centred)
        if values[1] > _DEGENERATE * max(values[2], np.finfo(float).tiny):
            normal = vectors[:, 0]
    method = "pca"
    if normal is None:
        method = "centroids"
        length = np.linalg.norm(between)
        normal = between / length if length > 0 else np.array([1.0, 0.0, 0.0])
    return (
        origin,
        _canonical(normal / np.linalg.norm(normal)),
        method,
        centroid_a,
        centroid_b,
        len(faces),
    )


def _in_plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.array([0.0, 1.0, 0.0]) if abs(normal[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = reference - (reference @ normal) * normal
    u /= np.linalg.norm(u)
    # np.cross computes the same products and differences, with more overhead.
    v = np.array(
        [
            normal[1] * u[2] - normal[2] * u[1],
            normal[2] * u[0] - normal[0] * u[2],
            normal[0] * u[1] - normal[1] * u[0],
        ]
    )
    return u, v / np.linalg.norm(v)


def _span(values: np.ndarray, margin: float) -> tuple[int, int]:
    return int(np.floor(values.min() - margin)), int(np.ceil(values.max() + margin))


def _trim(stack: np.ndarray, keep_last: bool) -> tuple[np.ndarray, int]:
    """Drop empty layers at the far end; return the stack and how many were dropped."""
    filled = np.flatnonzero(stack.any(axis=(1, 2)))
    if filled.size == 0:
        return stack[:0], stack.shape[0]
    if keep_last:  # ``a``: far end is the start
        return stack[filled[0] :], int(filled[0])
    return stack[: filled[-1] + 1], stack.shape[0] - int(filled[-1]) - 1


def _reslice(
    box: _PairBox,
    origin: np.ndarray,
    normal: np.ndarray,
    method: str,
    max_layers: int | None,
    n_faces: int,
    codes: tuple[int, int] = (1, 2),
) -> PairGeometry:
    """Sample the pair on layers parallel to the plane; ``codes`` = (A's, B's) crop code."""
    spacing = box.spacing
    step = float(spacing.min())
    u, v = _in_plane_axes(normal)
    basis = np.stack([normal, u, v])  # rows: s, i, j directions
    # In-plane grid through the voxel centre nearest the contact centroid (see module doc).
    anchor = np.round(origin / spacing) * spacing
    shift = np.array([0.0, (anchor - origin) @ u, (anchor - origin) @ v]) / step
    # A voxel reaches half its extent beyond its centre along each direction.
    margin = 0.5 * np.abs(basis) @ spacing / step + 1e-3
    half_width = None if max_layers is None else (max_layers + margin[0] + 1e-3) * step
    points = box.hull_points(origin, normal, half_width)
    coords = (points - origin) @ basis.T / step - shift
    s_lo, s_hi = _span(coords[:, 0], margin[0])
    i_lo, i_hi = _span(coords[:, 1], margin[1])
    j_lo, j_hi = _span(coords[:, 2], margin[2])
    if max_layers is not None:
        s_lo, s_hi = max(s_lo, -max_layers), min(s_hi, max_layers)
    s_lo, s_hi = min(s_lo, -1), max(s_hi, 1)
    shape = (s_hi - s_lo + 1, i_hi - i_lo + 1, j_hi - j_lo + 1)
    # Output index o maps to the physical point base + step * basis.T @ o, then to
    # voxel coordinates of the crop.
    base = (
        origin
        + (s_lo + _TIE_BIAS) * step * normal
        + (i_lo + shift[1]) * step * u
        + (j_lo + shift[2]) * step * v
    )
    matrix = (step * basis.T) / spacing[:, None]
    offset = base / spacing - box.start
    sampled = _sample_nearest(box.padded, matrix, offset, shape)
    zero = -s_lo
    a, dropped_a = _trim(sampled[:zero] == codes[0], keep_last=True)
    b, _ = _trim(sampled[zero + 1 :] == codes[1], keep_last=False)
    # A cell one layer thin across the plane lives only on the reference layer; removing
    # it would leave nothing, so that side keeps it and the gap shrinks to 0.
    kept = None
    if a.shape[0] == 0 and b.shape[0] > 0:
        a, dropped_a, kept = sampled[zero : zero + 1] == codes[0], zero, "a"
    elif b.shape[0] == 0 and a.shape[0] > 0:
        b, kept = sampled[zero : zero + 1] == codes[1], "b"
    footprint = a.any(axis=0) | b.any(axis=0)
    rows, cols = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    if rows.size:
        frame = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        a, b = a[:, frame[0], frame[1]], b[:, frame[0], frame[1]]
        top = (i_lo + int(rows[0]), j_lo + int(cols[0]))
    else:
        top = (i_lo, j_lo)
    if not a.any():
        a = a[:0]
    if not b.any():
        b = b[:0]
    return PairGeometry(
        a=np.ascontiguousarray(a),
        b=np.ascontiguousarray(b),
        gap=0 if kept else 1,
        spacing=(step, step),
        layer_step=step,
        origin=top,
        extra={
            "plane_origin": tuple(float(x) for x in origin),
            "normal": tuple(float(x) for x in normal),
            "u": tuple(float(x) for x in u),
            "v": tuple(float(x) for x in v),
            "grid_anchor": tuple(float(x) for x in anchor),
            "method": method,
            "n_contact_faces": int(n_faces),
            "reference_kept": kept,
            "s_first_a": s_lo + dropped_a,
        },
    )


def _oriented_geometry(
    index: CellIndex,
    label_a: int,
    label_b: int,
    spacing: tuple[float, ...],
    max_layers: int | None,
    decide_order: bool,
    centroids: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[PairGeometry, bool]:
    """Geometry of a pair; with ``decide_order`` A and B may be swapped (returned flag)."""
    box = _PairBox(index, label_a, label_b, spacing, centroids)
    for use_pca in (True, False):
        origin, normal, method, centroid_a, centroid_b, n_faces = _fit_plane(box, use_pca)
        along = float((centroid_b - centroid_a) @ normal)
        tolerance = 1e-9 * float(np.abs(np.concatenate([centroid_a, centroid_b])).max() + 1.0)
        swapped = False
        if decide_order:
            # The normal keeps its canonical sign; A is whichever centroid projects lower.
            swapped = along < -tolerance
        elif along < -tolerance:
            normal = -normal
        codes = (2, 1) if swapped else (1, 2)
        geom = _reslice(box, origin, normal, method, max_layers, n_faces, codes)
        # A PCA plane can leave a side empty (flat cells whose contact is coplanar with
        # them); the centroid direction then separates the two cells.
        if method == "centroids" or (geom.n_layers_a and geom.n_layers_b):
            break
    return geom, swapped


def _oriented_batch(tasks: list[tuple]) -> list[tuple[tuple, bool]]:
    """Re-slice pairs in a worker; masks travel back bit-packed (eight times smaller)."""
    packed = []
    for task in tasks:
        geom, swapped = _oriented_geometry(*task)
        stacks = [(np.packbits(m, axis=None), m.shape) for m in (geom.a, geom.b)]
        fields = (geom.gap, geom.spacing, geom.layer_step, geom.origin, geom.extra)
        packed.append(((stacks, fields), swapped))
    return packed


def _unpack(packed: tuple) -> PairGeometry:
    stacks, (gap, spacing, layer_step, origin, extra) = packed
    a, b = (
        np.unpackbits(bits, count=int(np.prod(shape))).view(bool).reshape(shape)
        for bits, shape in stacks
    )
    return PairGeometry(
        a=a, b=b, gap=gap, spacing=spacing, layer_step=layer_step, origin=origin, extra=extra
    )


def reslice_pair(
    index: CellIndex,
    label_a: int,
    label_b: int,
    spacing=None,
    max_layers: int | None = None,
) -> PairGeometry:
    """Re-slice a pair of cells along the plane of their contact surface.

    Parameters
    ----------
    index : CellIndex
        Index of the volume holding both cells.
    label_a, label_b : int
        Ids of the two cells; the normal is oriented from A's centroid towards B's.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x); unit by default. The plane is fitted and the layers are
        sampled in these physical units, one ``min(spacing)`` apart.
    max_layers : int, optional
        Keep at most this many layers on each side of the plane (the nearest ones).

    Returns
    -------
    geometry : PairGeometry
        ``a`` = A's masks on layers ``s < 0`` (``a[-1]`` at ``s = -1``), ``b`` = B's masks
        on layers ``s > 0`` (``b[0]`` at ``s = 1``), ``gap = 1`` (the removed reference
        layer), ``spacing = (step, step)``, ``layer_step = step``. ``extra`` holds the
        plane (``plane_origin``, ``normal``, ``u``, ``v`` in physical (z, y, x)), the
        fitting ``method`` (``"pca"`` or ``"centroids"``), ``s_first_a`` (the layer
        index of ``a[0]``) and ``reference_kept``: ``"a"`` or ``"b"`` when that cell
        has pixels only on the reference layer, which it then keeps (``gap = 0``).
        A side may still have no layer when its cell (a few voxels) misses every
        sample point on its side; the screener drops such pairs.

    Raises
    ------
    KeyError
        If a label is not in the volume.
    ValueError
        If both labels are the same, or ``max_layers`` is not a positive integer.
    """
    if int(label_a) == int(label_b):
        raise ValueError(f"label_a and label_b must differ, got {label_a} twice.")
    _check_max_layers(max_layers)
    geom, _ = _oriented_geometry(
        index, int(label_a), int(label_b), check_spacing(spacing), max_layers, False
    )
    return geom


def _check_max_layers(max_layers) -> None:
    if max_layers is not None and (
        isinstance(max_layers, bool) or not isinstance(max_layers, Integral) or max_layers < 1
    ):
        raise ValueError(f"max_layers must be a positive integer or None, got {max_layers!r}.")


# ---------------------------------------------------------------------- screeners


class ContactScreener(BaseScreener):
    """List touching cells as candidates, each re-sliced along its contact plane.

    The generalisation of the paper (§3.3) to the tilted, irregular cuts of 3D
    segmenters: every pair of face-adjacent cells is a candidate, and its
    :class:`~sklearn_overseg.screening.candidates.PairGeometry` holds the pair's masks on planes
    parallel to the PCA plane of the contact surface (see :mod:`sklearn_overseg.screening.contact`).

    Parameters
    ----------
    min_contact : int, default=1
        Fewest shared voxel faces for a pair to be a candidate.
    min_size : int, default=1
        Fewest voxels each cell of a pair must have.
    max_layers : int, optional
        Keep at most this many re-sliced layers on each side of the contact plane,
        bounding the cost for large cells. All layers by default.
    spacing : tuple of float, optional
        Voxel size (z, y, x); overridden by the ``spacing`` argument of :meth:`screen`.
    n_jobs : int, optional
        Worker processes used to re-slice the pairs (the volume reaches them
        memory-mapped, not copied). Results do not depend on it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg.screening.contact import ContactScreener
    >>> vol = np.zeros((6, 6, 6), dtype=np.uint16)
    >>> vol[1:3, 1:5, 1:5] = 1
    >>> vol[3:5, 1:5, 1:5] = 2   # touches cell 1 across the z=2.5 plane
    >>> table = ContactScreener().screen(vol)
    >>> table[["cell_a", "cell_b", "kind", "contact_px", "overlap_px"]].to_dict("records")
    [{'cell_a': 1, 'cell_b': 2, 'kind': 'contact', 'contact_px': 16, 'overlap_px': 16}]
    """

    _parameter_constraints: ClassVar[dict] = {
        "min_contact": [Interval(Integral, 1, None, closed="left")],
        "min_size": [Interval(Integral, 1, None, closed="left")],
        "max_layers": [Interval(Integral, 1, None, closed="left"), None],
        "spacing": ["array-like", None],
        "n_jobs": [Integral, None],
    }

    kind = "contact"

    def __init__(
        self,
        *,
        min_contact: int = 1,
        min_size: int = 1,
        max_layers: int | None = None,
        spacing=None,
        n_jobs: int | None = None,
    ) -> None:
        self.min_contact = min_contact
        self.min_size = min_size
        self.max_layers = max_layers
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
        """Screen one label volume and return its candidate table.

        Parameters
        ----------
        volume : array-like of int, shape (Z, Y, X)
            Label volume, 0 = background. Never modified.
        volume_id : str, default="0"
            Key written to the ``volume`` column and the row ids.
        spacing : tuple of float, optional
            Voxel size (z, y, x); defaults to the ``spacing`` parameter, then to 1.
        index : CellIndex, optional
            A prebuilt index of ``volume`` to reuse.

        Returns
        -------
        table : DataFrame
            One row per touching pair with ``kind="contact"``, sorted by
            ``(cell_a, cell_b)`` and indexed ``"volume:a-b:contact"``; ``cell_a`` lies
            before ``cell_b`` along the contact normal, ``contact_px`` is the number of
            shared faces and ``overlap_px`` the overlap of ``a[-1]`` and ``b[0]``.

        Warns
        -----
        UserWarning
            When pairs are dropped because a cell has no voxel on its side of the plane.
        """
        index, spacing = self._prepare(volume, spacing, index)
        pairs = contact_pairs(index)
        sizes = index.voxel_counts
        keep = (pairs["contact_px"].to_numpy() >= self.min_contact) & (
            np.minimum(sizes[pairs["pos_p"].to_numpy()], sizes[pairs["pos_q"].to_numpy()])
            >= self.min_size
        )
        pairs = pairs[keep]
        if len(pairs) == 0:
            return empty_candidate_table()
        labels = index.labels
        centroids = cell_centroids(index)
        tasks = (
            (
                index,
                int(labels[p]),
                int(labels[q]),
                spacing,
                self.max_layers,
                True,
                (centroids[p], centroids[q]),
            )
            for p, q in zip(pairs["pos_p"], pairs["pos_q"], strict=True)
        )
        tasks = list(tasks)
        # A pair takes about a millisecond: a process pool pays off only for many.
        n_workers = effective_n_jobs(self.n_jobs, len(tasks) // MIN_ROWS_PER_WORKER)
        if n_workers == 1:
            results = [_oriented_geometry(*task) for task in tasks]
        else:
            # A pair is a millisecond of many small numpy calls that hold the GIL, so
            # threads do not overlap; processes do. Few large batches keep the transfer
            # cheap: joblib memory-maps the volume once per batch instead of copying it.
            n_batches = min(len(tasks), _BATCHES_PER_JOB * n_workers)
            bounds = np.linspace(0, len(tasks), n_batches + 1).astype(int)
            batches = Parallel(n_jobs=n_workers, prefer="processes")(
                delayed(_oriented_batch)(tasks[lo:hi]) for lo, hi in pairwise(bounds)
            )
            results = [(_unpack(packed), swapped) for batch in batches for packed, swapped in batch]
        pos_p, pos_q = pairs["pos_p"].to_numpy(), pairs["pos_q"].to_numpy()
        swapped = np.array([s for _, s in results], dtype=bool)
        geoms = [g for g, _ in results]
        usable = np.array([g.n_layers_a > 0 and g.n_layers_b > 0 for g in geoms], dtype=bool)
        if not usable.all():
            bad = [
                (int(labels[p]), int(labels[q]))
                for p, q in zip(pos_p[~usable], pos_q[~usable], strict=True)
            ]
            warnings.warn(
                f"ContactScreener dropped {len(bad)} touching pair(s) whose cells have no "
                f"voxel on their side of the contact plane: {bad[:5]}"
                f"{' ...' if len(bad) > 5 else ''}",
                UserWarning,
                stacklevel=2,
            )
        table = pd.DataFrame(
            {
                "pos_a": np.where(swapped, pos_q, pos_p),
                "pos_b": np.where(swapped, pos_p, pos_q),
                "gap": np.array([g.gap for g in geoms], dtype=np.int64),
                "overlap_px": [
                    int(np.count_nonzero(g.a[-1] & g.b[0])) if ok else 0
                    for g, ok in zip(geoms, usable, strict=True)
                ],
                "contact_px": pairs["contact_px"].to_numpy(),
            }
        )[usable]
        by_pair = {
            (int(labels[a]), int(labels[b])): g
            for a, b, g in zip(
                table["pos_a"], table["pos_b"], np.asarray(geoms, dtype=object)[usable], strict=True
            )
        }
        table = table.sort_values(["pos_a", "pos_b"], kind="stable").reset_index(drop=True)
        return build_table(
            index,
            table,
            volume_id=str(volume_id),
            kind=self.kind,
            spacing=spacing,
            n_jobs=None,
            geometry=lambda _index, a, b, _gap, _spacing: by_pair[(a, b)],
        )


_DROP = "drop"


class CombinedScreener(BaseScreener):
    """Several screeners together, each pair listed once.

    A pair found by more than one screener keeps the row of the first one in the order
    axial, contact, lateral: an axial row has real layers and a gap that interpolation
    can fill. The ``kind`` column tells the rows apart.

    Parameters
    ----------
    axial : AxialGapScreener, None or "drop", default=None
        ``None`` uses ``AxialGapScreener()``; ``"drop"`` leaves axial pairs out.
    contact : ContactScreener, None or "drop", default=None
        ``None`` uses ``ContactScreener()``; ``"drop"`` leaves contact pairs out.
    lateral : LateralScreener, None or "drop", default="drop"
        Pieces of one cell that share a layer (per-slice segmentation stitched in z, see
        :mod:`sklearn_overseg.screening.lateral`). ``None`` uses ``LateralScreener()``. Off by
        default so that ``CombinedScreener()`` stays the axial + contact screening of
        3D segmenters.

    Notes
    -----
    Nested parameters work as usual (``set_params(axial__max_gap=2)``); when the
    sub-screener is ``None`` or ``"drop"``, :meth:`set_params` first puts a default
    instance in its place so that its parameters can be set.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg.screening.contact import CombinedScreener
    >>> vol = np.zeros((8, 6, 12), dtype=np.uint16)
    >>> vol[0:3, 1:5, 1:5] = 1
    >>> vol[4:7, 1:5, 1:5] = 2    # below cell 1, across a blank layer: axial
    >>> vol[0:4, 1:5, 6:10] = 3
    >>> vol[4:8, 1:5, 6:10] = 4   # touches cell 3 without a gap: axial and contact
    >>> vol[0:8, 1:5, 10:12] = 5  # beside cell 3 and cell 4: contact only
    >>> table = CombinedScreener().fit_transform([vol])
    >>> table[["cell_a", "cell_b", "kind"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'cell_a': 1, 'cell_b': 2, 'kind': 'axial'}, {'cell_a': 3, 'cell_b': 4, 'kind': 'axial'},
     {'cell_a': 3, 'cell_b': 5, 'kind': 'contact'}, {'cell_a': 4, 'cell_b': 5, 'kind': 'contact'}]

    That is the default, axial and contact screening for 3D segmenters. Screening for
    per-slice segmentations stitched in z (axial gaps of up to three layers and pieces
    that share a layer, no tilted contacts):

    >>> from sklearn_overseg import AxialGapScreener, LateralScreener
    >>> screener = CombinedScreener(
    ...     axial=AxialGapScreener(max_gap=3), contact="drop", lateral=LateralScreener()
    ... )
    >>> vol = np.zeros((5, 6, 8), dtype=np.uint16)
    >>> vol[:2, 1:5, 1:7] = 1
    >>> vol[2:, 1:5, 1:7] = 2      # a lost link: gap 0
    >>> vol[2, 1:5, 4:7] = 3       # and a cross-section cut in two
    >>> table = screener.screen(vol)
    >>> table[["cell_a", "cell_b", "kind"]].to_records(index=False).tolist()
    [(1, 2, 'axial'), (1, 3, 'axial'), (2, 3, 'lateral')]
    """

    _parameter_constraints: ClassVar[dict] = {
        "axial": [AxialGapScreener, None, StrOptions({"drop"})],
        "contact": [ContactScreener, None, StrOptions({"drop"})],
        "lateral": [LateralScreener, None, StrOptions({"drop"})],
    }

    def __init__(
        self,
        *,
        axial: AxialGapScreener | str | None = None,
        contact: ContactScreener | str | None = None,
        lateral: LateralScreener | str | None = _DROP,
    ) -> None:
        self.axial = axial
        self.contact = contact
        self.lateral = lateral

    @staticmethod
    def _factories() -> dict:
        return {"axial": AxialGapScreener, "contact": ContactScreener, "lateral": LateralScreener}

    def set_params(self, **params):
        """Set parameters; ``axial__*`` etc. work even when the part is None or "drop".

        Returns
        -------
        self
        """
        for name, factory in self._factories().items():
            nested = any(key.startswith(f"{name}__") for key in params)
            part = params.get(name, getattr(self, name))
            if nested and (part is None or isinstance(part, str)):
                params = {**params, name: factory()}
        return super().set_params(**params)

    def _screeners(self) -> list:
        """The screeners in use, in order axial, contact, lateral."""
        self._validate_params()
        used = []
        for name, factory in self._factories().items():
            part = getattr(self, name)
            if isinstance(part, str):  # "drop"
                continue
            used.append(part if part is not None else factory())
        if not used:
            raise ValueError("CombinedScreener: every part is 'drop'; keep at least one.")
        return used

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X=None, y=None):
        """Check the parameters of every screener in use.

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self
        """
        for screener in self._screeners():
            screener.fit()
        return self

    def screen(
        self,
        volume,
        *,
        volume_id: str = "0",
        spacing=None,
        index: CellIndex | None = None,
    ) -> pd.DataFrame:
        """Screen one volume with every screener in use; see :meth:`ContactScreener.screen`.

        Returns
        -------
        table : DataFrame
            Rows of each screener in turn (axial, contact, lateral), without the pairs
            an earlier one already listed.
        """
        screeners = self._screeners()
        if index is None:
            index = CellIndex.from_volume(check_label_volume(volume, allow_empty=True))
        seen: set[tuple[int, int]] = set()
        tables = []
        for screener in screeners:
            table = screener.screen(volume, volume_id=volume_id, spacing=spacing, index=index)
            tables.append(table[unseen_pairs(table, seen)])
        return concat_tables(tables)


def unseen_pairs(table: pd.DataFrame, seen: set[tuple[int, int]]) -> np.ndarray:
    """Which rows hold a pair (in either order) not in ``seen``; the table's pairs join it.

    How a pair found by several screeners keeps the row of the first one, both in
    :meth:`CombinedScreener.screen` and in the corrector, which screens part by part.

    Parameters
    ----------
    table : DataFrame
        Candidate table with ``cell_a`` and ``cell_b``.
    seen : set of (int, int)
        Pairs ``(smaller id, larger id)`` listed so far; updated in place.

    Returns
    -------
    fresh : ndarray of bool, shape (n_rows,)
    """
    lo = np.minimum(table["cell_a"], table["cell_b"]).tolist()
    hi = np.maximum(table["cell_a"], table["cell_b"]).tolist()
    keys = list(zip(lo, hi, strict=True))
    fresh = np.array([key not in seen for key in keys], dtype=bool)
    seen.update(keys)
    return fresh

"""Re-slicing a pair of touching cells along their contact plane (paper §3.3).

The geometry behind :class:`~sklearn_overseg.screening.contact.ContactScreener`: each
pair of touching cells becomes the same
:class:`~sklearn_overseg.screening.candidates.PairGeometry` the axial screener produces,
so that the feature transformers work unchanged.

1. **Reference plane**: the contact surface is the set of midpoints of the faces shared by
   A and B (searched only where the two cells' boxes meet), in physical units. Its
   centroid and its direction of least variance (PCA) give the plane. A contact with
   fewer than three faces, or collinear faces, has no plane; the centroid-to-centroid
   direction is used instead (``extra["method"] == "centroids"``). The same fallback is
   taken when the PCA plane leaves one cell with no pixel on its side (flat cells whose
   contact is coplanar with them).
2. **Orientation**: the normal points from A to B. The screener calls A the cell whose
   centroid projects lower on the normal (ties: the smaller id), which is what
   "A before B along the cut normal" means in the candidate table.
3. **Re-slicing**: the pair's crop is sampled by nearest neighbour (a vectorised
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

from numbers import Integral

import numpy as np

from .._validation import check_spacing
from .candidates import PairGeometry
from .cells import _SLAB_VOXELS, CellIndex

__all__ = ["cell_centroids", "reslice_pair"]

# Sample points are pushed this far (in steps) towards B so that axis-aligned contacts,
# whose plane lies exactly between two voxel layers, never hit a rounding tie.
_TIE_BIAS = 1e-3
# Middle eigenvalue below this fraction of the largest: faces collinear, no plane.
_DEGENERATE = 1e-6


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

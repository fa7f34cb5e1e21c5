"""Synthetic segmentation flaws with a known truth, made from any ground-truth volume.

Every generator takes a label volume (``Z, Y, X`` integers, 0 = background), never
writes to it, and returns a :class:`FlawedVolume`: the flawed copy plus two tables.

``merges``
    The pairs that a perfect corrector must merge back, one row per synthetic split:
    ``cell_a`` is the part that keeps the original id (the upper part for axial splits,
    the part on the near side of the plane for tilted cuts), ``cell_b`` the new id,
    ``flaw`` one of ``"blank"`` (a layer of the cell was set to background and the part
    below relabelled), ``"relabel"`` (the part below was relabelled, no missing layer) or
    ``"tilted"`` (a random plane cut), ``z`` the first blanked layer, the cut layer for
    ``"relabel"`` (first layer of ``cell_b``), ``-1`` for tilted cuts, and ``gap`` the
    number of missing layers between the two parts.
``hard_negatives``
    Pairs of two *distinct* ground-truth cells that now look exactly like a blanked split
    (``cell_a`` ends one empty layer above where ``cell_b`` starts and their masks
    overlap across that layer): ``cell_a, cell_b, z, gap`` with ``z`` the emptied layer.

New ids are ``max id + 1, + 2, ...`` in the order the flaws are drawn; the dtype is
widened (within the same signedness) only when a new id would not fit. Every generator
is deterministic under ``random_state`` and candidates are visited in ascending id
order, so the same seed on the same volume gives the same flaws on any machine.

Design notes
------------
* Eligibility is checked on the layers a cell actually occupies, not on its bounding box:
  real ground truth contains ids with holes in z and ids made of several pieces, and a
  "split" across a layer where the cell is already absent would be a natural gap.
* Axial splits by default require that the two parts still overlap across the gap
  (``require_overlap=True``): that is the situation the axial screener and the paper
  address; a split whose parts do not overlap is indistinguishable from two cells.
* :func:`synthesize_flaws` builds one cell index (``scipy.ndimage.find_objects``) and
  runs every generator in place on one copy, excluding the cells already touched, so a
  ground-truth cell takes part in at most one flaw.
* Shrunk masks and hallucinated masks have nothing to merge: their ``merges`` table is
  empty. A hallucinated mask is a new id in a single layer that belongs to no cell; a
  corrector should leave it alone (it counts as a false positive in instance metrics).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.utils import check_random_state

from .._validation import check_label_volume, check_spacing

__all__ = [
    "HARD_NEGATIVE_COLUMNS",
    "MERGE_COLUMNS",
    "FlawedVolume",
    "blank_interfaces",
    "cut_cells_tilted",
    "hallucinate_masks",
    "shrink_masks",
    "split_cells_axial",
    "synthesize_flaws",
]

#: Columns of :attr:`FlawedVolume.merges`.
MERGE_COLUMNS: tuple[str, ...] = ("cell_a", "cell_b", "flaw", "z", "gap")
#: Columns of :attr:`FlawedVolume.hard_negatives`.
HARD_NEGATIVE_COLUMNS: tuple[str, ...] = ("cell_a", "cell_b", "z", "gap")

_FIND_OBJECTS_MAX_ID = 1 << 22  # above this, find_objects' list would be wasteful


def _empty_merges() -> pd.DataFrame:
    return _merge_table([])


def _merge_table(rows: list[tuple[int, int, str, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(MERGE_COLUMNS))
    return frame.astype(
        {"cell_a": np.int64, "cell_b": np.int64, "flaw": object, "z": np.int64, "gap": np.int64}
    )


def _negative_table(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(HARD_NEGATIVE_COLUMNS))
    return frame.astype(np.int64)


@dataclass(frozen=True)
class FlawedVolume:
    """A flawed label volume and the truth about its flaws.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        The flawed volume (a new array; the input is never modified).
    merges : DataFrame
        One row per synthetic split, columns ``cell_a, cell_b, flaw, z, gap``; merging
        each pair (and filling the ``gap`` blanked layers) restores the ground truth.
    hard_negatives : DataFrame
        One row per pair of distinct cells made to look like a blanked split, columns
        ``cell_a, cell_b, z, gap``; these must *not* be merged.
    """

    labels: np.ndarray
    merges: pd.DataFrame = field(default_factory=_empty_merges)
    hard_negatives: pd.DataFrame = field(default_factory=lambda: _negative_table([]))


# --------------------------------------------------------------------------- helpers


def _check_fraction(value: Real, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def _check_int(value: Integral, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_exclude(exclude: Iterable[int]) -> set[int]:
    try:
        return {int(v) for v in exclude}
    except (TypeError, ValueError):
        raise TypeError(f"exclude must be an iterable of integer ids, got {exclude!r}.") from None


def _widen(out: np.ndarray, highest_id: int) -> np.ndarray:
    """Return ``out`` with a dtype able to hold ``highest_id`` (a copy only if widened)."""
    if highest_id <= np.iinfo(out.dtype).max:
        return out
    ladder = (
        (np.uint16, np.uint32, np.uint64)
        if out.dtype.kind == "u"
        else (np.int16, np.int32, np.int64)
    )
    for dtype in ladder:
        if highest_id <= np.iinfo(dtype).max:
            return out.astype(dtype)
    raise OverflowError(f"label id {highest_id} does not fit any {out.dtype.kind}int dtype.")


class _Cells:
    """Bounding boxes of every id, computed once; ``next_id`` hands out fresh ids."""

    def __init__(self, labels: np.ndarray) -> None:
        self.boxes: dict[int, tuple[slice, slice, slice]] = {}
        max_id = int(labels.max()) if labels.size else 0
        if 0 < max_id <= _FIND_OBJECTS_MAX_ID:
            for i, box in enumerate(ndimage.find_objects(labels, max_label=max_id), start=1):
                if box is not None:
                    self.boxes[i] = box
        elif max_id > 0:
            # Huge sparse ids: compact first so find_objects allocates per present id only.
            ids, inverse = np.unique(labels, return_inverse=True)
            shift = int(ids[0] != 0)  # find_objects skips 0: keep it for background only
            inverse = inverse.reshape(labels.shape) + shift
            for i, box in enumerate(ndimage.find_objects(inverse), start=1):
                if box is not None:
                    self.boxes[int(ids[i - shift])] = box
        self.next_id = max_id + 1

    def ids(self, exclude: set[int]) -> list[int]:
        return [c for c in sorted(self.boxes) if c not in exclude]

    def take(self, n: int) -> list[int]:
        new = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        return new


def _prepare(labels: np.ndarray, name: str = "labels") -> tuple[np.ndarray, _Cells]:
    labels = check_label_volume(labels, name=name, allow_empty=True)
    return labels.copy(), _Cells(labels)


def _layer_presence(crop: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    mask = crop == cell
    return mask, mask.any(axis=(1, 2))


def _n_select(fraction: float, n: int) -> int:
    return min(n, int(np.floor(fraction * n + 0.5)))


# ------------------------------------------------------------------ axial splits


def _split_axial(
    out: np.ndarray,
    cells: _Cells,
    fraction: float,
    blank: bool,
    n_blank: int,
    min_layers: int,
    require_overlap: bool,
    rng: np.random.RandomState,
    exclude: set[int],
) -> tuple[np.ndarray, list[tuple[int, int, str, int, int]]]:
    gap = n_blank if blank else 0
    eligible: list[tuple[int, np.ndarray]] = []
    for cell in cells.ids(exclude):
        box = cells.boxes[cell]
        if box[0].stop - box[0].start < min_layers:
            continue
        mask, present = _layer_presence(out[box], cell)
        n = len(present)
        # cut = first layer of the lower part's gap (blank) or of the lower part (relabel).
        cuts = np.arange(1, n - gap) if blank else np.arange(1, n)
        if cuts.size == 0:
            continue
        ok = present[cuts - 1] & present[cuts + gap]
        if blank:
            for k in range(gap):
                ok &= present[cuts + k]
        if require_overlap:
            for j in np.flatnonzero(ok):
                c = cuts[j]
                ok[j] = np.logical_and(mask[c - 1], mask[c + gap]).any()
        if ok.any():
            eligible.append((cell, box[0].start + cuts[ok]))
    chosen = np.sort(rng.choice(len(eligible), _n_select(fraction, len(eligible)), replace=False))
    out = _widen(out, cells.next_id + len(chosen) - 1)
    rows = []
    for index, new in zip(chosen, cells.take(len(chosen)), strict=True):
        cell, cuts = eligible[index]
        cut = int(cuts[rng.randint(len(cuts))])
        box = cells.boxes[cell]
        crop = out[box]
        z = np.arange(box[0].start, box[0].stop)[:, None, None]
        mask = crop == cell
        crop[mask & (z >= cut + gap)] = new
        if gap:
            crop[mask & (z >= cut) & (z < cut + gap)] = 0
        rows.append((cell, new, "blank" if blank else "relabel", cut, gap))
    return out, rows


def split_cells_axial(
    labels: np.ndarray,
    fraction: float = 0.3,
    *,
    blank: bool = True,
    n_blank: int = 1,
    min_layers: int = 4,
    require_overlap: bool = True,
    random_state: int | np.random.RandomState | None = None,
    exclude: Iterable[int] = (),
) -> FlawedVolume:
    """Split cells in two along z, optionally blanking the layer(s) at the cut.

    This is the flaw of 2D and 2.5D segmenters: one layer of a cell is missed, and the
    parts above and below become two cells.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    fraction : float, default=0.3
        Fraction of the eligible cells to split (rounded to the nearest integer).
        A cell is eligible when its z-extent is at least ``min_layers`` and it has an
        interior cut layer satisfying the conditions below.
    blank : bool, default=True
        If True the cell's voxels in layers ``z .. z + n_blank - 1`` become background
        and the part below (``> z + n_blank - 1``) gets a new id (``flaw="blank"``).
        If False nothing is blanked and the part at ``>= z`` gets a new id
        (``flaw="relabel"``, ``gap=0``).
    n_blank : int, default=1
        Number of consecutive layers blanked when ``blank=True``.
    min_layers : int, default=4
        Minimum z-extent (in layers) of a cell to be split.
    require_overlap : bool, default=True
        Only cut where the cell is present in the blanked layers and in the layers just
        above and below the cut, and where those two layers' masks overlap, so the parts
        face each other across the gap as in a genuine missed layer.
    random_state : int, RandomState instance or None, default=None
        Controls which cells are split and where.
    exclude : iterable of int, default=()
        Ids never to split.

    Returns
    -------
    FlawedVolume
        ``merges`` has one row per split; ``hard_negatives`` is empty.
    """
    fraction = _check_fraction(fraction, "fraction")
    n_blank = _check_int(n_blank, "n_blank", 1)
    min_layers = _check_int(min_layers, "min_layers", 2)
    out, cells = _prepare(labels)
    rng = check_random_state(random_state)
    out, rows = _split_axial(
        out,
        cells,
        fraction,
        bool(blank),
        n_blank,
        min_layers,
        bool(require_overlap),
        rng,
        _check_exclude(exclude),
    )
    return FlawedVolume(out, _merge_table(rows))


# ----------------------------------------------------------- hard negatives


def _blank_interfaces(
    out: np.ndarray,
    cells: _Cells,
    fraction: float,
    min_overlap: int,
    rng: np.random.RandomState,
    exclude: set[int],
) -> list[tuple[int, int, int, int]]:
    first_layer = {c: box[0].start for c, box in cells.boxes.items()}
    pairs: list[tuple[int, int, int]] = []
    for a in cells.ids(exclude):
        box = cells.boxes[a]
        z_a = box[0].stop - 1
        if z_a + 1 >= out.shape[0] or box[0].stop - box[0].start < 3:
            continue
        crop = out[box]
        last, before = crop[-1] == a, crop[-2] == a
        if not before.any():
            continue  # A must end at z_a - 1 once its last layer is blanked
        below = out[z_a + 1, box[1], box[2]]
        for b in np.unique(below[last]):
            b = int(b)
            if b == 0 or b == a or b in exclude or first_layer.get(b) != z_a + 1:
                continue
            # What the screener will see: A's new last layer against B's first layer.
            if np.count_nonzero(before & (below == b)) >= min_overlap:
                pairs.append((a, b, z_a))
    # A random maximal set of disjoint pairs, then the requested share of it.
    used: set[int] = set()
    matching = []
    for i in rng.permutation(len(pairs)):
        a, b, z = pairs[i]
        if a not in used and b not in used:
            used.update((a, b))
            matching.append(pairs[i])
    matching = matching[: _n_select(fraction, len(matching))]
    matching.sort()
    for a, _, z in matching:
        box = cells.boxes[a]
        layer = out[z, box[1], box[2]]
        layer[layer == a] = 0
    return [(a, b, z, 1) for a, b, z in matching]


def blank_interfaces(
    labels: np.ndarray,
    fraction: float = 1.0,
    *,
    min_overlap: int = 1,
    random_state: int | np.random.RandomState | None = None,
    exclude: Iterable[int] = (),
) -> FlawedVolume:
    """Make stacked pairs of distinct cells look like blanked splits (hard negatives).

    A pair (A, B) is eligible when A's last layer ``z`` lies directly above B's first
    layer ``z + 1`` and the two masks touch, A spans at least three layers and is
    present at ``z - 1``, and A's mask at ``z - 1`` overlaps B's mask at ``z + 1`` by at
    least ``min_overlap`` pixels. Blanking A's last layer leaves exactly the picture of
    a blanked split: A ends at ``z - 1``, one empty layer, B starts at ``z + 1``.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    fraction : float, default=1.0
        Share of a random maximal set of disjoint eligible pairs to blank (each cell
        takes part in at most one pair); 1.0 blanks every interface that can be.
    min_overlap : int, default=1
        Minimum overlap in pixels between A's new last layer and B's first layer.
    random_state : int, RandomState instance or None, default=None
        Controls which pairs are chosen when pairs compete for a cell or
        ``fraction < 1``.
    exclude : iterable of int, default=()
        Ids never used as A or B.

    Returns
    -------
    FlawedVolume
        ``hard_negatives`` has one row per blanked interface; ``merges`` is empty.
    """
    fraction = _check_fraction(fraction, "fraction")
    min_overlap = _check_int(min_overlap, "min_overlap", 1)
    out, cells = _prepare(labels)
    rng = check_random_state(random_state)
    rows = _blank_interfaces(out, cells, fraction, min_overlap, rng, _check_exclude(exclude))
    return FlawedVolume(out, _empty_merges(), _negative_table(rows))


# ------------------------------------------------------------------ tilted cuts


def _random_normal(rng: np.random.RandomState, max_tilt_deg: float) -> np.ndarray:
    # Uniform on the spherical cap around +z (uniform in cos(tilt)), in (z, y, x) order.
    cos_t = rng.uniform(np.cos(np.deg2rad(max_tilt_deg)), 1.0)
    sin_t = np.sqrt(max(0.0, 1.0 - cos_t**2))
    phi = rng.uniform(0.0, 2.0 * np.pi)
    return np.array([cos_t, sin_t * np.sin(phi), sin_t * np.cos(phi)])


def _cut_tilted(
    out: np.ndarray,
    cells: _Cells,
    fraction: float,
    max_tilt_deg: float,
    min_part_voxels: int,
    spacing: tuple[float, float, float],
    offset_scale: float,
    rng: np.random.RandomState,
    exclude: set[int],
    n_tries: int = 10,
) -> tuple[np.ndarray, list[tuple[int, int, str, int, int]], list[tuple]]:
    sizes = {}
    for cell in cells.ids(exclude):
        n = np.count_nonzero(out[cells.boxes[cell]] == cell)
        if n >= 2 * min_part_voxels:
            sizes[cell] = n
    eligible = sorted(sizes)
    chosen = np.sort(rng.choice(len(eligible), _n_select(fraction, len(eligible)), replace=False))
    cuts = []
    scale = np.asarray(spacing)
    for index in chosen:
        cell = eligible[index]
        box = cells.boxes[cell]
        crop = out[box]
        mask = crop == cell
        coords = (np.argwhere(mask) + [s.start for s in box]) * scale
        centroid = coords.mean(axis=0)
        for _ in range(n_tries):
            normal = _random_normal(rng, max_tilt_deg)
            along = (coords - centroid) @ normal
            point = centroid + rng.normal(0.0, offset_scale * along.std()) * normal
            far = (coords - point) @ normal > 0
            n_far = int(far.sum())
            if min_part_voxels <= n_far <= len(far) - min_part_voxels:
                cuts.append((cell, mask, far, normal, point))
                break
    out = _widen(out, cells.next_id + len(cuts) - 1)
    rows, planes = [], []
    for (cell, mask, far, normal, point), new in zip(cuts, cells.take(len(cuts)), strict=True):
        crop = out[cells.boxes[cell]]
        values = np.full(len(far), cell, dtype=out.dtype)
        values[far] = new
        crop[mask] = values  # boolean indexing and argwhere share C order
        rows.append((cell, new, "tilted", -1, 0))
        planes.append((cell, new, normal, point))
    return out, rows, planes


def cut_cells_tilted(
    labels: np.ndarray,
    fraction: float = 0.2,
    *,
    max_tilt_deg: float = 60.0,
    min_part_voxels: int = 50,
    spacing: tuple[float, float, float] | float | None = (1.0, 1.0, 1.0),
    offset: float = 0.25,
    random_state: int | np.random.RandomState | None = None,
    exclude: Iterable[int] = (),
) -> FlawedVolume:
    """Cut cells in two by random planes, as 3D segmenters do (no missing layer).

    For each chosen cell a plane is drawn through a point near the cell's centroid,
    with a normal within ``max_tilt_deg`` of the z axis (uniform on that spherical cap,
    measured in physical units given by ``spacing``). The voxels on the far side
    (``(x - p) . n > 0``, i.e. below the plane) get a new id.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    fraction : float, default=0.2
        Fraction of the eligible cells (at least ``2 * min_part_voxels`` voxels) to cut.
    max_tilt_deg : float, default=60.0
        Largest angle between the plane's normal and the z axis, in degrees [0, 90].
    min_part_voxels : int, default=50
        Both parts must keep at least this many voxels; up to ten planes are tried per
        cell, and a cell is left whole if none qualifies.
    spacing : sequence of 3 floats, float or None, default=(1, 1, 1)
        Physical voxel size (z, y, x); tilt and centroid are measured in these units.
    offset : float, default=0.25
        The plane passes through ``centroid + t * n`` with ``t`` normal with a standard
        deviation of ``offset`` times the cell's spread along ``n``.
    random_state : int, RandomState instance or None, default=None
        Controls the cells and the planes.
    exclude : iterable of int, default=()
        Ids never cut.

    Returns
    -------
    FlawedVolume
        ``merges`` has one row per cut with ``flaw="tilted"``, ``z=-1``, ``gap=0``.
    """
    fraction = _check_fraction(fraction, "fraction")
    if isinstance(max_tilt_deg, bool) or not isinstance(max_tilt_deg, Real):
        raise ValueError(f"max_tilt_deg must be a number in [0, 90], got {max_tilt_deg!r}.")
    if not 0.0 <= max_tilt_deg <= 90.0:
        raise ValueError(f"max_tilt_deg must be in [0, 90], got {max_tilt_deg!r}.")
    if isinstance(offset, bool) or not isinstance(offset, Real) or not 0.0 <= offset < np.inf:
        raise ValueError(f"offset must be a finite number >= 0, got {offset!r}.")
    min_part_voxels = _check_int(min_part_voxels, "min_part_voxels", 1)
    spacing = check_spacing(spacing)
    out, cells = _prepare(labels)
    rng = check_random_state(random_state)
    out, rows, _ = _cut_tilted(
        out,
        cells,
        fraction,
        float(max_tilt_deg),
        min_part_voxels,
        spacing,
        float(offset),
        rng,
        _check_exclude(exclude),
    )
    return FlawedVolume(out, _merge_table(rows))


# ------------------------------------------------------- shrunk & hallucinated


def _shrink(
    out: np.ndarray,
    cells: _Cells,
    fraction: float,
    iterations: int,
    rng: np.random.RandomState,
    exclude: set[int],
) -> None:
    masks = []  # (cell, z) of every non-empty 2D mask
    for cell in cells.ids(exclude):
        box = cells.boxes[cell]
        present = (out[box] == cell).any(axis=(1, 2))
        masks.extend((cell, box[0].start + int(k)) for k in np.flatnonzero(present))
    chosen = np.sort(rng.choice(len(masks), _n_select(fraction, len(masks)), replace=False))
    shape = out.shape
    for index in chosen:
        cell, z = masks[index]
        box = cells.boxes[cell]
        # Grow the crop so neighbours inside the volume erode the mask; the volume border
        # itself counts as inside (border_value=1): a cell cut by the volume border keeps that edge.
        ys = slice(max(box[1].start - iterations, 0), min(box[1].stop + iterations, shape[1]))
        xs = slice(max(box[2].start - iterations, 0), min(box[2].stop + iterations, shape[2]))
        layer = out[z, ys, xs]
        mask = layer == cell
        kept = ndimage.binary_erosion(mask, iterations=iterations, border_value=1)
        if kept.any():  # never erase a whole layer: that would split the cell
            layer[mask & ~kept] = 0


def shrink_masks(
    labels: np.ndarray,
    fraction: float = 0.1,
    *,
    iterations: int = 1,
    random_state: int | np.random.RandomState | None = None,
    exclude: Iterable[int] = (),
) -> FlawedVolume:
    """Erode a random share of the cells' 2D masks (one layer of one cell each).

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    fraction : float, default=0.1
        Fraction of all non-empty (cell, layer) masks to erode.
    iterations : int, default=1
        Pixels removed from the mask's edge (2D binary erosion, cross structure).
        A mask that would vanish is left unchanged.
    random_state : int, RandomState instance or None, default=None
        Controls which masks are eroded.
    exclude : iterable of int, default=()
        Ids never eroded.

    Returns
    -------
    FlawedVolume
        Both tables are empty: shrinking changes no cell's identity.
    """
    fraction = _check_fraction(fraction, "fraction")
    iterations = _check_int(iterations, "iterations", 1)
    out, cells = _prepare(labels)
    _shrink(
        out, cells, fraction, iterations, check_random_state(random_state), _check_exclude(exclude)
    )
    return FlawedVolume(out)


def _hallucinate(
    out: np.ndarray,
    cells: _Cells,
    n_masks: int,
    radius: int,
    rng: np.random.RandomState,
    n_tries: int = 20,
) -> np.ndarray:
    out = _widen(out, cells.next_id + n_masks - 1)
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = dy**2 + dx**2 <= radius**2
    nz, ny, nx = out.shape
    for new in cells.take(n_masks):
        for _ in range(n_tries):
            z, y, x = rng.randint(nz), rng.randint(ny), rng.randint(nx)
            ys = slice(max(y - radius, 0), min(y + radius + 1, ny))
            xs = slice(max(x - radius, 0), min(x + radius + 1, nx))
            foot = disk[ys.start - y + radius : ys.stop - y + radius,
                        xs.start - x + radius : xs.stop - x + radius]  # fmt: skip
            patch = out[z, ys, xs]
            covered, counts = np.unique(patch[foot], return_counts=True)
            # Never cover a whole 2D mask: the covered cell would lose a layer.
            layer = out[z]
            if all(
                c == 0 or np.count_nonzero(layer == c) > k
                for c, k in zip(covered, counts, strict=True)
            ):
                patch[foot] = new
                break
    return out


def hallucinate_masks(
    labels: np.ndarray,
    n_masks: int = 5,
    *,
    radius: int = 3,
    random_state: int | np.random.RandomState | None = None,
) -> FlawedVolume:
    """Paint small single-layer disks with new ids, over background or cells.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    n_masks : int, default=5
        Number of disks; each gets its own new id.
    radius : int, default=3
        Disk radius in pixels (clipped at the volume border).
    random_state : int, RandomState instance or None, default=None
        Controls the positions.

    Returns
    -------
    FlawedVolume
        Both tables are empty: a hallucinated mask belongs to no cell, so there is
        nothing to merge. Its id is above the input's maximum id. A disk that would
        cover a whole 2D mask of a cell is redrawn (up to 20 times, then skipped).
    """
    n_masks = _check_int(n_masks, "n_masks", 0)
    radius = _check_int(radius, "radius", 0)
    out, cells = _prepare(labels)
    out = _hallucinate(out, cells, n_masks, radius, check_random_state(random_state))
    return FlawedVolume(out)


# ------------------------------------------------------------------ all at once


def synthesize_flaws(
    labels: np.ndarray,
    *,
    split_fraction: float = 0.3,
    blank: bool = True,
    hard_negatives: bool = True,
    tilted_fraction: float = 0.0,
    shrink_fraction: float = 0.0,
    n_hallucinations: int = 0,
    n_blank: int = 1,
    min_layers: int = 4,
    spacing: tuple[float, float, float] | float | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> FlawedVolume:
    """Apply several flaw types to one volume, each ground-truth cell in at most one.

    In order: axial splits (:func:`split_cells_axial`), hard negatives
    (:func:`blank_interfaces` with ``fraction=1``) among the untouched cells, tilted
    cuts (:func:`cut_cells_tilted`) among the still untouched cells, shrunk masks
    (:func:`shrink_masks`) of untouched cells, then hallucinated disks
    (:func:`hallucinate_masks`).

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        Ground-truth label volume, 0 = background. Not modified.
    split_fraction : float, default=0.3
        Fraction of the cells eligible for an axial split that are split.
    blank : bool, default=True
        Blank ``n_blank`` layer(s) at each axial cut (else relabel only).
    hard_negatives : bool, default=True
        Blank every blankable stacked interface among the cells not split.
    tilted_fraction : float, default=0.0
        Fraction of the remaining eligible cells cut by a tilted plane.
    shrink_fraction : float, default=0.0
        Fraction of the remaining cells' 2D masks eroded by one pixel.
    n_hallucinations : int, default=0
        Number of single-layer disks (radius 3) with new ids.
    n_blank : int, default=1
        Layers blanked per axial split.
    min_layers : int, default=4
        Minimum z-extent of a cell to be split axially.
    spacing : sequence of 3 floats, float or None, default=None
        Physical voxel size (z, y, x) for the tilt of tilted cuts; None = unit.
    random_state : int, RandomState instance or None, default=None
        One generator drives all steps in sequence, so the result is reproducible.

    Returns
    -------
    FlawedVolume
        ``merges`` stacks the axial and tilted splits; ``hard_negatives`` the blanked
        interfaces.
    """
    split_fraction = _check_fraction(split_fraction, "split_fraction")
    tilted_fraction = _check_fraction(tilted_fraction, "tilted_fraction")
    shrink_fraction = _check_fraction(shrink_fraction, "shrink_fraction")
    n_hallucinations = _check_int(n_hallucinations, "n_hallucinations", 0)
    n_blank = _check_int(n_blank, "n_blank", 1)
    min_layers = _check_int(min_layers, "min_layers", 2)
    spacing = check_spacing(spacing)
    out, cells = _prepare(labels)
    rng = check_random_state(random_state)
    used: set[int] = set()

    out, rows = _split_axial(
        out, cells, split_fraction, bool(blank), n_blank, min_layers, True, rng, used
    )
    used.update(r[0] for r in rows)
    used.update(r[1] for r in rows)
    negatives: list[tuple[int, int, int, int]] = []
    if hard_negatives:
        negatives = _blank_interfaces(out, cells, 1.0, 1, rng, used)
        used.update(r[0] for r in negatives)
        used.update(r[1] for r in negatives)
    if tilted_fraction > 0:
        out, tilted, _ = _cut_tilted(
            out, cells, tilted_fraction, 60.0, 50, spacing, 0.25, rng, used
        )
        rows += tilted
        used.update(r[0] for r in tilted)
        used.update(r[1] for r in tilted)
    if shrink_fraction > 0:
        _shrink(out, cells, shrink_fraction, 1, rng, used)
    if n_hallucinations:
        out = _hallucinate(out, cells, n_hallucinations, 3, rng)
    return FlawedVolume(out, _merge_table(rows), _negative_table(negatives))

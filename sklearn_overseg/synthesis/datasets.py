"""Synthetic plant-like tissue and the bundled demo volume.

:func:`make_tissue` draws a label volume of irregular polyhedral cells: a Voronoi
diagram of Lloyd-relaxed seeds in a space where each axis is scaled by the typical cell
diameter along it and z also by the voxel anisotropy, computed on smoothly warped
coordinates so that walls curve. The warp is a sum of Gaussian bumps with random
weights on a coarse lattice, which is separable per axis: it is evaluated on the voxel
grid with three small matrix products instead of one interpolation per voxel, and it is
the same function on the relaxation grid and on the final grid. ``mode="loose"`` carves
intercellular air spaces where three or more cells meet (small ``d2 - d1`` plus
``d3 - d1`` in seed distances), with a second smooth field that makes some regions much
airier than others, as in spongy leaf mesophyll.

:func:`find_data_dir` locates the project's folder of real ground-truth volumes (not
shipped with the package): ``OVERSEG_DATA_DIR``, else ``shared/data`` beside the
checkout. The tests, notebooks, scripts and benchmarks all find it this way.

:func:`load_demo` returns the bundled Arabidopsis ovule ground truth (PlantSeg test
data, MIT) with synthetic axial splits and hard negatives from
:func:`sklearn_overseg.synthesis.flaws.synthesize_flaws`, and the raw membrane image it was drawn
on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential
from sklearn.utils import Bunch, check_random_state

from .flaws import FlawedVolume, synthesize_flaws

__all__ = ["DATA_ENV", "find_data_dir", "load_demo", "make_tissue"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEMO_FILE = "plant_ovule_labels.tif"
DEMO_RAW_FILE = "plant_ovule_raw.tif"
DEMO_SPACING = (0.235, 0.15, 0.15)
#: Environment variable naming the real-data folder; see :func:`find_data_dir`.
DATA_ENV = "OVERSEG_DATA_DIR"
# The checkout this module was imported from (meaningless for an installed wheel, which
# is why a checkout is recognised by its pyproject.toml before it is searched).
_SOURCE_ROOT = Path(__file__).resolve().parents[2]

_DEMO_DESCRIPTION = """\
Arabidopsis thaliana ovule, ground-truth cell labels (32 x 128 x 128 voxels, 50 cells,
voxel size z, y, x = 0.235, 0.15, 0.15 um) and the raw confocal image of the
membrane stain they were drawn on (`raw`, uint8, same shape).

Source: kreshuklab/plant-seg, tests/resources/sample_ovule.h5 (MIT licence),
https://github.com/kreshuklab/plant-seg. Wolny et al., "Accurate and versatile 3D
segmentation of plant tissues at cellular resolution", eLife 9:e57613 (2020).

With flawed=True, `labels` is the ground truth with synthetic flaws from
sklearn_overseg.synthesis.flaws.synthesize_flaws(split_fraction=0.3, blank=True,
hard_negatives=True): `merges` lists the pairs to merge back, `hard_negatives` the
pairs of distinct cells made to look like blanked splits.
"""

# Mean bounding-box extent of a relaxed Voronoi cell over the cube root of its volume
# (measured on 60x200x200 volumes): lets `cell_size` mean "the extent a cell spans".
_BOX_PER_CELL_VOLUME = 1.38
_CHUNK = 1 << 18  # voxels per nearest-seed query: bounds memory, keeps numpy vectorised


# ------------------------------------------------------------------ validation


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a sequence of 3 positive ints, got {shape!r}.") from None
    if len(values) != 3 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"shape must be 3 positive ints (Z, Y, X), got {shape!r}.")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _check_positive(value: Real, name: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


# ----------------------------------------------------------------- smooth fields


class _SmoothField:
    """A random smooth scalar field on u-space: Gaussian bumps on a coarse lattice.

    ``length`` is the bump width (the correlation length) in u units. The field has
    unit standard deviation away from the lattice border.
    """

    def __init__(self, extent: np.ndarray, length: float, rng: np.random.RandomState):
        step = length / 2.0
        self.nodes = [
            np.arange(-2 * length, e + 2 * length + step, step) for e in np.asarray(extent)
        ]
        self.length = length
        self.weights = rng.standard_normal([len(n) for n in self.nodes])
        # Var = sum_k phi_k(x)^2 ~ prod over axes of sqrt(pi) * length / step.
        self.scale = (np.sqrt(np.pi) * length / step) ** -1.5

    def on_grid(self, axes: Sequence[np.ndarray]) -> np.ndarray:
        """Evaluate on the grid ``axes[0] x axes[1] x axes[2]`` (separable products)."""
        mats = [
            np.exp(-((u[:, None] - n[None, :]) ** 2) / (2 * self.length**2))
            for u, n in zip(axes, self.nodes, strict=True)
        ]
        field = np.tensordot(mats[0], self.weights, axes=(1, 0))
        field = np.tensordot(field, mats[1], axes=(1, 1))  # (z, x-nodes, y)
        field = np.tensordot(field, mats[2], axes=(1, 1))  # (z, y, x)
        return field * self.scale


def _warped_points(axes: Sequence[np.ndarray], warp: list[_SmoothField] | None, amp: float):
    """Yield (z-slab slice, points) of the warped grid in chunks of ~``_CHUNK`` points."""
    nz = len(axes[0])
    per_layer = len(axes[1]) * len(axes[2])
    step = max(1, _CHUNK // per_layer)
    for z0 in range(0, nz, step):
        sub = [axes[0][z0 : z0 + step], axes[1], axes[2]]
        grid = np.stack(np.meshgrid(*sub, indexing="ij"), axis=-1)
        if warp is not None and amp > 0:
            for a, f in enumerate(warp):
                grid[..., a] += amp * f.on_grid(sub)
        yield slice(z0, z0 + step), grid.reshape(-1, 3)


# ------------------------------------------------------------------ generator


def make_tissue(
    shape: Sequence[int] = (40, 128, 128),
    *,
    n_cells: int | None = None,
    cell_size: Sequence[float] = (6, 24, 24),
    anisotropy: float = 1.0,
    mode: str = "dense",
    wall_curvature: float = 0.15,
    background_fraction: float | None = None,
    n_relax: int = 2,
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """Generate a synthetic 3D tissue: irregular polyhedral cells with curved walls.

    Parameters
    ----------
    shape : tuple of 3 ints, default=(40, 128, 128)
        Volume shape (Z, Y, X).
    n_cells : int or None, default=None
        Number of seeds. None: as many as make the mean bounding box of a cell about
        ``cell_size``, i.e. ``1.38**3 * Z * anisotropy * Y * X / prod(cell_size)``.
        Seeds that own no voxel are dropped, so the final count can be slightly lower.
    cell_size : tuple of 3 floats, default=(6, 24, 24)
        Typical extent of a cell's bounding box along (z, y, x), in physical units where
        a y/x pixel is 1.
    anisotropy : float, default=1.0
        Physical z size of a voxel in the same units (z:y:x = anisotropy:1:1). A cell
        spans about ``cell_size[0] / anisotropy`` layers: with ``cell_size=(24, 24,
        24)`` and ``anisotropy=4`` cells are round in space and ~6 layers deep, as in
        the paper's 4:1:1 confocal stacks.
    mode : {"dense", "loose"}, default="dense"
        ``"dense"``: every voxel belongs to a cell, cells touch (like PlantSeg ground
        truth). ``"loose"``: leaf-like, cells are rounded off where three or more meet,
        leaving intercellular air spaces (background), much larger in some regions.
    wall_curvature : float, default=0.15
        Standard deviation of the smooth coordinate warp, in cell extents (correlation
        length one cell). 0 gives flat Voronoi walls; values above ~0.3 give wavy,
        markedly non-convex cells.
    background_fraction : float or None, default=None
        Share of background voxels in ``"loose"`` mode, in [0, 0.9]; None means 0.2.
        Must be None or 0 in ``"dense"`` mode.
    n_relax : int, default=2
        Lloyd relaxation steps: 0 keeps uniform random seeds (very unequal cells),
        1 or 2 give the fairly regular cells of real tissue.
    random_state : int, RandomState instance or None, default=None
        Controls seeds, weights and warps.

    Returns
    -------
    labels : ndarray of uint32, shape (Z, Y, X)
        Cell ids ``1..n`` (consecutive), 0 = background. Each cell is one
        face-connected piece: stray fragments left by the warp are given to the
        neighbouring cell (dense) or to background (loose).

    Examples
    --------
    >>> from sklearn_overseg.synthesis.datasets import make_tissue
    >>> labels = make_tissue((20, 64, 64), random_state=0)
    >>> labels.shape, labels.dtype.name, bool(labels.min() > 0)
    ((20, 64, 64), 'uint32', True)
    """
    shape = _check_shape(shape)
    try:
        sizes = tuple(cell_size)
    except TypeError:
        sizes = ()
    if len(sizes) != 3:
        raise ValueError(f"cell_size must be 3 positive numbers (z, y, x), got {cell_size!r}.")
    sizes = tuple(_check_positive(s, "cell_size values") for s in sizes)
    anisotropy = _check_positive(anisotropy, "anisotropy")
    wall_curvature = _check_positive(wall_curvature, "wall_curvature", allow_zero=True)
    if mode not in ("dense", "loose"):
        raise ValueError(f"mode must be 'dense' or 'loose', got {mode!r}.")
    if background_fraction is None:
        background_fraction = 0.2 if mode == "loose" else 0.0
    background_fraction = _check_positive(
        background_fraction, "background_fraction", allow_zero=True
    )
    if background_fraction > 0.9:
        raise ValueError(f"background_fraction must be in [0, 0.9], got {background_fraction!r}.")
    if mode == "dense" and background_fraction > 0:
        raise ValueError(
            "background_fraction applies to mode='loose' only; dense tissue has no "
            f"background, got background_fraction={background_fraction!r}."
        )
    if isinstance(n_relax, bool) or not isinstance(n_relax, Integral) or n_relax < 0:
        raise ValueError(f"n_relax must be an integer >= 0, got {n_relax!r}.")
    n_voxels = int(np.prod(shape))
    # u-space: one unit = one typical cell diameter along every axis.
    scale = np.array([anisotropy / sizes[0], 1.0 / sizes[1], 1.0 / sizes[2]])
    extent = np.array(shape) * scale
    if n_cells is None:
        n_cells = max(1, round(float(np.prod(extent)) * _BOX_PER_CELL_VOLUME**3))
    elif isinstance(n_cells, bool) or not isinstance(n_cells, Integral) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer or None, got {n_cells!r}.")
    if n_cells > n_voxels:
        raise ValueError(f"n_cells={n_cells} exceeds the number of voxels {n_voxels}.")
    n_cells = int(n_cells)
    rng = check_random_state(random_state)

    low = -0.5 * scale
    seeds = low + rng.uniform(size=(n_cells, 3)) * extent
    warp = [_SmoothField(extent, 1.0, rng) for _ in range(3)]
    axes = [(np.arange(n) * s) for n, s in zip(shape, scale, strict=True)]

    # Lloyd relaxation on a subsampled grid (~100k points) of the same warped space.
    h = (float(np.prod(extent)) / 1e5) ** (1 / 3)
    stride = [min(n, max(1, round(h / s))) for n, s in zip(shape, scale, strict=True)]
    coarse = [a[::st] for a, st in zip(axes, stride, strict=True)]
    if n_relax:
        points = np.concatenate([p for _, p in _warped_points(coarse, warp, wall_curvature)])
        for _ in range(int(n_relax)):
            _, owner = cKDTree(seeds).query(points)
            counts = np.bincount(owner, minlength=n_cells)
            moved = counts > 0
            for a in range(3):
                sums = np.bincount(owner, weights=points[:, a], minlength=n_cells)
                seeds[moved, a] = sums[moved] / counts[moved]

    tree = cKDTree(seeds)
    labels = np.empty(shape, dtype=np.uint32)
    loose = mode == "loose" and background_fraction > 0
    score = np.empty(shape, dtype=np.float32) if loose else None
    for zs, points in _warped_points(axes, warp, wall_curvature):
        slab = labels[zs]
        if loose:
            dist, owner = tree.query(points, k=min(3, n_cells))
            dist = dist.reshape(len(points), -1)
            owner = owner.reshape(len(points), -1)[:, 0]
            # Small near walls (d2 - d1) and much smaller near edges and corners (d3 - d1).
            score[zs] = (dist[:, 1:] - dist[:, :1]).sum(axis=1).reshape(slab.shape)
        else:
            _, owner = tree.query(points)
        slab[...] = (owner + 1).reshape(slab.shape)

    if loose:
        airiness = _SmoothField(extent, 2.0, rng).on_grid(axes)
        score += 0.15 * airiness.astype(np.float32)
        k = round(background_fraction * n_voxels)
        if k > 0:
            threshold = np.partition(score.ravel(), k - 1)[k - 1]
            labels[score <= threshold] = 0

    labels = _single_pieces(labels, fill=mode == "dense", sampling=1.0 / scale)
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(np.uint32, copy=False)


def _single_pieces(labels: np.ndarray, *, fill: bool, sampling: np.ndarray) -> np.ndarray:
    """Keep each id's largest face-connected piece; give the others away.

    ``fill=True`` hands stray voxels to the nearest kept voxel's cell (dense tissue has
    no background); ``fill=False`` turns them into background.
    """
    pieces = connected_components(labels, background=0, connectivity=1)
    n_pieces = int(pieces.max())
    owner = np.zeros(n_pieces + 1, dtype=np.int64)
    owner[pieces.ravel()] = labels.ravel()
    if n_pieces == len(np.unique(owner[1:])):
        return labels
    size = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    order = np.lexsort((size[1:], owner[1:])) + 1  # by id, then size ascending
    last_of_id = np.r_[owner[order][1:] != owner[order][:-1], True]
    keep = np.zeros(n_pieces + 1, dtype=bool)
    keep[order[last_of_id]] = True
    stray = ~keep[pieces]
    stray &= labels > 0
    labels = labels.copy()
    if fill:
        # Nearest kept voxel in physical units; background is absent in dense tissue.
        index = ndimage.distance_transform_edt(
            stray, sampling=sampling, return_distances=False, return_indices=True
        )
        labels[stray] = labels[tuple(i[stray] for i in index)]
    else:
        labels[stray] = 0
    return labels


# ------------------------------------------------------------------ demo volume


def load_demo(flawed: bool = True, random_state: int | np.random.RandomState | None = 0) -> Bunch:
    """Load the bundled Arabidopsis ovule ground truth, optionally with synthetic flaws.

    Parameters
    ----------
    flawed : bool, default=True
        Return the ground truth with 30 % of the tall cells split along z with a
        blanked layer, plus every blankable stacked interface blanked as a hard
        negative (:func:`sklearn_overseg.synthesis.flaws.synthesize_flaws`).
    random_state : int, RandomState instance or None, default=0
        Seed of the flaws.

    Returns
    -------
    Bunch
        ``labels`` (Z, Y, X) flawed volume (the ground truth itself when
        ``flawed=False``); ``ground_truth``; ``raw``, the membrane-stain image
        (uint8, same shape; bright walls, dark cell interiors) the ground truth was
        drawn on, e.g. to segment it yourself; ``spacing`` (z, y, x) in µm; ``merges``
        and ``hard_negatives`` (the truth tables, empty when not flawed);
        ``description`` with the data's origin and licence.
    """
    import tifffile

    paths = [DATA_DIR / name for name in (DEMO_FILE, DEMO_RAW_FILE)]
    for path in paths:
        if not path.is_file():  # pragma: no cover - broken installation
            raise FileNotFoundError(f"demo volume {path} is missing from the installation.")
    with tifffile.TiffFile(paths[0]) as tif:
        ground_truth = tif.asarray()
        meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    raw = tifffile.imread(paths[1])
    spacing = tuple(float(s) for s in meta.get("spacing_zyx_um", DEMO_SPACING))
    if flawed:
        result = synthesize_flaws(
            ground_truth,
            split_fraction=0.3,
            blank=True,
            hard_negatives=True,
            random_state=random_state,
        )
        labels, merges, negatives = result.labels, result.merges, result.hard_negatives
    else:
        result = FlawedVolume(ground_truth.copy())  # empty, typed truth tables
        labels, merges, negatives = result.labels, result.merges, result.hard_negatives
    return Bunch(
        labels=labels,
        ground_truth=ground_truth,
        raw=raw,
        spacing=spacing,
        merges=merges,
        hard_negatives=negatives,
        description=_DEMO_DESCRIPTION,
    )


# ------------------------------------------------------------------ real-data folder


def _beside_checkouts(start: str | os.PathLike | None = None) -> list[Path]:
    """Where :func:`find_data_dir` looks when ``OVERSEG_DATA_DIR`` is not set, in order."""
    bases = []
    if (_SOURCE_ROOT / "pyproject.toml").is_file():
        bases.append(_SOURCE_ROOT)
    bases.append(Path.cwd() if start is None else Path(start))
    candidates: list[Path] = []
    for base in bases:
        candidate = (base.resolve().parent / "shared" / "data").resolve()
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def find_data_dir(start: str | os.PathLike | None = None, *, required: bool = False) -> Path | None:
    """Locate the folder of real ground-truth volumes (``plant_tissue_a/``, ...).

    The folder is not part of the package. It is looked for, in this order:

    1. ``$OVERSEG_DATA_DIR``, when that variable is set and not empty;
    2. ``shared/data`` beside the source checkout this package was imported from (a
       clone at ``work/repo`` finds ``work/shared/data``);
    3. ``shared/data`` beside ``start`` (default: the current directory), so that
       ``python scripts/...`` run from the root of a clone finds ``../shared/data``.

    Parameters
    ----------
    start : str or path-like, default=None
        Folder whose sibling ``shared/data`` is tried last. ``None`` means the current
        directory; a notebook in ``notebooks/`` passes ``".."``.
    required : bool, default=False
        Raise instead of returning ``None`` when no folder is found.

    Returns
    -------
    Path or None
        The absolute path of the folder, or ``None`` when there is none and
        ``required`` is false.

    Raises
    ------
    FileNotFoundError
        If ``OVERSEG_DATA_DIR`` is set but is not a directory (a path chosen on purpose
        that does not exist is a mistake to report, not a reason to look elsewhere), or
        if ``required`` is true and no folder is found.
    """
    value = os.environ.get(DATA_ENV, "")
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{DATA_ENV}={value!r} is not a directory: point it at the folder that "
                "holds plant_tissue_a/, plant_ovule/, ... or unset it."
            )
        return path.resolve()
    candidates = _beside_checkouts(start)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if required:
        looked = ", ".join(str(c) for c in candidates)
        raise FileNotFoundError(
            f"no real-data folder: set {DATA_ENV} to the folder that holds "
            f"plant_tissue_a/, plant_ovule/, ... (looked for shared/data beside the "
            f"checkout: {looked})."
        )
    return None

"""Synthetic per-slice segmentation, stitched: the flaws that 2D→3D pipelines really make.

:func:`synthesize_stitched` turns a ground-truth volume into what a per-layer 2D
segmenter followed by IoU stitching (:func:`~sklearn_overseg.stitch.stitch_slices`)
produces. Each layer's cross-sections become 2D masks (one per connected piece) with a
segmenter's typical faults, then the layers are linked:

* masks smaller than ``min_area`` pixels are lost (cell tips vanish);
* a fraction ``miss_rate`` of the masks is missed (gaps of one or more layers);
* a fraction ``boundary_rate`` has its boundary eroded or dilated (into background) by
  one pixel, which lowers the IoU of consecutive masks and breaks links;
* a fraction ``cut_rate`` of the cross-sections is cut in two by a random line through
  its centroid (pieces of one cell that share a layer).

Stitching then leaves one-layer fragments, gaps, chains of pieces and in-layer pieces,
the mix that :class:`~sklearn_overseg.SegmentationCorrector` has to repair. Every
setting may be given as a ``(low, high)`` range, from which one value is drawn per call,
so a training set covers a whole grid of segmenter qualities.

The truth of such a volume is not a list of synthetic merges but the ground truth
itself: a label's **owner** is the ground-truth cell holding most of its voxels
(:func:`~sklearn_overseg.synthesis.training.majority_labels`), and candidates are labelled by
whether both labels have the same owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import label as label_components
from sklearn.utils import check_random_state

from .._validation import check_label_volume
from ..stitch import stitch_slices

__all__ = [
    "STITCHED_FAULTS",
    "StitchedVolume",
    "make_stitched_training_table",
    "segment_layers",
    "stitched_screener",
    "synthesize_stitched",
]

_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


@dataclass(frozen=True)
class StitchedVolume:
    """A synthetic stitched segmentation and the ground truth it came from.

    Parameters
    ----------
    labels : ndarray of shape (Z, Y, X)
        The stitched 3D labels.
    ground_truth : ndarray of shape (Z, Y, X)
        The ground truth at the same z-sampling (a view of the input when not
        subsampled).
    slices : ndarray of shape (Z, Y, X)
        The per-layer 2D masks before stitching (ids unique over the whole stack).
    settings : dict
        The fault settings drawn for this volume.
    """

    labels: np.ndarray
    ground_truth: np.ndarray
    slices: np.ndarray
    settings: dict = field(default_factory=dict)


def _draw(
    value: Any,
    name: str,
    rng: np.random.RandomState,
    *,
    integer: bool,
    low: float,
    high: float | None,
) -> float:
    """One value from a number or a ``(low, high)`` range, checked against bounds."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) range, got {value!r}.")
        lo, hi = value
        _draw(lo, name, rng, integer=integer, low=low, high=high)
        _draw(hi, name, rng, integer=integer, low=low, high=high)
        if lo > hi:
            raise ValueError(f"{name} range {value!r} has low > high.")
        return int(rng.randint(int(lo), int(hi) + 1)) if integer else float(rng.uniform(lo, hi))
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be a number or a (low, high) range, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}.")
    return int(value) if integer else float(value)


def _cut_in_two(
    slices: np.ndarray, mask_ids: np.ndarray, next_id: int, rng: np.random.RandomState
) -> int:
    """Cut each listed 2D mask by a random line through its centroid; returns the next id."""
    boxes = ndimage.find_objects(slices)
    for mask_id in mask_ids:
        box = boxes[int(mask_id) - 1]
        if box is None:
            continue
        crop = slices[box]
        inside = crop == mask_id
        zs, ys, xs = np.nonzero(inside)
        angle = rng.uniform(0, np.pi)
        side = (ys - ys.mean()) * np.cos(angle) - (xs - xs.mean()) * np.sin(angle) > 0
        if side.all() or not side.any():
            continue
        crop[zs[side], ys[side], xs[side]] = next_id
        next_id += 1
    return next_id


def _check_setting(value: Any, name: str, *, integer: bool, high: float | None) -> float:
    """One fixed setting, checked like a drawn one; ranges belong to synthesize_stitched."""
    if isinstance(value, (tuple, list)):
        raise TypeError(
            f"{name} must be a number here, got {value!r}; (low, high) ranges are drawn "
            "by synthesize_stitched."
        )
    # A single number draws nothing: no generator is needed.
    return _draw(value, name, None, integer=integer, low=0, high=high)  # type: ignore[arg-type]


def segment_layers(
    ground_truth: Any,
    *,
    min_area: int = 20,
    miss_rate: float = 0.03,
    boundary_rate: float = 0.3,
    cut_rate: float = 0.02,
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """Per-layer 2D masks of a ground truth with a 2D segmenter's typical faults.

    Parameters
    ----------
    ground_truth : array-like of int, shape (Z, Y, X)
        Ground-truth labels, 0 = background. Never modified.
    min_area : int, default=20
        Masks smaller than this (in pixels, after the other faults) are lost.
    miss_rate : float, default=0.03
        Fraction of masks missed entirely.
    boundary_rate : float, default=0.3
        Fraction of masks eroded or dilated (into background), half each, by one pixel.
    cut_rate : float, default=0.02
        Fraction of masks cut in two by a random line through the centroid.
    random_state : int, RandomState or None

    Returns
    -------
    slices : ndarray of shape (Z, Y, X), dtype int64
        One id per 2D mask, unique over the stack (so ids never repeat across layers),
        0 = background.

    Raises
    ------
    TypeError
        If a setting is not a number (ranges are for :func:`synthesize_stitched`).
    ValueError
        If a rate is outside ``[0, 1]`` or ``min_area`` is negative.
    """
    gt = check_label_volume(ground_truth, name="ground_truth")
    min_area = _check_setting(min_area, "min_area", integer=True, high=None)
    miss_rate = _check_setting(miss_rate, "miss_rate", integer=False, high=1)
    boundary_rate = _check_setting(boundary_rate, "boundary_rate", integer=False, high=1)
    cut_rate = _check_setting(cut_rate, "cut_rate", integer=False, high=1)
    rng = check_random_state(random_state)
    # Every connected piece of a cross-section is its own 2D mask, as a 2D segmenter sees it.
    slices = np.zeros(gt.shape, dtype=np.int64)
    next_id = 1
    for z in range(gt.shape[0]):
        layer, n = label_components(gt[z], background=0, connectivity=1, return_num=True)
        slices[z] = np.where(layer > 0, layer + (next_id - 1), 0)
        next_id += n
    n_masks = next_id - 1
    if n_masks == 0:
        return slices
    draw = rng.uniform(size=(3, n_masks + 1))
    cut = np.flatnonzero(draw[0, 1:] < cut_rate) + 1
    next_id = _cut_in_two(slices, cut, next_id, rng)
    # Boundary faults drawn per original mask; the new piece of a cut mask keeps its shape.
    fate = np.zeros(next_id, dtype=np.int8)  # -1 erode, +1 dilate
    changed = draw[1] < boundary_rate
    fate[: n_masks + 1][changed] = np.where(draw[2][changed] < 0.5, -1, 1)
    fate[0] = 0
    eroding = fate[slices] == -1
    if eroding.any():
        # A pixel whose in-plane neighbours all carry its id is interior.
        interior = ndimage.minimum_filter(slices, footprint=_IN_PLANE, mode="nearest") == (
            ndimage.maximum_filter(slices, footprint=_IN_PLANE, mode="nearest")
        )
        slices[eroding & ~interior] = 0
    dilating = np.where(fate[slices] == 1, slices, 0)
    if dilating.any():
        grown = ndimage.maximum_filter(dilating, footprint=_IN_PLANE, mode="constant")
        background = slices == 0
        slices[background] = grown[background]
    keep = np.ones(next_id, dtype=bool)
    keep[1 : n_masks + 1] &= rng.uniform(size=n_masks) >= miss_rate
    area = np.bincount(slices.ravel(), minlength=next_id)
    keep &= area >= min_area
    keep[0] = True
    slices[~keep[slices]] = 0
    return slices


def synthesize_stitched(
    ground_truth: Any,
    *,
    min_area: int | tuple[int, int] = 20,
    miss_rate: float | tuple[float, float] = 0.03,
    boundary_rate: float | tuple[float, float] = 0.3,
    cut_rate: float | tuple[float, float] = 0.02,
    iou_threshold: float | tuple[float, float] = 0.25,
    z_subsample: int | tuple[int, int] = 1,
    phase: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> StitchedVolume:
    """What a per-slice 2D segmenter plus IoU stitching would make of a ground truth.

    Every fault setting is a number or a ``(low, high)`` range from which one value is
    drawn (integers for ``min_area`` and ``z_subsample``). The grid the shipped model
    is trained and tested on: miss rates 0–0.1, minimum areas 10–60 px, IoU thresholds
    0.1–0.5, z-subsampling 1–4.

    Parameters
    ----------
    ground_truth : array-like of int, shape (Z, Y, X)
        Ground-truth labels, 0 = background. Never modified.
    min_area : int or (int, int), default=20
        Masks smaller than this many pixels are lost.
    miss_rate : float or (float, float), default=0.03
        Fraction of 2D masks missed.
    boundary_rate : float or (float, float), default=0.3
        Fraction of 2D masks eroded or dilated by a pixel.
    cut_rate : float or (float, float), default=0.02
        Fraction of 2D masks cut in two.
    iou_threshold : float or (float, float), default=0.25
        Stitching threshold (see :func:`~sklearn_overseg.stitch.stitch_slices`).
    z_subsample : int or (int, int), default=1
        Keep every k-th layer first (``k=4`` turns an isotropic stack into a 4:1:1 one).
    phase : int, optional
        First layer kept when subsampling; drawn in ``[0, k)`` when None.
    random_state : int, RandomState or None

    Returns
    -------
    StitchedVolume

    Examples
    --------
    >>> from sklearn_overseg import make_tissue, synthesize_stitched
    >>> gt = make_tissue(shape=(24, 64, 64), random_state=0)
    >>> result = synthesize_stitched(gt, miss_rate=(0.0, 0.1), random_state=0)
    >>> result.labels.shape == result.ground_truth.shape
    True
    """
    gt = check_label_volume(ground_truth, name="ground_truth")
    rng = check_random_state(random_state)
    settings = {
        "min_area": _draw(min_area, "min_area", rng, integer=True, low=0, high=None),
        "miss_rate": _draw(miss_rate, "miss_rate", rng, integer=False, low=0, high=1),
        "boundary_rate": _draw(boundary_rate, "boundary_rate", rng, integer=False, low=0, high=1),
        "cut_rate": _draw(cut_rate, "cut_rate", rng, integer=False, low=0, high=1),
        "iou_threshold": _draw(iou_threshold, "iou_threshold", rng, integer=False, low=0, high=1),
        "z_subsample": _draw(z_subsample, "z_subsample", rng, integer=True, low=1, high=None),
    }
    if settings["iou_threshold"] <= 0:
        raise ValueError("iou_threshold must be > 0.")
    k = settings["z_subsample"]
    if phase is None:
        phase = int(rng.randint(k))
    elif isinstance(phase, bool) or not isinstance(phase, Integral) or not 0 <= phase < k:
        raise ValueError(f"phase must be an integer in [0, {k}), got {phase!r}.")
    settings["phase"] = int(phase)
    sub = gt[phase::k]
    if sub.shape[0] == 0:
        raise ValueError(f"z_subsample={k} with phase {phase} leaves no layer of {gt.shape[0]}.")
    slices = segment_layers(
        sub,
        min_area=settings["min_area"],
        miss_rate=settings["miss_rate"],
        boundary_rate=settings["boundary_rate"],
        cut_rate=settings["cut_rate"],
        random_state=rng,
    )
    labels = stitch_slices(slices, iou_threshold=settings["iou_threshold"], relabel_layers=True)
    return StitchedVolume(labels=labels, ground_truth=sub, slices=slices, settings=settings)


#: Fault ranges of :func:`make_stitched_training_table` (the grid of the shipped model).
STITCHED_FAULTS: dict[str, tuple[float, float]] = {
    "min_area": (10, 60),
    "miss_rate": (0.0, 0.1),
    "boundary_rate": (0.0, 0.5),
    "cut_rate": (0.0, 0.05),
    "iou_threshold": (0.1, 0.5),
}


def stitched_screener(max_gap: int = 3):
    """The screening of the shipped model: every kind of piece a stitched volume holds.

    ``CombinedScreener(axial=AxialGapScreener(max_gap=max_gap), contact="drop",
    lateral=LateralScreener(max_distance=2, footprint=True))``: pairs across up to
    ``max_gap`` missing layers (lost links, one-layer fragments, missed masks) and pieces
    that share a layer, touching, one pixel apart or one in the other's footprint (a
    cross-section cut in two). ``overseg correct --screen axial``, the training recipe
    and :func:`make_stitched_training_table` all use it.

    Parameters
    ----------
    max_gap : int, default=3
        Most missing layers between the two pieces of an axial pair.

    Returns
    -------
    screener : CombinedScreener
    """
    from ..screening.axial import AxialGapScreener
    from ..screening.contact import CombinedScreener
    from ..screening.lateral import LateralScreener

    return CombinedScreener(
        axial=AxialGapScreener(max_gap=max_gap),
        contact="drop",
        lateral=LateralScreener(max_distance=2, footprint=True),
    )


def make_stitched_training_table(
    volumes: Any,
    *,
    screener: Any = None,
    n_repeats: int = 2,
    z_subsample: Any = (1,),
    faults: dict | None = None,
    spacing: Any = None,
    random_state: int | np.random.RandomState | None = None,
):
    """Labelled candidates from stitched versions of ground-truth volumes.

    For every volume, subsampling factor and repeat, one draw of
    :func:`synthesize_stitched` (fault settings drawn from ``faults``, every second
    repeat upside down) is screened, and each candidate is labelled 1 when both of its
    labels are owned by the same ground-truth cell
    (:func:`~sklearn_overseg.synthesis.training.majority_labels`).

    Parameters
    ----------
    volumes : list of ndarray, dict of str to ndarray, or one 3D ndarray
        Ground-truth label volumes (Z, Y, X).
    screener : screener, optional
        Anything with ``screen(volume, volume_id=..., spacing=...)``; defaults to
        :func:`stitched_screener`, the screening of the shipped model.
    n_repeats : int, default=2
        Draws per volume and subsampling factor.
    z_subsample : sequence of int, default=(1,)
        Subsampling factors; the phase of each draw is random.
    faults : dict, optional
        Fault settings or ``(low, high)`` ranges passed to :func:`synthesize_stitched`;
        defaults to :data:`STITCHED_FAULTS`.
    spacing : tuple of float, optional
        Voxel size of the native volumes; z is multiplied by the subsampling factor.
    random_state : int, RandomState or None

    Returns
    -------
    table : DataFrame
        Candidate table; ``volume`` is ``"<name>/stitched-z<k>/r<repeat>"``.
    y : Series of int
        1 = two pieces of one cell, 0 = two cells.

    Examples
    --------
    >>> from sklearn_overseg import make_tissue
    >>> from sklearn_overseg.synthesis.stitched_flaws import make_stitched_training_table
    >>> gt = make_tissue(shape=(24, 64, 64), random_state=0)
    >>> table, y = make_stitched_training_table([gt], n_repeats=1, random_state=0)
    >>> len(table) == len(y) and set(y) <= {0, 1}
    True
    """
    import pandas as pd

    from .._validation import check_spacing
    from ..screening.candidates import concat_tables
    from .training import label_candidates, majority_labels

    if isinstance(n_repeats, bool) or not isinstance(n_repeats, Integral) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1, got {n_repeats!r}.")
    if screener is None:
        screener = stitched_screener()
    if spacing is not None:
        spacing = check_spacing(spacing)
    faults = dict(STITCHED_FAULTS if faults is None else faults)
    if isinstance(volumes, np.ndarray) and volumes.ndim == 3:
        volumes = [volumes]
    items = volumes.items() if isinstance(volumes, Mapping) else enumerate(volumes)
    rng = check_random_state(random_state)
    tables, labels = [], []
    for name, gt in items:
        gt = check_label_volume(gt, name=f"ground truth {name!r}")
        for k in z_subsample:
            k = int(k)
            sub_spacing = None if spacing is None else (spacing[0] * k, spacing[1], spacing[2])
            for rep in range(n_repeats):
                # Upside down every second draw: cell tops become bottoms.
                source = gt[::-1] if rep % 2 else gt
                stitched = synthesize_stitched(
                    source, z_subsample=k, random_state=rng.randint(2**31 - 1), **faults
                )
                key = f"{name}/stitched-z{k}/r{rep}"
                table = screener.screen(stitched.labels, volume_id=key, spacing=sub_spacing)
                if len(table) == 0:
                    continue
                owners = majority_labels(stitched.labels, stitched.ground_truth)
                tables.append(table)
                labels.append(label_candidates(table, owners))
    table = concat_tables(tables)
    y = pd.concat(labels) if labels else pd.Series([], dtype=np.int64, name="same_cell")
    return table, y

"""Labelled candidate tables for training and evaluation.

Training pairs come from ground-truth volumes: flaws are synthesised
(:mod:`sklearn_overseg.synthesis.flaws`), the flawed volume is screened exactly as a user's volume
would be, and every candidate is labelled by majority overlap with the ground truth. This
one labelling rule covers all the paper's sources at once: synthetic positives (a layer
removed), natural-gap negatives (screening run on ground truth finds them as well), and
the hard negatives of blanked stacked-cell interfaces. It also labels a user's own
flawed volumes against their ground truth (``SegmentationCorrector.fit(X, y)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._validation import check_label_volume, check_spacing
from ..screening.candidates import concat_tables
from .flaws import synthesize_flaws

__all__ = ["label_candidates", "majority_labels", "make_training_table"]


def majority_labels(flawed: np.ndarray, ground_truth: np.ndarray) -> dict[int, int]:
    """Map every id of ``flawed`` to the ground-truth id it overlaps most (0 = background).

    Parameters
    ----------
    flawed, ground_truth : ndarray of int, shape (Z, Y, X)
        Label volumes of identical shape.

    Returns
    -------
    mapping : dict of int to int
    """
    flawed = check_label_volume(flawed, name="flawed volume", allow_empty=True)
    ground_truth = check_label_volume(ground_truth, name="ground truth", allow_empty=True)
    if flawed.shape != ground_truth.shape:
        raise ValueError(
            f"flawed volume {flawed.shape} and ground truth {ground_truth.shape} differ in shape."
        )
    inside = flawed != 0
    pred = flawed[inside].astype(np.uint64)
    true = ground_truth[inside].astype(np.uint64)
    pred_ids, pred_inv = np.unique(pred, return_inverse=True)
    true_ids, true_inv = np.unique(true, return_inverse=True)
    keys = pred_inv.astype(np.int64) * len(true_ids) + true_inv
    pair_keys, counts = np.unique(keys, return_counts=True)
    p = pair_keys // len(true_ids)
    t = pair_keys % len(true_ids)
    # Sort by (pred, count desc, true id) so the first row per pred is its majority.
    order = np.lexsort((true_ids[t], -counts, p))
    first = np.ones(len(order), dtype=bool)
    first[1:] = p[order][1:] != p[order][:-1]
    best = order[first]
    return {int(pred_ids[p[i]]): int(true_ids[t[i]]) for i in best}


def label_candidates(table: pd.DataFrame, mapping: Mapping[int, int]) -> pd.Series:
    """Label candidates: 1 when A and B overlap the same ground-truth cell most.

    Parameters
    ----------
    table : DataFrame
        Candidate table of one volume.
    mapping : mapping of int to int
        Output of :func:`majority_labels` for that volume.

    Returns
    -------
    y : Series of int, aligned with ``table.index``
    """
    gt_a = table["cell_a"].map(mapping).fillna(0).astype(np.int64)
    gt_b = table["cell_b"].map(mapping).fillna(0).astype(np.int64)
    y = ((gt_a == gt_b) & (gt_a != 0)).astype(np.int64)
    y.name = "same_cell"
    return y


def _variants(z_subsample, all_phases: bool, flip_z: bool):
    for k in z_subsample:
        k = int(k)
        if k < 1:
            raise ValueError(f"z_subsample factors must be >= 1, got {k}.")
        for phase in range(k if all_phases else 1):
            for flip in (False, True) if flip_z else (False,):
                yield k, phase, flip


def make_training_table(
    volumes: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    *,
    screener=None,
    split_fraction: float = 0.3,
    n_repeats: int = 2,
    relabel_fraction: float = 0.25,
    hard_negatives: bool = True,
    tilted_fraction: float = 0.0,
    z_subsample: Sequence[int] = (1,),
    all_phases: bool = True,
    flip_z: bool = True,
    spacing=None,
    random_state=None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Build a labelled candidate table from ground-truth volumes.

    For every volume, every z-subsampling factor and every repeat, cells are split
    (a blanked layer, or a relabel at a z plane for ``relabel_fraction`` of repeats'
    splits), blankable stacked-cell interfaces are blanked as hard negatives, the
    result is screened and each candidate labelled by majority overlap.

    Parameters
    ----------
    volumes : list of ndarray, dict of str to ndarray, or one 3D ndarray
        Ground-truth label volumes (Z, Y, X).
    screener : AxialGapScreener, optional
        Defaults to ``AxialGapScreener()``.
    split_fraction : float, default=0.3
        Fraction of tall cells split per repeat.
    n_repeats : int, default=2
        Independent flaw draws per volume and subsampling factor.
    relabel_fraction : float, default=0.25
        Fraction of repeats (rounded, and at least one when ``n_repeats >= 2``) whose
        splits relabel without blanking (gap 0); those are the first repeats, the later
        ones blank a layer.
    hard_negatives : bool, default=True
        Also blank stacked-cell interfaces.
    tilted_fraction : float, default=0.0
        Fraction of cells cut by a random tilted plane (the 3D-segmenter error); use
        with a :class:`~sklearn_overseg.screening.contact.ContactScreener`, for which every other
        touching pair is a negative.
    z_subsample : sequence of int, default=(1,)
        Take every k-th layer, e.g. ``(1, 4)`` trains for native and 4:1:1 stacks.
    all_phases : bool, default=True
        For ``k > 1`` use every phase (``gt[0::k]``, ``gt[1::k]``, ...): each phase
        cuts the cells at other depths, so a small ground truth yields k distinct
        anisotropic volumes.
    flip_z : bool, default=True
        Also use each volume upside down; tissue has no preferred z direction, and
        the flip turns every cell top into a cell bottom.
    spacing : tuple of float, optional
        Voxel size of the native volumes; z is multiplied by the subsampling factor.
    random_state : int, RandomState or None

    Returns
    -------
    table : DataFrame
        Candidate table; ``volume`` is ``"<name>/z<k>p<phase>[f]/r<repeat>"`` (``f``
        for flipped), so ``GroupKFold`` can keep one draw together.
    y : Series of int
        1 = one cell wrongly split, 0 = two cells.
    """
    from ..screening.axial import AxialGapScreener

    if not isinstance(n_repeats, Integral) or isinstance(n_repeats, bool) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1, got {n_repeats!r}.")
    if not isinstance(relabel_fraction, Real) or not 0 <= relabel_fraction <= 1:
        raise ValueError(f"relabel_fraction must be in [0, 1], got {relabel_fraction!r}.")
    if spacing is not None:
        spacing = check_spacing(spacing)
    if isinstance(volumes, np.ndarray) and volumes.ndim == 3:
        volumes = [volumes]  # one volume, not a list of 2D layers
    screener = screener if screener is not None else AxialGapScreener()
    rng = check_random_state(random_state)
    items = volumes.items() if isinstance(volumes, Mapping) else enumerate(volumes)
    tables, labels = [], []
    n_relabel = round(relabel_fraction * n_repeats)
    if relabel_fraction > 0 and n_repeats >= 2:
        # Rounding must not silently remove gap-0 positives from small trainings.
        n_relabel = max(n_relabel, 1)
    for name, gt in items:
        gt = check_label_volume(gt, name=f"ground truth {name!r}")
        for k, phase, flip in _variants(z_subsample, all_phases, flip_z):
            sub = gt[phase :: int(k)]
            if flip:
                sub = sub[::-1]
            sub_spacing = None
            if spacing is not None:
                sub_spacing = (spacing[0] * k, spacing[1], spacing[2])
            for rep in range(n_repeats):
                flawed = synthesize_flaws(
                    sub,
                    split_fraction=split_fraction,
                    blank=rep >= n_relabel,
                    hard_negatives=hard_negatives,
                    tilted_fraction=tilted_fraction,
                    spacing=sub_spacing,
                    random_state=rng.randint(2**31 - 1),
                )
                key = f"{name}/z{k}p{phase}{'f' if flip else ''}/r{rep}"
                table = screener.screen(flawed.labels, volume_id=key, spacing=sub_spacing)
                if len(table) == 0:
                    continue
                tables.append(table)
                labels.append(label_candidates(table, majority_labels(flawed.labels, sub)))
    table = concat_tables(tables)
    y = pd.concat(labels) if labels else pd.Series([], dtype=np.int64, name="same_cell")
    return table, y

"""Undo rejected merges: rebuild a corrected volume from the merges a user accepts.

:meth:`~sklearn_overseg.correction.corrector.SegmentationCorrector.correct` returns the corrected
volume and one decision row per candidate. A reviewer then accepts or rejects each merge.
Rather than patching the corrected volume in place (which cannot undo a merge that later
merges built on), the output is recomputed from the *original* volume:

1. the corrector's union-find is replayed over the accepted merges only, in the order the
   corrector applied them, so a chain A–B–C with A–B rejected gives {A}, {B, C};
2. every original cell is relabelled to the root of its accepted group;
3. the voxels an accepted axial merge filled into its gap are copied from the corrected
   volume, relabelled to the group's new root. Rejected fills are simply not copied.

Accepting every merge gives back the corrected volume; accepting none, the original.

Everything here is pure NumPy/pandas so that it is tested without napari.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .._validation import check_label_volume

__all__ = ["apply_decisions", "review_order"]

#: Decision-table columns :func:`apply_decisions` reads.
REQUIRED_COLUMNS = (
    "cell_a",
    "cell_b",
    "kind",
    "gap",
    "z_a_last",
    "z_b_first",
    "merged",
    "merged_into",
    "filled_voxels",
)


def _check_decisions(decisions) -> None:
    if not isinstance(decisions, pd.DataFrame):
        raise TypeError(
            "decisions must be the DataFrame returned by correct(), got "
            f"{type(decisions).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(
            f"decisions lacks the column(s) {missing}; pass the table returned by "
            "SegmentationCorrector.correct()."
        )
    if not decisions.index.is_unique:
        dup = decisions.index[decisions.index.duplicated()][0]
        raise ValueError(f"decisions has a duplicated candidate id {dup!r}.")


def _check_accepted(accepted_ids, decisions: pd.DataFrame) -> set:
    if isinstance(accepted_ids, (str, bytes)) or not isinstance(accepted_ids, Iterable):
        raise TypeError(
            "accepted_ids must be a collection of candidate ids (the decisions' index), "
            f"got {type(accepted_ids).__name__} {accepted_ids!r}."
        )
    accepted = set(accepted_ids)
    unknown = sorted(map(str, accepted - set(decisions.index)))
    if unknown:
        raise ValueError(f"accepted_ids holds id(s) not in decisions: {unknown[:5]}.")
    not_merged = sorted(str(i) for i in accepted if not bool(decisions.at[i, "merged"]))
    if not_merged:
        raise ValueError(
            f"accepted_ids holds candidate(s) the corrector did not merge: {not_merged[:5]}; "
            "only merges it made (merged=True) can be accepted or rejected."
        )
    return accepted


def _merge_order(rows: pd.DataFrame) -> pd.DataFrame:
    # The corrector merges top to bottom (z_a_last, then cell_b); replaying in the same
    # order gives the same group roots, so accepting everything reproduces its labels.
    order = np.lexsort((rows["cell_b"].to_numpy(), rows["z_a_last"].to_numpy()))
    return rows.iloc[order]


def _replay(rows: pd.DataFrame) -> dict[int, int]:
    """Union-find over ``(cell_a, cell_b)`` rows; returns cell → root for merged cells."""
    parent: dict[int, int] = {}

    def find(label: int) -> int:
        while parent.get(label, label) != label:
            label = parent[label]
        return label

    for a, b in zip(rows["cell_a"].to_numpy(), rows["cell_b"].to_numpy(), strict=True):
        root_a, root_b = find(int(a)), find(int(b))
        if root_a != root_b:
            parent[root_b] = root_a
    return {cell: find(cell) for cell in parent}


def _relabel(volume: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """A copy of ``volume`` with each key of ``mapping`` replaced by its value."""
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return np.array(volume, copy=True)
    src = np.array(sorted(mapping), dtype=np.int64)
    dst = np.array([mapping[int(s)] for s in src]).astype(volume.dtype)
    # searchsorted instead of a dense lookup table: label ids may be huge (uint64 hashes).
    pos = np.minimum(np.searchsorted(src, volume), len(src) - 1)
    hit = src[pos] == volume
    return np.where(hit, dst[pos], volume)


def _filled_region(row, original, corrected, full_roots) -> tuple[tuple[slice, ...], np.ndarray]:
    """Where the merge of ``row`` filled its gap in ``corrected``, as (box, mask in box).

    The fill lies in the gap layers, carries the final label of the merged group, and is
    where the original (relabelled the way the corrector did) had some other value. Both
    interpolations stay within the union of the two facing masks, so the search is limited
    to the bounding box of the group on the two layers that face the gap.
    """
    za, zb = int(row.z_a_last), int(row.z_b_first)
    root = full_roots.get(int(row.cell_a), int(row.cell_a))
    faces = _relabel(original[[za, zb]], full_roots) == root
    if zb - za < 2 or not faces.any():
        return (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool)
    ys, xs = np.nonzero(faces.any(axis=0))
    box = (slice(za + 1, zb), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    mask = (corrected[box] == root) & (_relabel(original[box], full_roots) != root)
    return box, mask


def apply_decisions(original, corrected, decisions, accepted_ids) -> np.ndarray:
    """Rebuild the corrected volume keeping only the accepted merges.

    Parameters
    ----------
    original : array-like of int, shape (Z, Y, X)
        The volume given to ``correct``; never modified.
    corrected : array-like of int, shape (Z, Y, X)
        The volume ``correct`` returned for it; never modified.
    decisions : DataFrame
        The decision table ``correct`` returned (indexed by candidate id, with at least
        the columns in :data:`REQUIRED_COLUMNS`).
    accepted_ids : collection of candidate ids
        Merges to keep; every other merged row is undone. Ids must be rows with
        ``merged=True``: a candidate the corrector did not merge has no fill to apply.

    Returns
    -------
    volume : ndarray
        A new array of ``original``'s dtype. Cells of a rejected merge keep their original
        labels and the voxels filled into its gap return to their original values.
        Accepting every merge returns ``corrected``; accepting none returns ``original``.

    Raises
    ------
    TypeError
        If ``decisions`` is not a DataFrame or ``accepted_ids`` is not a collection.
    ValueError
        If the volumes differ in shape, a column is missing, or an accepted id is unknown
        or names a candidate that was not merged.

    Notes
    -----
    An accepted merge whose group lost a rejected link is relabelled to the root the
    corrector's union-find gives the accepted links alone (the upper cell of a chain).
    When two filled gaps of one merged group share layers and bounding box (possible only
    when contact merges join two axial chains), their fills cannot be told apart.
    """
    original = check_label_volume(original, name="original", allow_empty=True)
    corrected = check_label_volume(corrected, name="corrected", allow_empty=True)
    if original.shape != corrected.shape:
        raise ValueError(
            f"original has shape {original.shape} but corrected has {corrected.shape}."
        )
    _check_decisions(decisions)
    accepted = _check_accepted(accepted_ids, decisions)

    merged_rows = _merge_order(decisions[decisions["merged"].astype(bool)])
    accepted_rows = merged_rows[merged_rows.index.isin(list(accepted))]
    full_roots = _replay(merged_rows)
    kept_roots = _replay(accepted_rows)

    out = _relabel(original, kept_roots)
    filled = accepted_rows[
        (accepted_rows["kind"] == "axial") & (accepted_rows["filled_voxels"].to_numpy() > 0)
    ]
    for row in filled.itertuples():
        box, mask = _filled_region(row, original, corrected, full_roots)
        if mask.any():
            out[box][mask] = kept_roots.get(int(row.cell_a), int(row.cell_a))
    return out


def review_order(decisions: pd.DataFrame) -> pd.Index:
    """Candidate ids, most uncertain first (``|p - 0.5|`` ascending, stable).

    ``p`` is the probability the decision rests on: ``probability_rejudged`` where the
    corrector judged the pair again after merging above it, else ``probability``.

    Parameters
    ----------
    decisions : DataFrame
        The decision table returned by ``correct``.

    Returns
    -------
    ids : Index
    """
    if not isinstance(decisions, pd.DataFrame) or "probability" not in decisions.columns:
        raise ValueError("decisions must be a DataFrame with a 'probability' column.")
    p = decisions["probability"].to_numpy(dtype=float)
    if "probability_rejudged" in decisions.columns:
        again = decisions["probability_rejudged"].to_numpy(dtype=float)
        p = np.where(np.isnan(again), p, again)
    order = np.argsort(np.abs(p - 0.5), kind="stable")
    return decisions.index[order]

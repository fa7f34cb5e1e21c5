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
2. **Re-slicing** of each pair along its contact plane, so that it reads as an axial
   pair (A's layers, then B's, with the reference layer between them removed):
   :func:`~sklearn_overseg.screening.reslice.reslice_pair`, whose module says how the
   plane is fitted and sampled.

:class:`CombinedScreener` runs several screeners (axial, contact, lateral) and keeps one
row per pair.
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

from .._validation import MIN_ROWS_PER_WORKER, check_label_volume, effective_n_jobs
from .axial import AxialGapScreener
from .base import BaseScreener, build_table
from .candidates import concat_tables, empty_candidate_table
from .cells import CellIndex
from .lateral import LateralScreener
from .reslice import (
    _oriented_batch,
    _oriented_geometry,
    _unpack,
    cell_centroids,
)

__all__ = ["CombinedScreener", "ContactScreener", "contact_pairs"]

# Voxels compared per slab in the adjacency pass; bounds the temporary arrays.
_SLAB_VOXELS = 1 << 22
# Key = smaller position * _KEY + larger position (positions < 2**31).
_KEY = np.int64(1) << np.int64(31)
# Parallel tasks per worker when re-slicing pairs.
_BATCHES_PER_JOB = 4


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

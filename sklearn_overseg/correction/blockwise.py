"""Correction block by block: one result in memory, out of core, or on a cluster.

:meth:`SegmentationCorrector.correct
<sklearn_overseg.correction.corrector.SegmentationCorrector.correct>` runs these stages for every
volume, whether it is a numpy array or a Zarr/HDF5 array larger than memory:

1. **Index** - bounding box and size of every cell, in z-slabs for a lazy array.
2. **Screen** - the axial pair search over z-slabs, each read with a halo of
   ``max_gap + 1`` layers below it, so a pair that crosses a slab border is found by
   the slab where its upper cell ends, and by no other.
3. **Features** - candidates are grouped into blocks (the z-slab of the upper cell's
   last layer, times an in-plane tile); a task reads its block's bounding box, cuts each
   pair's masks and runs the feature steps of the classifier. Only the feature rows
   come back: pair masks never cross process boundaries.
4. **Classify** - the classifier's final step on all rows at once, in table order.
5. **Merge** - decisions are taken top to bottom, one at a time (a chain A-B-C is
   re-judged as (A∪B)-C), on a :mod:`~sklearn_overseg.correction.canvas`. The interpolation of a
   pair whose two cells are still unmerged when its turn comes depends only on the
   input, so those are computed beforehand, block by block, in parallel.
6. **Write** - for a lazy output, one relabel table plus the painted gap voxels per
   slab, written chunk-aligned.

Each parallel stage is a joblib ``Parallel`` over independent tasks, so
``joblib.parallel_config(backend="dask")`` with a ``dask.distributed`` client runs them
on a cluster. Tasks return their results in a fixed order and nothing depends on how
rows were grouped, so the output is identical for every ``n_jobs``, backend, slab
depth and tile size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from .._validation import check_label_volume, check_lazy_label_volume, effective_n_jobs
from ..io.volumes import read_region
from ..screening.axial import AxialGapScreener, cut_axial_geometry, pairs_in_block, sort_pairs
from ..screening.base import build_table
from ..screening.cells import _DIRECT_MAX_ID, CellIndex
from .canvas import ArrayCanvas, LazyCanvas
from .interpolation import interpolate_masks

__all__ = [
    "DEFAULT_SLAB_LAYERS",
    "DEFAULT_TILE",
    "check_volume_like",
    "choose_slab_layers",
    "featurize_blockwise",
    "gap_masks",
    "index_volume",
    "is_lazy",
    "make_canvas",
    "prefill",
    "screen_blockwise",
    "split_classifier",
]

#: Layers per z-slab when a volume is screened, indexed or written.
DEFAULT_SLAB_LAYERS = 64
#: In-plane tile (pixels) that groups candidates into feature blocks.
DEFAULT_TILE = 512
#: Voxels per whole-plane slab when ``slab_layers`` is not given (128 MiB of uint32).
SLAB_VOXELS = 1 << 25


def choose_slab_layers(shape: tuple[int, ...], slab_layers: int | None) -> tuple[int, int]:
    """Layers per whole-plane slab (index, screen, write) and per feature block.

    A given ``slab_layers`` is used for both. By default slabs hold about
    :data:`SLAB_VOXELS` voxels (at most :data:`DEFAULT_SLAB_LAYERS` layers), so a
    2008 x 2008 plane gets 8-layer slabs, and feature blocks, already cut in-plane into
    :data:`DEFAULT_TILE` tiles, span :data:`DEFAULT_SLAB_LAYERS` layers.
    """
    if slab_layers is not None:
        return int(slab_layers), int(slab_layers)
    plane = max(1, int(shape[1]) * int(shape[2]))
    return max(1, min(DEFAULT_SLAB_LAYERS, SLAB_VOXELS // plane)), DEFAULT_SLAB_LAYERS


def is_lazy(volume: Any) -> bool:
    """Whether ``volume`` is read on access (Zarr, HDF5, Dask...) rather than a numpy array."""
    return not isinstance(volume, np.ndarray) or isinstance(volume, np.memmap)


def check_volume_like(volume: Any, name: str = "volume") -> Any:
    """Validate a label volume without reading a lazy one.

    Numpy input gets the full :func:`~sklearn_overseg._validation.check_label_volume`;
    an array-like with ``shape``, ``dtype`` and slicing (``zarr.Array``,
    :class:`~sklearn_overseg.io.volumes.HDF5Volume`) has its shape and dtype checked here and
    its values (negative labels) slab by slab while it is indexed.
    """
    if not is_lazy(volume) or not all(hasattr(volume, a) for a in ("shape", "dtype")):
        return check_label_volume(volume, name=name)
    return check_lazy_label_volume(volume, name=name)


def _slabs(n_z: int, slab_layers: int) -> list[tuple[int, int]]:
    step = max(1, int(slab_layers))
    return [(z0, min(z0 + step, n_z)) for z0 in range(0, n_z, step)]


@dataclasses.dataclass(frozen=True)
class _Box:
    """A box of a lazy source, read by the task that receives it."""

    source: Any
    z0: int
    z1: int
    y0: int = 0
    y1: int | None = None
    x0: int = 0
    x1: int | None = None

    def read(self) -> np.ndarray:
        region = (slice(self.z0, self.z1), slice(self.y0, self.y1), slice(self.x0, self.x1))
        return read_region(self.source, region)


def _box(volume: Any, z0: int, z1: int, y0: int = 0, y1=None, x0: int = 0, x1=None):
    """What a task gets to read a box: a numpy view, or a :class:`_Box` of a lazy source."""
    if is_lazy(volume):
        return _Box(volume, z0, z1, y0, y1, x0, x1)
    return volume[z0:z1, y0:y1, x0:x1]


def _load(box) -> np.ndarray:
    return box.read() if isinstance(box, _Box) else box


def _slab_parallel(volume: Any, n_tasks: int) -> Parallel:
    """Parallel for whole-plane slabs: threads for a numpy volume, processes for a lazy one.

    Slabs of an array in memory are numpy work that threads share without copying (a
    process pool would first have to start and receive the slabs, which costs more than
    the screening itself); reading a lazy array decompresses chunks, which processes
    spread best. A backend chosen with ``joblib.parallel_config`` (Dask) always wins.
    No more workers than slabs or cores: a one-slab volume starts no pool.
    """
    return Parallel(
        n_jobs=effective_n_jobs(None, n_tasks), prefer=None if is_lazy(volume) else "threads"
    )


# ----------------------------------------------------------------------------- index
def index_volume(volume: Any, *, slab_layers: int = DEFAULT_SLAB_LAYERS) -> CellIndex:
    """Index a label volume; a lazy one is read in z-slabs, in parallel.

    Parameters
    ----------
    volume : ndarray or array-like of shape (Z, Y, X)
    slab_layers : int, default=64
        Layers read per task for a lazy volume.

    Returns
    -------
    index : CellIndex
        Equal to ``CellIndex.from_volume(np.asarray(volume))``; its ``volume`` is the
        lazy array itself.
    """
    if not is_lazy(volume):
        return CellIndex.from_volume(volume)
    slabs = _slabs(volume.shape[0], slab_layers)
    parts = _slab_parallel(volume, len(slabs))(
        delayed(_index_slab)(_box(volume, z0, z1), z0) for z0, z1 in slabs
    )
    return _merge_slab_indexes(volume, parts)


def _index_slab(box, z0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = CellIndex.from_volume(_load(box))
    bboxes = index.bboxes.copy()
    bboxes[:, :2] += z0
    return index.labels, bboxes, index.voxel_counts


def _merge_slab_indexes(volume: Any, parts) -> CellIndex:
    labels = np.concatenate([p[0] for p in parts])
    if labels.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CellIndex(volume, empty, np.zeros((0, 6), dtype=np.int64), empty)
    boxes = np.concatenate([p[1] for p in parts])
    counts = np.concatenate([p[2] for p in parts])
    uniq, inverse = np.unique(labels, return_inverse=True)
    lo = np.full((len(uniq), 3), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.zeros((len(uniq), 3), dtype=np.int64)
    np.minimum.at(lo, inverse, boxes[:, 0::2])
    np.maximum.at(hi, inverse, boxes[:, 1::2])
    bboxes = np.empty((len(uniq), 6), dtype=np.int64)
    bboxes[:, 0::2], bboxes[:, 1::2] = lo, hi
    voxel_counts = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(voxel_counts, inverse, counts)
    lookup = None
    if int(uniq[-1]) < _DIRECT_MAX_ID:
        lookup = np.full(int(uniq[-1]) + 1, -1, dtype=np.int64)
        lookup[uniq] = np.arange(len(uniq))
    return CellIndex(volume, uniq.astype(np.int64), bboxes, voxel_counts, lookup)


# --------------------------------------------------------------------------- screen
def screen_blockwise(
    screener: AxialGapScreener,
    index: CellIndex,
    *,
    volume_id: str,
    spacing: tuple[float, float, float],
    slab_layers: int = DEFAULT_SLAB_LAYERS,
) -> pd.DataFrame:
    """Axial screening slab by slab; the candidate table without pair masks.

    Equal, row for row, to ``screener.screen(volume)`` with its ``geometry`` column
    set to ``None`` (cut later by :func:`featurize_blockwise`).
    """
    screener._check_params()
    params = screener.pair_search_params()
    volume = index.volume
    n_z = volume.shape[0]
    light = dataclasses.replace(index, volume=None)
    halo = int(screener.max_gap) + 1
    slabs = _slabs(n_z, slab_layers)
    parts = _slab_parallel(volume, len(slabs))(
        delayed(_screen_slab)(light, _box(volume, z0, min(z1 + halo, n_z)), z0, z1, n_z, params)
        for z0, z1 in slabs
    )
    pairs = sort_pairs(pd.concat(parts, ignore_index=True))
    return build_table(
        index, pairs, volume_id=volume_id, kind="axial", spacing=spacing, with_geometry=False
    )


def _screen_slab(index: CellIndex, box, z0: int, z1: int, n_z: int, params) -> pd.DataFrame:
    return pairs_in_block(index, _load(box), z_offset=z0, z_range=(z0, z1), n_z=n_z, **params)


# ------------------------------------------------------------------------- features
def _frames(table: pd.DataFrame, index: CellIndex) -> np.ndarray:
    """``(y0, y1, x0, x1)`` of each pair's common in-plane frame."""
    boxes_a = index.bboxes[index.positions(table["cell_a"].to_numpy())]
    boxes_b = index.bboxes[index.positions(table["cell_b"].to_numpy())]
    return np.column_stack(
        [
            np.minimum(boxes_a[:, 2], boxes_b[:, 2]),
            np.maximum(boxes_a[:, 3], boxes_b[:, 3]),
            np.minimum(boxes_a[:, 4], boxes_b[:, 4]),
            np.maximum(boxes_a[:, 5], boxes_b[:, 5]),
        ]
    )


def _blocks(z_key: np.ndarray, frames: np.ndarray, slab_layers: int, tile: int) -> list[np.ndarray]:
    """Row numbers grouped by (z-slab, tile row, tile column), in a fixed order."""
    if len(z_key) == 0:
        return []
    keys = np.column_stack(
        [z_key // max(1, slab_layers), frames[:, 0] // max(1, tile), frames[:, 2] // max(1, tile)]
    )
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(group[order])) + 1)


def _block_box(z_start: np.ndarray, z_stop: np.ndarray, frames: np.ndarray) -> tuple[int, ...]:
    """``(z0, z1, y0, y1, x0, x1)`` holding every pair of a block."""
    return (
        int(z_start.min()),
        int(z_stop.max()),
        int(frames[:, 0].min()),
        int(frames[:, 1].max()),
        int(frames[:, 2].min()),
        int(frames[:, 3].max()),
    )


def featurize_blockwise(
    featurizer,
    table: pd.DataFrame,
    index: CellIndex,
    *,
    spacing: tuple[float, float, float],
    slab_layers: int = DEFAULT_SLAB_LAYERS,
    tile: int = DEFAULT_TILE,
):
    """Feature rows of an axial candidate table whose ``geometry`` is not cut yet.

    Parameters
    ----------
    featurizer : fitted transformer
        Takes a candidate table (with ``geometry``), e.g. ``pipeline[:-1]``.
    table : DataFrame
        From :func:`screen_blockwise`.
    index : CellIndex
        Of the screened volume (numpy or lazy).
    spacing : tuple of float
    slab_layers, tile : int
        Block size; results do not depend on it.

    Returns
    -------
    features : DataFrame or ndarray
        What ``featurizer.transform`` returns for the whole table with its masks.
    """
    volume = index.volume
    frames = _frames(table, index)
    z0 = table["z_a_first"].to_numpy()
    z1 = table["z_b_last"].to_numpy() + 1
    skeleton = table.drop(columns=["geometry"])
    blocks = _blocks(table["z_a_last"].to_numpy(), frames, slab_layers, tile)
    tasks = []
    for rows in blocks:
        f = frames[rows]
        box = _block_box(z0[rows], z1[rows], f)
        tasks.append(
            delayed(_featurize_block)(
                featurizer, _box(volume, *box), box, skeleton.iloc[rows], f, spacing
            )
        )
    parts = Parallel(n_jobs=effective_n_jobs(None, len(tasks)))(tasks)
    back = np.argsort(np.concatenate(blocks), kind="stable")
    if all(isinstance(p, pd.DataFrame) for p in parts):
        return pd.concat(parts, axis=0).iloc[back]
    return np.concatenate([np.asarray(p) for p in parts], axis=0)[back]


def _featurize_block(featurizer, box, corner, rows: pd.DataFrame, frames, spacing):
    block = _load(box)
    oz, _, oy, _, ox, _ = corner
    geometries = [
        cut_axial_geometry(
            block, (oz, oy, ox), a, b, gap, (za0, za1), (zb0, zb1), tuple(frame), spacing
        )
        for (a, b, gap, za0, za1, zb0, zb1), frame in zip(
            rows[["cell_a", "cell_b", "gap", "z_a_first", "z_a_last", "z_b_first", "z_b_last"]]
            .to_numpy()
            .tolist(),
            frames.tolist(),
            strict=True,
        )
    ]
    rows = rows.copy()
    rows["geometry"] = pd.Series(geometries, index=rows.index, dtype=object)
    return featurizer.transform(rows)


def split_classifier(classifier, kinds: np.ndarray) -> tuple[Any, Callable] | None:
    """``(featurizer, head)`` such that ``head(featurizer.transform(t))`` is P(one cell).

    ``None`` when the classifier cannot be split (it then judges whole tables with
    their masks in one process).
    """
    from sklearn.pipeline import Pipeline

    from ..classification.dispatch import KindClassifier

    if isinstance(classifier, Pipeline) and len(classifier.steps) > 1:
        head = classifier[-1]
        return classifier[:-1], lambda f: np.asarray(head.predict_proba(f))[:, 1]
    if isinstance(classifier, KindClassifier) and set(np.unique(kinds).tolist()) <= {"axial"}:
        part = classifier.estimators_.get("axial")
        if isinstance(part, Pipeline) and len(part.steps) > 1:
            head = part[-1]
            columns = np.searchsorted(classifier.classes_, part.classes_)

            def judge(features):
                proba = np.zeros((len(features), len(classifier.classes_)))
                proba[:, columns] = np.asarray(head.predict_proba(features))
                return proba[:, 1]

            return part[:-1], judge
    return None


# ---------------------------------------------------------------------- prefilling
def prefill(
    table: pd.DataFrame,
    rows: np.ndarray,
    index: CellIndex,
    *,
    method: str,
    spacing: tuple[float, float, float],
    slab_layers: int = DEFAULT_SLAB_LAYERS,
    tile: int = DEFAULT_TILE,
) -> dict[int, np.ndarray]:
    """Interpolated gap masks of the given axial rows, from the input volume.

    Exact for a pair whose two cells are still unmerged when it is merged, provided
    earlier fills wrote only background (``only_background=True``): its end masks are
    then those of the input. Returns ``{row: masks}``; a row whose end masks are empty
    is left out.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return {}
    sub = table.iloc[rows]
    frames = _frames(sub, index)
    za = sub["z_a_last"].to_numpy()
    zb = sub["z_b_first"].to_numpy()
    labels = sub[["cell_a", "cell_b"]].to_numpy()
    tasks, order = [], []
    for block_rows in _blocks(za, frames, slab_layers, tile):
        f = frames[block_rows]
        box = _block_box(za[block_rows], zb[block_rows] + 1, f)
        items = [
            (int(za[r]), int(zb[r]), *(int(v) for v in labels[r]), *(int(v) for v in f[i]))
            for i, r in enumerate(block_rows)
        ]
        tasks.append(delayed(_prefill_block)(_box(index.volume, *box), box, items, method, spacing))
        order.append(rows[block_rows])
    results = Parallel(n_jobs=effective_n_jobs(None, len(tasks)))(tasks)
    out: dict[int, np.ndarray] = {}
    for row_numbers, masks in zip(order, results, strict=True):
        for r, m in zip(row_numbers.tolist(), masks, strict=True):
            if m is not None:
                out[r] = m
    return out


def _prefill_block(box, corner, items, method: str, spacing) -> list[np.ndarray | None]:
    block = _load(box)
    oz, _, oy, _, ox, _ = corner
    found = []
    for za, zb, a, b, y0, y1, x0, x1 in items:
        ys, xs = slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox)
        mask_a = block[za - oz, ys, xs] == a
        mask_b = block[zb - oz, ys, xs] == b
        found.append(gap_masks(mask_a, mask_b, zb - za - 1, method, spacing))
    return found


def gap_masks(mask_a, mask_b, n_layers: int, method: str, spacing) -> np.ndarray | None:
    """The interpolated masks of a merge's missing layers; ``None`` if an end is empty."""
    if not mask_a.any() or not mask_b.any():
        return None
    return interpolate_masks(
        mask_a, mask_b, n_layers, method=method, spacing=spacing[1:], random_state=0
    )


def make_canvas(volume, out, lazy: bool):
    """The canvas merges are applied to, and the array the result ends in."""
    if not lazy:
        if out is None:
            out = np.array(volume, copy=True)
        else:
            out[...] = volume
        return ArrayCanvas(out), out
    return LazyCanvas(volume), out

"""Where merges are applied: an array in memory, or a lazy view of a volume on disk.

The corrector decides merges one after another and each decision may look at the result
of the previous ones (a chain A-B-C is judged as (A∪B)-C). It does so through a
*canvas* with three operations: read a box of the current labels, relabel a cell, and
paint interpolated voxels.

* :class:`ArrayCanvas` does them in place on a numpy array (the in-memory path).
* :class:`LazyCanvas` never writes the source: it keeps the merges as a label map and
  the painted voxels as a list of small masks, and reads boxes of the source through a
  cache of chunks. :meth:`LazyCanvas.write` then streams the corrected volume slab by
  slab, as one relabel table plus the painted voxels per slab, into any writable array
  (a Zarr array for volumes larger than memory).

Both give the same labels for every read, so the decisions and the final volume are
identical whichever canvas is used.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed

from .._validation import effective_n_jobs
from ..io.volumes import read_region

__all__ = ["ArrayCanvas", "LazyCanvas"]

#: Bytes of decompressed source chunks a :class:`LazyCanvas` keeps for its reads.
DEFAULT_CACHE_BYTES = 512 * 2**20
#: In-plane cell size of the grid that finds painted masks overlapping a box.
_PAINT_GRID = 64


def paint_masks(
    block: np.ndarray,
    masks: np.ndarray,
    label: int,
    only_background: bool,
    protect: np.ndarray | None = None,
) -> int:
    """Write ``label`` where ``masks`` is set and the voxel may change; return the count.

    A voxel may change when it is not ``label`` already, is background if
    ``only_background``, and holds none of the ids in ``protect``.
    """
    writable = masks & (block != label)
    if only_background:
        writable &= block == 0
    if protect is not None and protect.size:
        writable &= ~np.isin(block, protect)
    block[writable] = label
    return int(writable.sum())


class ArrayCanvas:
    """Merges applied in place to a writable numpy array.

    Parameters
    ----------
    out : ndarray of shape (Z, Y, X)
        Holds the input labels at the start; modified in place.
    """

    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def read(self, z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Current labels in a box (a view: do not modify)."""
        return self.out[z0:z1, y0:y1, x0:x1]

    def relabel(self, bbox, old: int, new: int) -> None:
        """Give the voxels of ``old`` inside ``bbox`` (which holds them all) the id ``new``."""
        z0, z1, y0, y1, x0, x1 = (int(v) for v in bbox)
        box = self.out[z0:z1, y0:y1, x0:x1]
        box[box == old] = new

    def paint(
        self, z0: int, y0: int, x0: int, masks: np.ndarray, label: int, only_background: bool
    ) -> int:
        """Write ``label`` into the box at ``(z0, y0, x0)`` where ``masks`` is set."""
        n, h, w = masks.shape
        block = self.out[z0 : z0 + n, y0 : y0 + h, x0 : x0 + w]
        return paint_masks(block, masks, label, only_background)


@dataclass(frozen=True)
class _Painted:
    """Voxels painted with ``label`` in the box at ``(z0, y0, x0)`` of ``mask``'s shape."""

    z0: int
    y0: int
    x0: int
    mask: np.ndarray
    label: int

    @property
    def stop(self) -> tuple[int, int, int]:
        n, h, w = self.mask.shape
        return self.z0 + n, self.y0 + h, self.x0 + w


class LazyCanvas:
    """Merges kept beside a read-only source, applied only when the result is written.

    Parameters
    ----------
    source : array-like of shape (Z, Y, X)
        Any array that numpy-slices into an ndarray (``zarr.Array``, an HDF5 dataset,
        a memmap); read box by box, never written.
    chunks : tuple of int, optional
        Read granularity of the cache; the source's own chunks by default.
    cache_bytes : int, default=512 MiB
        Decompressed chunks kept for reads (least recently used are dropped).
    """

    def __init__(self, source, chunks=None, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.source = source
        self.shape = tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(source.dtype)
        chunks = chunks or getattr(source, "chunks", None)
        if not chunks or len(chunks) != 3:
            # Unchunked sources (contiguous HDF5, memmaps) are cached in tiles, not planes.
            chunks = (16, 512, 512)
        # Dask lists every chunk's size per axis; the largest is the read granularity.
        chunks = [max(c) if isinstance(c, tuple) else c for c in chunks]
        self.chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, self.shape, strict=True))
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        # Merged ids point to their current root; roots list their members.
        self.root_of: dict[int, int] = {}
        self._members: dict[int, list[int]] = {}
        self.painted: list[_Painted] = []
        self._grid: dict[tuple[int, int, int], list[int]] = defaultdict(list)

    # ------------------------------------------------------------------ reading
    def _chunk(self, key: tuple[int, int, int]) -> np.ndarray:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        cz, cy, cx = self.chunks
        z, y, x = key
        data = read_region(
            self.source,
            (slice(z * cz, (z + 1) * cz), slice(y * cy, (y + 1) * cy), slice(x * cx, (x + 1) * cx)),
        )
        self._cache[key] = data
        self._cached_bytes += data.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return data

    def read_source(self, z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Input labels in a box, assembled from cached chunks."""
        out = np.empty((z1 - z0, y1 - y0, x1 - x0), dtype=self.dtype)
        cz, cy, cx = self.chunks
        for kz in range(z0 // cz, (z1 - 1) // cz + 1):
            for ky in range(y0 // cy, (y1 - 1) // cy + 1):
                for kx in range(x0 // cx, (x1 - 1) // cx + 1):
                    chunk = self._chunk((kz, ky, kx))
                    a0, a1 = max(z0, kz * cz), min(z1, (kz + 1) * cz)
                    b0, b1 = max(y0, ky * cy), min(y1, (ky + 1) * cy)
                    c0, c1 = max(x0, kx * cx), min(x1, (kx + 1) * cx)
                    out[a0 - z0 : a1 - z0, b0 - y0 : b1 - y0, c0 - x0 : c1 - x0] = chunk[
                        a0 - kz * cz : a1 - kz * cz,
                        b0 - ky * cy : b1 - ky * cy,
                        c0 - kx * cx : c1 - kx * cx,
                    ]
        return out

    def _relabelled(self, box: np.ndarray) -> np.ndarray:
        if not self.root_of:
            return box
        ids = np.unique(box)
        moved = [(int(i), self.root_of[int(i)]) for i in ids if int(i) in self.root_of]
        if not moved:
            return box
        # Sorted already: np.unique sorts the ids.
        old = np.array([m[0] for m in moved], dtype=box.dtype)
        new = np.array([m[1] for m in moved], dtype=box.dtype)
        return relabel_block(box, old, new)

    def _overlapping(self, z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> list[int]:
        found: set[int] = set()
        for z in range(z0, z1):
            for gy in range(y0 // _PAINT_GRID, (y1 - 1) // _PAINT_GRID + 1):
                for gx in range(x0 // _PAINT_GRID, (x1 - 1) // _PAINT_GRID + 1):
                    found.update(self._grid.get((z, gy, gx), ()))
        return sorted(found)

    def read(self, z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Current labels in a box: the source, relabelled, with painted voxels on top."""
        box = self._relabelled(self.read_source(z0, z1, y0, y1, x0, x1))
        for k in self._overlapping(z0, z1, y0, y1, x0, x1):
            _apply_painted(box, (z0, y0, x0), self.painted[k], self.root_of)
        return box

    # ------------------------------------------------------------------ merging
    def relabel(self, bbox, old: int, new: int) -> None:
        """Merge the group of root ``old`` into root ``new`` (``bbox`` is not needed)."""
        old, new = int(old), int(new)
        moving = self._members.pop(old, [old])
        for label in moving:
            self.root_of[label] = new
        self._members.setdefault(new, [new]).extend(moving)

    def paint(
        self, z0: int, y0: int, x0: int, masks: np.ndarray, label: int, only_background: bool
    ) -> int:
        """Record ``label`` painted where ``masks`` is set and the voxel may change."""
        n, h, w = masks.shape
        block = self.read(z0, z0 + n, y0, y0 + h, x0, x0 + w)
        written = block.copy()
        count = paint_masks(written, masks, label, only_background)
        if count == 0:
            return 0
        record = _Painted(z0, y0, x0, written != block, int(label))
        self.painted.append(record)
        k = len(self.painted) - 1
        for z in range(z0, z0 + n):
            for gy in range(y0 // _PAINT_GRID, (y0 + h - 1) // _PAINT_GRID + 1):
                for gx in range(x0 // _PAINT_GRID, (x0 + w - 1) // _PAINT_GRID + 1):
                    self._grid[(z, gy, gx)].append(k)
        return count

    # ------------------------------------------------------------------ writing
    def relabel_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids that changed and the id each now has."""
        if not self.root_of:
            empty = np.zeros(0, dtype=self.dtype)
            return empty, empty
        old = np.array(sorted(self.root_of), dtype=np.int64)
        new = np.array([self.root_of[int(i)] for i in old], dtype=np.int64)
        return old.astype(self.dtype), new.astype(self.dtype)

    def write(self, out, *, slab_layers: int = 64, n_jobs: int | None = None):
        """Write the corrected volume into ``out`` box by box; return ``out``.

        Parameters
        ----------
        out : writable array-like of the source's shape
            A numpy array, a Zarr array or an HDF5 dataset. Boxes follow its chunk (or
            shard) grid, so parallel writers never share one.
        slab_layers : int, default=64
            Layers per box, rounded up to a multiple of ``out``'s chunk (shard) depth;
            in-plane, boxes span about 1024 pixels, also chunk-aligned.
        n_jobs : int, optional
            Parallel boxes (joblib) for a Zarr ``out`` on a local or remote file
            system; other arrays (numpy, HDF5, in-memory Zarr stores, which workers
            cannot reach) are written by this process.
        """
        old, new = self.relabel_table()
        lut = dense_lookup(old, new, self.dtype)
        painted = [
            _Painted(r.z0, r.y0, r.x0, r.mask, self.root_of.get(r.label, r.label))
            for r in self.painted
        ]
        starts = np.array([(r.z0, r.y0, r.x0) for r in painted], dtype=np.int64).reshape(-1, 3)
        stops = np.array([r.stop for r in painted], dtype=np.int64).reshape(-1, 3)
        tasks = []
        for box in _write_boxes(out, self.shape, slab_layers):
            lo, hi = np.array(box[0::2]), np.array(box[1::2])
            hits = np.flatnonzero(np.all((starts < hi) & (stops > lo), axis=1))
            part = _source_part(self.source, box)
            tasks.append((part, box, [painted[k] for k in hits]))
        if not _shared_store(out):
            for part, box, records in tasks:
                _write_box(part, out, box, old, new, lut, records)
            return out
        Parallel(n_jobs=effective_n_jobs(n_jobs, len(tasks)))(
            delayed(_write_box)(part, out, box, old, new, lut, records)
            for part, box, records in tasks
        )
        return out


#: In-plane extent (pixels) of the boxes the corrected volume is written in.
_WRITE_TILE = 1024


def _write_boxes(out, shape, slab_layers: int) -> list[tuple[int, ...]]:
    """Boxes ``(z0, z1, y0, y1, x0, x1)`` covering the volume, aligned to ``out``'s grid."""
    grid = getattr(out, "shards", None) or getattr(out, "chunks", None)
    if not grid or len(grid) != 3 or isinstance(grid[0], tuple):
        grid = (1, 1, 1)
    unit = [max(1, int(g)) for g in grid]
    steps = [
        max(unit[0], -(-int(slab_layers) // unit[0]) * unit[0]),
        max(unit[1], (_WRITE_TILE // unit[1]) * unit[1]),
        max(unit[2], (_WRITE_TILE // unit[2]) * unit[2]),
    ]
    ranges = [
        [(a, min(a + step, n)) for a in range(0, n, step)]
        for n, step in zip(shape, steps, strict=True)
    ]
    return [(*z, *y, *x) for z in ranges[0] for y in ranges[1] for x in ranges[2]]


def _shared_store(out) -> bool:
    """Whether worker processes can write into ``out`` (a Zarr array on a file system)."""
    store = getattr(out, "store", None)
    return type(out).__module__.startswith("zarr") and type(store).__name__ in (
        "LocalStore",
        "FsspecStore",
    )


def _source_part(source, box):
    """What a write task reads: a view of a numpy source, or the lazy source itself."""
    z0, z1, y0, y1, x0, x1 = box
    if isinstance(source, np.ndarray) and not isinstance(source, np.memmap):
        return source[z0:z1, y0:y1, x0:x1]
    return source


def _apply_painted(box: np.ndarray, origin, record: _Painted, root_of: dict[int, int]) -> None:
    """Paint ``record`` into ``box`` (whose corner is ``origin``) where they overlap."""
    oz, oy, ox = origin
    ez, ey, ex = record.stop
    lo = (max(record.z0, oz), max(record.y0, oy), max(record.x0, ox))
    hi = (min(ez, oz + box.shape[0]), min(ey, oy + box.shape[1]), min(ex, ox + box.shape[2]))
    if any(a >= b for a, b in zip(lo, hi, strict=True)):
        return
    target = box[lo[0] - oz : hi[0] - oz, lo[1] - oy : hi[1] - oy, lo[2] - ox : hi[2] - ox]
    mask = record.mask[
        lo[0] - record.z0 : hi[0] - record.z0,
        lo[1] - record.y0 : hi[1] - record.y0,
        lo[2] - record.x0 : hi[2] - record.x0,
    ]
    target[mask] = root_of.get(record.label, record.label)


#: Largest changed id for which boxes are relabelled through a dense lookup table.
_DENSE_LUT_MAX = 1 << 24


def dense_lookup(old: np.ndarray, new: np.ndarray, dtype) -> np.ndarray | None:
    """Table ``lut`` with ``lut[i]`` the id of ``i`` after merging, for ``i <= old[-1]``."""
    if old.size == 0 or int(old[-1]) >= _DENSE_LUT_MAX:
        return None
    lut = np.arange(int(old[-1]) + 1, dtype=dtype)
    lut[old] = new
    return lut


def relabel_block(block: np.ndarray, old: np.ndarray, new: np.ndarray, lut=None) -> np.ndarray:
    """Replace, in place, each id of sorted ``old`` found in ``block`` by its ``new`` id."""
    if old.size == 0:
        return block
    if lut is not None:
        low = block < len(lut)
        block[low] = lut[block[low]]
    else:
        where = np.isin(block, old)
        block[where] = new[np.searchsorted(old, block[where])]
    return block


#: Voxels relabelled per step: bounds the temporaries of a box to a few tens of MiB.
_RELABEL_VOXELS = 1 << 23


def _write_box(part, out, box, old, new, lut, painted) -> None:
    z0, z1, y0, y1, x0, x1 = box
    if isinstance(part, np.ndarray) and part.shape == (z1 - z0, y1 - y0, x1 - x0):
        block = np.array(part)
    else:
        block = np.array(read_region(part, (slice(z0, z1), slice(y0, y1), slice(x0, x1))))
    step = max(1, _RELABEL_VOXELS // max(1, block.shape[1] * block.shape[2]))
    for k in range(0, block.shape[0], step):
        relabel_block(block[k : k + step], old, new, lut)
    for record in painted:
        _apply_painted(block, (z0, y0, x0), record, {})
    out[z0:z1, y0:y1, x0:x1] = block

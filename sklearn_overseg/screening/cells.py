"""A per-volume index of cells, built once with :func:`scipy.ndimage.find_objects`.

Everything that needs a cell's extent or masks asks the index instead of rescanning the
volume: screening, feature geometry, correction and synthesis all share one pass.

Ids may be sparse (up to 2**63): when the largest id is far above the number of voxels the
index compacts ids with :func:`numpy.searchsorted` before ``find_objects`` so that memory
stays proportional to the number of cells, not to the largest id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .._validation import check_label_volume
from ..io.volumes import read_region

__all__ = ["CellIndex"]

#: Largest id for which ``find_objects`` runs on the raw ids (its output has one entry per id).
_DIRECT_MAX_ID = 1 << 22


#: Voxels counted per ``bincount`` call: bounds the int64 copy bincount makes.
_SLAB_VOXELS = 1 << 22


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half of the total weight lies (lower weighted median)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


def _count_labels(volume: np.ndarray, length: int) -> np.ndarray:
    """Voxels per id, counted in z-slabs so memory stays small for large volumes."""
    per_layer = max(1, volume.shape[1] * volume.shape[2])
    step = max(1, _SLAB_VOXELS // per_layer)
    counts = np.zeros(length, dtype=np.int64)
    for z in range(0, volume.shape[0], step):
        counts += np.bincount(np.asarray(volume[z : z + step]).ravel(), minlength=length)
    return counts


@dataclass(frozen=True, eq=False)
class CellIndex:
    """Where every cell of a label volume is, computed in one pass.

    Build it with :meth:`from_volume`; the attributes are aligned arrays, one entry per
    cell present in the volume, sorted by id.

    Attributes
    ----------
    volume : ndarray of shape (Z, Y, X)
        The indexed volume (a reference, never modified).
    labels : ndarray of int64, shape (n_cells,)
        Sorted ids of the cells present (background 0 excluded).
    bboxes : ndarray of int64, shape (n_cells, 6)
        ``(z0, z1, y0, y1, x0, x1)`` half-open bounding boxes.
    voxel_counts : ndarray of int64, shape (n_cells,)
        Number of voxels per cell.
    lookup : ndarray of int64 or None
        Id → row table when ids are dense enough to afford one; otherwise rows are
        found by binary search.
    """

    volume: np.ndarray
    labels: np.ndarray
    bboxes: np.ndarray
    voxel_counts: np.ndarray
    lookup: np.ndarray | None = None

    @classmethod
    def from_volume(cls, volume: np.ndarray) -> CellIndex:
        """Index a label volume.

        Parameters
        ----------
        volume : array-like of int, shape (Z, Y, X)
            Label volume; 0 is background.

        Returns
        -------
        index : CellIndex
        """
        volume = check_label_volume(volume, allow_empty=True)
        max_id = int(volume.max()) if volume.size else 0
        if max_id == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(volume, empty, np.zeros((0, 6), dtype=np.int64), empty)
        if max_id < _DIRECT_MAX_ID:
            counts = _count_labels(volume, max_id + 1)
            slices = ndi.find_objects(volume)
            present = np.flatnonzero(counts[1:]) + 1
            labels = present.astype(np.int64)
            chosen = [slices[i - 1] for i in present]
            voxel_counts = counts[present].astype(np.int64)
            lookup = np.full(max_id + 1, -1, dtype=np.int64)
            lookup[present] = np.arange(len(present))
        else:
            if max_id > np.iinfo(np.int64).max:
                raise ValueError(
                    f"volume has label {max_id}, above the largest supported id 2**63 - 1; "
                    "relabel it first (skimage.segmentation.relabel_sequential)."
                )
            # Search in the volume's own dtype: mixing uint64 and int64 goes through
            # float64 and merges neighbouring ids above 2**53.
            native = np.unique(volume)
            native = native[native != 0]
            labels = native.astype(np.int64)
            positions = np.searchsorted(native, volume).astype(np.int32) + 1
            positions[volume == 0] = 0
            chosen = ndi.find_objects(positions)
            voxel_counts = np.bincount(positions.ravel(), minlength=len(labels) + 1)[1:]
            voxel_counts = voxel_counts.astype(np.int64)
            lookup = None
        bboxes = np.array([[s.start, s.stop] for sl in chosen for s in sl], dtype=np.int64).reshape(
            -1, 6
        )
        return cls(volume, labels, bboxes, voxel_counts, lookup)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def z_first(self) -> np.ndarray:
        """First z layer of each cell."""
        return self.bboxes[:, 0]

    @property
    def z_last(self) -> np.ndarray:
        """Last z layer of each cell (inclusive)."""
        return self.bboxes[:, 1] - 1

    def typical_cell(self) -> tuple[float, float]:
        """Height (layers) and size (voxels) of the cell a typical voxel belongs to.

        Both are medians weighted by voxel count. A plain median over labels is pulled
        down by the many one-layer fragments a stitched per-slice segmentation leaves
        (on such volumes the median label is often one layer tall, whatever the true
        cell height); weighting by voxels keeps the scale of the cells that hold the
        tissue.

        Returns
        -------
        layers, voxels : float
            ``(0.0, 0.0)`` for a volume without cells.
        """
        if len(self.labels) == 0:
            return 0.0, 0.0
        voxels = self.voxel_counts.astype(np.float64)
        heights = (self.z_last - self.z_first + 1).astype(np.float64)
        # Each cell weighs its voxel count: the size's median weighs sizes by themselves.
        return _weighted_median(heights, voxels), _weighted_median(voxels, voxels)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the index arrays; -1 for ids that are absent (and for 0).

        Parameters
        ----------
        ids : ndarray of int
            Any shape; typically a layer of the volume.
        """
        ids = np.asarray(ids)
        if ids.dtype == np.uint64:
            # Ids were checked to fit int64 when the index was built; larger ones are absent.
            big = ids > np.iinfo(np.int64).max
            ids = np.where(big, 0, ids).astype(np.int64)
        if self.lookup is not None:
            # Ids beyond the table (possible only for foreign arrays) map to -1.
            inside = ids < len(self.lookup)
            if inside.all():
                return self.lookup[ids]
            return np.where(inside, self.lookup[np.where(inside, ids, 0)], -1)
        if len(self.labels) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.labels, ids)
        pos = np.minimum(pos, len(self.labels) - 1)
        found = self.labels[pos] == ids
        return np.where(found, pos, -1)

    def position(self, label: int) -> int:
        """Row of one id; ``KeyError`` if the id is not in the volume."""
        pos = int(self.positions(np.asarray([label]))[0])
        if pos < 0:
            raise KeyError(f"label {label} is not in the volume.")
        return pos

    def bbox(self, label: int) -> tuple[slice, slice, slice]:
        """The bounding box of a cell as a tuple of slices (z, y, x)."""
        z0, z1, y0, y1, x0, x1 = self.bboxes[self.position(label)]
        return slice(z0, z1), slice(y0, y1), slice(x0, x1)

    def mask(
        self, label: int, z: int, frame: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """2D mask of a cell at layer ``z``, cropped to ``frame`` or to the cell's box.

        Parameters
        ----------
        label : int
        z : int
        frame : tuple of int, optional
            ``(y0, y1, x0, x1)``; defaults to the cell's in-plane bounding box.
        """
        pos = self.position(label)
        if frame is None:
            frame = tuple(int(v) for v in self.bboxes[pos, 2:])
        y0, y1, x0, x1 = frame
        return self.volume[z, y0:y1, x0:x1] == label

    def stack(self, label: int, frame: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """3D mask of a cell over its z range, shape (n_layers, H, W), cropped to ``frame``."""
        pos = self.position(label)
        z0, z1 = (int(v) for v in self.bboxes[pos, :2])
        if frame is None:
            frame = tuple(int(v) for v in self.bboxes[pos, 2:])
        y0, y1, x0, x1 = frame
        return read_region(self.volume, (slice(z0, z1), slice(y0, y1), slice(x0, x1))) == label

    def union_frame(self, *labels: int) -> tuple[int, int, int, int]:
        """Smallest in-plane box ``(y0, y1, x0, x1)`` holding all the given cells."""
        rows = self.bboxes[[self.position(lab) for lab in labels]]
        return (
            int(rows[:, 2].min()),
            int(rows[:, 3].max()),
            int(rows[:, 4].min()),
            int(rows[:, 5].max()),
        )

"""Link independently labelled 2D slices into a 3D label volume (IoU stitching).

A per-slice 2D segmenter (Cellpose, StarDist, a watershed) labels every layer on its own;
its ids mean nothing across layers. :func:`stitch_slices` links them the way Cellpose's
``stitch_threshold`` does, with one rule made explicit: a mask takes the id of the
previous layer's mask it overlaps best (highest IoU) when that IoU reaches the threshold
**and** it is that mask's best partner too; otherwise it starts a new id. Mutual best
partners keep the link one-to-one, so a cross-section cut in two continues into one
piece only, and the other piece becomes a new id — exactly the flaws that
:class:`~sklearn_overseg.SegmentationCorrector` then repairs.

The linking is one vectorised pass per layer pair (pairs counted with
:func:`numpy.unique` on combined keys); its cost is linear in voxels.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

__all__ = ["layer_id_continuity", "stitch_slices"]

# Above this share of ids that continue into the next layer with IoU >= 0.5, a stack is
# taken for an already-3D label volume rather than per-layer labels.
_CONTINUITY_LIMIT = 0.5


def _check_slices(labels2d: Any) -> np.ndarray:
    if isinstance(labels2d, (list, tuple)):
        if not labels2d:
            raise ValueError("labels2d is empty: give a stack of 2D label images.")
        shapes = {np.shape(layer) for layer in labels2d}
        if len(shapes) != 1:
            raise ValueError(
                f"the 2D label images differ in shape ({sorted(shapes)}); every layer "
                "of the stack must have the same (Y, X) shape."
            )
        labels2d = np.stack([np.asarray(layer) for layer in labels2d])
    if labels2d is None or isinstance(labels2d, (str, bytes, dict)):
        raise TypeError(
            f"labels2d must be a (Z, Y, X) stack of 2D label images, got {type(labels2d).__name__}."
        )
    stack = np.asarray(labels2d)
    if stack.dtype == object:
        raise TypeError("labels2d must be an integer array, got an object array.")
    if stack.ndim == 2:
        raise ValueError(
            f"labels2d is a single 2D image of shape {stack.shape}: stitching links a stack "
            "of layers, shape (Z, Y, X). A single layer needs no stitching."
        )
    if stack.ndim != 3:
        raise ValueError(
            f"labels2d must be a (Z, Y, X) stack of 2D label images, got ndim={stack.ndim} "
            f"with shape {stack.shape}."
        )
    kind = stack.dtype.kind
    if kind == "b":
        raise TypeError(
            "labels2d has dtype bool: give one integer id per mask in each layer "
            "(e.g. skimage.measure.label on each layer's binary mask)."
        )
    if kind in "fc":
        raise TypeError(
            f"labels2d has dtype {stack.dtype}: labels must be integers. A probability or "
            "intensity image must be segmented first; whole-number floats can be "
            "converted with labels2d.astype(np.uint32)."
        )
    if kind not in "iu":
        raise TypeError(f"labels2d has dtype {stack.dtype}: labels must be integers.")
    if stack.size == 0:
        raise ValueError(f"labels2d is empty: shape {stack.shape} has no pixels.")
    if kind == "i" and stack.min() < 0:
        raise ValueError(
            f"labels2d has negative labels (minimum {int(stack.min())}); labels must be "
            ">= 0 with 0 as background."
        )
    return stack


def _layer_overlaps(
    upper: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping ``(upper id, lower id)`` pairs of two layers, their overlaps and IoUs."""
    ids_up, area_up = np.unique(upper[upper != 0], return_counts=True)
    ids_low, area_low = np.unique(lower[lower != 0], return_counts=True)
    both = (upper != 0) & (lower != 0)
    if not both.any():
        empty = np.zeros(0, dtype=upper.dtype)
        return empty, empty.astype(lower.dtype), np.zeros(0, np.int64), np.zeros(0)
    pos_up = np.searchsorted(ids_up, upper[both])
    pos_low = np.searchsorted(ids_low, lower[both])
    keys, inter = np.unique(pos_up * len(ids_low) + pos_low, return_counts=True)
    pu, pl = keys // len(ids_low), keys % len(ids_low)
    iou = inter / (area_up[pu] + area_low[pl] - inter)
    return ids_up[pu], ids_low[pl], inter.astype(np.int64), iou


def _best(keys: np.ndarray, partners: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """For each pair, whether it is its key's best (highest IoU, then smallest partner)."""
    order = np.lexsort((partners, -iou, keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    best = np.zeros(len(keys), dtype=bool)
    best[order[first]] = True
    return best


def _numbered_per_layer(stack: np.ndarray) -> bool:
    """Whether every layer's ids are exactly ``1..n`` of its own, as per-slice tools write.

    Such a stack is 2D output whatever its continuity: a segmenter that numbers masks in
    raster order gives nearby masks of consecutive layers the same id by chance (a
    per-layer watershed of the shipped ovule reached 51 % continuity this way).
    """
    for layer in stack:
        ids = np.unique(layer)
        ids = ids[ids != 0]
        if len(ids) and (ids[0] != 1 or ids[-1] != len(ids)):
            return False
    return True


def layer_id_continuity(labels: Any, *, min_iou: float = 0.5) -> float:
    """Share of ids that continue, with IoU >= ``min_iou``, into the next layer under the same id.

    Per-layer 2D labels (ids restarting in every layer) give values near 0; a 3D label
    volume, whose ids run through the layers of a cell, gives values near 1.

    Parameters
    ----------
    labels : array-like of int, shape (Z, Y, X)
    min_iou : float, default=0.5

    Returns
    -------
    continuity : float
        In ``[0, 1]``; 0 for a stack with no id present in two consecutive layers.
    """
    stack = _check_slices(labels)
    continuing = present = 0
    for z in range(stack.shape[0] - 1):
        ids_up, ids_low, _, iou = _layer_overlaps(stack[z], stack[z + 1])
        same = ids_up == ids_low
        continuing += int(np.count_nonzero(same & (iou >= min_iou)))
        shared = np.intersect1d(np.unique(stack[z]), np.unique(stack[z + 1]))
        present += int(np.count_nonzero(shared))
    return continuing / present if present else 0.0


def stitch_slices(
    labels2d: Any,
    *,
    iou_threshold: float = 0.25,
    relabel_layers: bool = False,
) -> np.ndarray:
    """Link a stack of independently labelled 2D slices into a 3D label volume.

    A mask of layer ``z`` takes the 3D id of the mask of layer ``z - 1`` it overlaps
    best when their IoU is at least ``iou_threshold`` and that mask's best partner in
    layer ``z`` is this mask too; every other mask starts a new id. This is the linking
    of Cellpose's ``stitch_threshold``, with the mutual-best rule made explicit.

    Parameters
    ----------
    labels2d : array-like of int, shape (Z, Y, X), or a list of 2D label images
        Each layer labelled on its own, 0 = background; ids may repeat across layers
        and mean nothing there. Never modified.
    iou_threshold : float, default=0.25
        Smallest IoU of two masks of consecutive layers that may link them, in
        ``(0, 1]``.
    relabel_layers : bool, default=False
        Accept a stack whose ids already run across layers (a 3D label volume) and
        re-stitch it, treating each layer's ids as independent 2D masks. Without it such
        a stack is refused, since stitching it again is rarely what was meant.

    Returns
    -------
    volume : ndarray of shape (Z, Y, X)
        3D labels ``1..n``, 0 = background, in the smallest unsigned dtype that holds
        ``n``. Ids are given in order of first appearance (layer, then mask id).

    Raises
    ------
    TypeError
        If the labels are not integers (floats, bools, objects).
    ValueError
        If the input is not a stack of 2D images, is empty, has negative labels, the
        threshold is out of range, or the stack already looks like a 3D label volume and
        ``relabel_layers`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import stitch_slices
    >>> layers = np.zeros((3, 4, 6), dtype=np.uint16)
    >>> layers[:, :, :3] = [[[1]], [[2]], [[1]]]   # one cell, a new id in every layer
    >>> layers[2, :, 3:] = 5                       # a second cell, in the last layer
    >>> stitch_slices(layers)[:, 0, ::3]
    array([[1, 0],
           [1, 0],
           [1, 2]], dtype=uint8)
    """
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, Real):
        raise TypeError(f"iou_threshold must be a number in (0, 1], got {iou_threshold!r}.")
    if not 0 < float(iou_threshold) <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}.")
    stack = _check_slices(labels2d)
    if not relabel_layers and stack.shape[0] > 1 and not _numbered_per_layer(stack):
        continuity = layer_id_continuity(stack)
        if continuity > _CONTINUITY_LIMIT:
            raise ValueError(
                f"labels2d looks like a 3D label volume already: {continuity:.0%} of its ids "
                "continue into the next layer under the same id. stitch_slices expects each "
                "layer labelled on its own; to re-stitch it anyway, treating every layer's "
                "masks as independent, pass relabel_layers=True (overseg stitch: "
                "--relabel-layers)."
            )
    n_z = stack.shape[0]
    # 3D id of each (layer, 2D id): kept as sorted id arrays per layer.
    out_ids: list[np.ndarray] = []
    layer_ids: list[np.ndarray] = []
    next_id = 1
    for z in range(n_z):
        ids = np.unique(stack[z])
        ids = ids[ids != 0]
        new = np.zeros(len(ids), dtype=np.int64)
        if z > 0 and len(ids) and len(layer_ids[z - 1]):
            up, low, _, iou = _layer_overlaps(stack[z - 1], stack[z])
            ok = iou >= iou_threshold
            link = ok & _best(low, up, iou) & _best(up, low, iou)
            lower_pos = np.searchsorted(ids, low[link])
            upper_pos = np.searchsorted(layer_ids[z - 1], up[link])
            new[lower_pos] = out_ids[z - 1][upper_pos]
        fresh = new == 0
        new[fresh] = np.arange(next_id, next_id + int(fresh.sum()))
        next_id += int(fresh.sum())
        layer_ids.append(ids)
        out_ids.append(new)
    dtype = np.min_scalar_type(max(next_id - 1, 1))
    if dtype.kind != "u":
        dtype = np.dtype(np.uint8)
    volume = np.zeros(stack.shape, dtype=dtype)
    for z in range(n_z):
        if len(layer_ids[z]):
            lookup_pos = np.searchsorted(layer_ids[z], stack[z])
            lookup_pos = np.minimum(lookup_pos, len(layer_ids[z]) - 1)
            hit = layer_ids[z][lookup_pos] == stack[z]
            volume[z] = np.where(hit & (stack[z] != 0), out_ids[z][lookup_pos], 0)
    return volume

"""Shared builders for the benchmark scripts: paper-scale anisotropic label volumes.

The paper's medium stacks are about 2000 x 224 x 224 voxels at z:y:x = 4:1:1 with
thousands of cells. This machine has only small ground-truth crops, so a volume of that
scale is assembled from them: every 4th z slice of ``plant_tissue_a`` (which makes an
isotropic stack 4:1:1), cropped in-plane, flipped at random, relabelled with fresh ids and
stacked along z until ``n_z`` layers. Synthetic splits are then added with
:func:`sklearn_overseg.synthesis.flaws.synthesize_flaws`, which also returns the true merges.

The real-data folder is found by :func:`sklearn_overseg.synthesis.datasets.find_data_dir`
(``OVERSEG_DATA_DIR``, else ``shared/data`` beside the checkout). Without it the copies
are drawn from
:func:`sklearn_overseg.synthesis.datasets.make_tissue` at the same anisotropy instead. Everything is
deterministic given ``seed``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

# Benchmarks are run as scripts from anywhere; the package is not pip-installed.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sklearn_overseg.synthesis.datasets import find_data_dir  # noqa: E402
from sklearn_overseg.synthesis.flaws import synthesize_flaws  # noqa: E402

__all__ = [
    "SPACING",
    "BenchVolume",
    "count_cells",
    "paper_medium_volume",
    "source_name",
    "tissue_file",
    "training_volume",
]

#: Voxel size (z, y, x) of every benchmark volume: the paper's 4:1:1.
SPACING = (4.0, 1.0, 1.0)
#: z subsampling that turns the ~isotropic shared crop into a 4:1:1 stack.
_STEP = 4
#: Distinct synthetic blocks reused (flipped, relabelled) in the fallback.
_N_SYNTHETIC_BLOCKS = 6
_SYNTHETIC_BLOCK_DEPTH = 40


class BenchVolume(NamedTuple):
    """A flawed benchmark volume, its ground truth and the true merges."""

    flawed: np.ndarray
    truth: np.ndarray
    merges: pd.DataFrame


def tissue_file() -> Path | None:
    """``plant_tissue_a/labels_gt.tif`` in the real-data folder, or None without it.

    Looked up at each call, not at import, so that a wrong ``OVERSEG_DATA_DIR`` is
    reported by what uses the data, not by importing this module.
    """
    data = find_data_dir()
    path = None if data is None else data / "plant_tissue_a" / "labels_gt.tif"
    return path if path is not None and path.is_file() else None


def source_name() -> str:
    """Human-readable name of the data the volumes are built from."""
    if tissue_file() is not None:
        return f"plant_tissue_a GT (z[phase::{_STEP}] crops)"
    return "make_tissue fallback (shared data absent)"


def _load_tissue() -> np.ndarray:
    import tifffile

    path = tissue_file()
    if path is None:
        raise FileNotFoundError("plant_tissue_a/labels_gt.tif not found: set OVERSEG_DATA_DIR.")
    return np.asarray(tifffile.imread(path))


def _synthetic_blocks(size: int, seed: int) -> list[np.ndarray]:
    from sklearn_overseg.synthesis.datasets import make_tissue

    return [
        make_tissue(
            (_SYNTHETIC_BLOCK_DEPTH, size, size),
            cell_size=(40, 40, 40),
            anisotropy=float(_STEP),
            random_state=seed + k,
        )
        for k in range(_N_SYNTHETIC_BLOCKS)
    ]


def _fresh_ids(block: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
    """Relabel ``block`` to ``offset+1 ..`` (0 stays 0); returns it and the new offset."""
    ids, inverse = np.unique(block, return_inverse=True)
    inverse = inverse.reshape(block.shape).astype(np.int64)
    if ids[0] == 0:
        n_new = len(ids) - 1
        out = np.where(inverse > 0, inverse + offset, 0)
    else:
        n_new = len(ids)
        out = inverse + offset + 1
    return out, offset + n_new


def _smallest_uint(max_id: int) -> np.dtype:
    for dtype in (np.uint16, np.uint32):
        if max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _stacked_truth(n_z: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if tissue_file() is not None:
        source = _load_tissue()
        _, h, w = source.shape
        if size > min(h, w):
            raise ValueError(
                f"size={size} exceeds the in-plane extent {h}x{w} of plant_tissue_a; "
                f"use size <= {min(h, w)}."
            )

        def draw() -> np.ndarray:
            phase = int(rng.integers(_STEP))
            y0 = int(rng.integers(h - size + 1))
            x0 = int(rng.integers(w - size + 1))
            return source[phase::_STEP, y0 : y0 + size, x0 : x0 + size]

    else:
        blocks = _synthetic_blocks(size, seed)

        def draw() -> np.ndarray:
            return blocks[int(rng.integers(len(blocks)))]

    parts: list[np.ndarray] = []
    offset = 0
    filled = 0
    while filled < n_z:
        block = draw()
        # Flips make neighbouring copies differ even when they come from one crop.
        for axis in range(3):
            if rng.random() < 0.5:
                block = np.flip(block, axis=axis)
        block = block[: n_z - filled]
        block, offset = _fresh_ids(block, offset)
        parts.append(block)
        filled += block.shape[0]
    return np.concatenate(parts, axis=0)


def paper_medium_volume(
    n_z: int = 2000, size: int = 224, seed: int = 0, *, split_fraction: float = 0.3
) -> BenchVolume:
    """A paper-scale anisotropic volume with synthesised splits.

    Parameters
    ----------
    n_z : int, default=2000
        Number of z layers.
    size : int, default=224
        In-plane extent (Y = X).
    seed : int, default=0
        Drives crops, phases, flips and the flaw synthesis.
    split_fraction : float, default=0.3
        Passed to :func:`~sklearn_overseg.synthesis.flaws.synthesize_flaws`.

    Returns
    -------
    BenchVolume
        ``(flawed, truth, merges)``: the flawed volume, its ground truth (same shape,
        smallest unsigned dtype that holds both) and the table of true merges
        (``cell_a, cell_b, ...``). Voxel size is :data:`SPACING`.
    """
    if n_z < 1 or size < 1:
        raise ValueError(f"n_z and size must be positive, got n_z={n_z}, size={size}.")
    truth = _stacked_truth(int(n_z), int(size), int(seed))
    flawed = synthesize_flaws(truth, split_fraction=split_fraction, random_state=seed)
    labels = np.asarray(flawed.labels)
    dtype = _smallest_uint(int(max(labels.max(), truth.max())))
    return BenchVolume(labels.astype(dtype), truth.astype(dtype), flawed.merges)


def count_cells(volume: np.ndarray, slab: int = 64) -> int:
    """Number of distinct non-zero ids, in z slabs.

    ``np.bincount`` of the whole volume would first copy it to intp, eight bytes a voxel,
    which for a uint16 volume is four times its size.
    """
    present = np.zeros(int(volume.max()) + 1, dtype=bool)
    for z0 in range(0, volume.shape[0], slab):
        present[np.bincount(volume[z0 : z0 + slab].ravel(), minlength=present.size) > 0] = True
    return int(np.count_nonzero(present[1:]))


def training_volume() -> np.ndarray:
    """A small ground-truth volume to fit a stand-in corrector when no model is shipped.

    Every 4th layer (phase 2) of the full ``plant_tissue_a`` frame: the same tissue the
    benchmark volume is cut from, so scores of a stand-in model are optimistic.
    """
    if tissue_file() is not None:
        gt = _load_tissue()[2::_STEP]
    else:
        gt = _synthetic_blocks(160, seed=1000)[0]
    ids = _fresh_ids(gt, 0)[0]
    return ids.astype(_smallest_uint(int(ids.max())))

"""Builder of the ``paper_large`` benchmark volume: ~300 x 2008 x 2008 as chunked Zarr.

The paper's large stacks (about 300 x 2008 x 2008 voxels, z:y:x = 4:1:1) do not fit the
in-memory path comfortably, so the volume is written straight to Zarr, one z slab of tiles
at a time. Each tile is a copy of the shared ``plant_tissue_a`` ground truth taken at
``gt[phase::4]`` (4:1:1, 37 x 326 x 283) with a random phase and random flips, cropped
where it meets the volume's far borders, relabelled to ``1..n`` and flawed on its own with
:func:`sklearn_overseg.synthesis.flaws.synthesize_flaws`; its ids (flawed, truth and merges alike)
are then shifted by a running offset so that no id appears in two tiles. Flawing each
tile before tiling keeps the flaw synthesis in memory at tile size and makes every true
merge lie inside one tile.

Only one slab buffer (``tile depth x Y x X`` uint32, ~600 MB at the default size) is held:
it is filled with the flawed tiles, written, then refilled with the truth tiles (cheap to
recompute from the tile's recipe) and written again. Without the shared data the tiles
come from :func:`sklearn_overseg.synthesis.datasets.make_tissue` blocks, as in ``_volumes.py``.
Everything is deterministic given ``seed``; a directory that already holds a volume
built with the same parameters is reused.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _volumes import _STEP, SPACING, _fresh_ids, _load_tissue, tissue_file

from sklearn_overseg.synthesis.flaws import synthesize_flaws

__all__ = [
    "BUILD_FILE",
    "TILE_SHAPE",
    "build_paper_large",
    "disk_bytes",
    "load_build_info",
    "read_merges",
]

#: Bumped whenever the builder's output changes for the same parameters.
BUILDER_VERSION = 1
#: Parameters and results of a finished build; written last, so a partial build is rebuilt.
BUILD_FILE = "build.json"
#: One tile: ``plant_tissue_a[phase::4]`` has 37 (phase 3) or 38 layers of 326 x 283.
TILE_SHAPE = (37, 326, 283)
DTYPE = np.dtype(np.uint32)
_N_SYNTHETIC_BLOCKS = 6


@dataclass(frozen=True)
class _Recipe:
    """Everything needed to recreate one truth tile."""

    origin: tuple[int, int, int]
    extent: tuple[int, int, int]
    block: int  # phase (shared data) or synthetic block index
    flips: tuple[bool, bool, bool]
    flaw_seed: int


class _Source:
    """Draws full-size tiles from the shared tissue or from synthetic blocks."""

    def __init__(self, kind: str, seed: int, tile: tuple[int, int, int]) -> None:
        self.kind = kind
        self.seed = seed
        self.tile = tile
        self._blocks: dict[int, np.ndarray] = {}
        self._tissue = _load_tissue() if kind == "tissue" else None

    @property
    def n_blocks(self) -> int:
        return _STEP if self.kind == "tissue" else _N_SYNTHETIC_BLOCKS

    def block(self, k: int) -> np.ndarray:
        if self._tissue is not None:
            return self._tissue[k::_STEP]
        if k not in self._blocks:
            from sklearn_overseg.synthesis.datasets import make_tissue

            # Generated lazily, only as large as a tile of this volume can be.
            self._blocks[k] = make_tissue(
                self.tile, cell_size=(40, 40, 40), anisotropy=float(_STEP),
                random_state=self.seed + k,
            )  # fmt: skip
        return self._blocks[k]

    def truth_tile(self, recipe: _Recipe) -> tuple[np.ndarray, int]:
        """The tile relabelled to ``1..n`` (0 stays background) and ``n``."""
        block = self.block(recipe.block)
        for axis, flip in enumerate(recipe.flips):
            if flip:
                block = np.flip(block, axis=axis)
        dz, dy, dx = recipe.extent
        ids, n = _fresh_ids(block[:dz, :dy, :dx], 0)
        return ids.astype(DTYPE), n


def _resolve_source(source: str) -> str:
    if source not in ("auto", "tissue", "synthetic"):
        raise ValueError(f"source must be 'auto', 'tissue' or 'synthetic', got {source!r}.")
    if source == "synthetic":
        return source
    if tissue_file() is not None:
        return "tissue"
    if source == "tissue":
        raise FileNotFoundError(
            "source='tissue' but plant_tissue_a/labels_gt.tif was not found: set OVERSEG_DATA_DIR."
        )
    return "synthetic"
    return source


def _check_triple(value, name: str) -> tuple[int, int, int]:
    try:
        triple = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be three integers, got {value!r}.") from None
    if len(triple) != 3 or min(triple) < 1:
        raise ValueError(f"{name} must be three positive integers, got {value!r}.")
    return triple  # type: ignore[return-value]


def disk_bytes(path: str | Path) -> int:
    """Bytes of all files under ``path`` (a Zarr store directory)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_build_info(directory: str | Path) -> dict | None:
    """The ``build.json`` of a finished build in ``directory``, or None."""
    path = Path(directory) / BUILD_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _reusable(directory: Path, params: dict) -> dict | None:
    import zarr

    info = load_build_info(directory)
    if info is None or info.get("params") != params:
        return None
    try:
        for name in ("flawed", "truth"):
            arr = zarr.open_array(directory / f"{name}.zarr", mode="r")
            if tuple(arr.shape) != tuple(params["shape"]) or np.dtype(arr.dtype) != DTYPE:
                return None
            if tuple(arr.chunks) != tuple(params["chunks"]):
                return None
    except Exception:
        return None
    if not (directory / "merges.csv").exists():
        return None
    return {**info, "reused": True}


def build_paper_large(
    directory: str | Path,
    shape: tuple[int, int, int] = (300, 2008, 2008),
    chunks: tuple[int, int, int] = (16, 256, 256),
    seed: int = 0,
    split_fraction: float = 0.3,
    *,
    source: str = "auto",
) -> dict:
    """Build (or reuse) the large benchmark volume as Zarr arrays in ``directory``.

    Parameters
    ----------
    directory : str or Path
        Where ``flawed.zarr``, ``truth.zarr``, ``merges.csv``, ``hard_negatives.csv`` and
        ``build.json`` are written. Created if missing.
    shape : tuple of 3 ints, default=(300, 2008, 2008)
        Volume shape (Z, Y, X).
    chunks : tuple of 3 ints, default=(16, 256, 256)
        Zarr chunk shape of both arrays.
    seed : int, default=0
        Drives phases, flips, synthetic blocks and the flaw synthesis.
    split_fraction : float, default=0.3
        Passed to :func:`~sklearn_overseg.synthesis.flaws.synthesize_flaws` for every tile.
    source : {"auto", "tissue", "synthetic"}, default="auto"
        ``"tissue"``: tiles of the shared ``plant_tissue_a`` ground truth; ``"synthetic"``:
        :func:`~sklearn_overseg.synthesis.datasets.make_tissue` blocks; ``"auto"``: the tissue when
        the shared data exists.

    Returns
    -------
    info : dict
        Paths (``flawed``, ``truth``, ``merges``, ``hard_negatives``), ``params``,
        ``dtype``, ``tile_shape``, ``n_tiles``, ``n_cells`` (flawed), ``n_true_cells``,
        ``n_merges``, ``n_hard_negatives``, ``max_id``, ``nbytes`` (one array,
        uncompressed), ``disk_bytes`` (``flawed.zarr``), ``build_seconds`` and
        ``reused`` (True when an existing build was returned).
    """
    import zarr

    shape = _check_triple(shape, "shape")
    chunks = _check_triple(chunks, "chunks")
    kind = _resolve_source(source)
    directory = Path(directory)
    params = {
        "builder_version": BUILDER_VERSION,
        "shape": list(shape),
        "chunks": list(chunks),
        "seed": int(seed),
        "split_fraction": float(split_fraction),
        "source": kind,
    }
    reused = _reusable(directory, params)
    if reused is not None:
        return reused

    start = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / BUILD_FILE).unlink(missing_ok=True)
    paths = {name: directory / f"{name}.zarr" for name in ("flawed", "truth")}
    arrays = {}
    for name, path in paths.items():
        if path.exists():
            shutil.rmtree(path)
        arrays[name] = zarr.create_array(
            store=str(path), shape=shape, dtype=DTYPE, chunks=chunks, fill_value=0,
            attributes={"spacing_zyx": list(SPACING)},
        )  # fmt: skip

    tile = tuple(min(t, s) for t, s in zip(TILE_SHAPE, shape, strict=True))
    src = _Source(kind, int(seed), tile)
    rng = np.random.default_rng(seed)
    grid = [math.ceil(s / t) for s, t in zip(shape, tile, strict=True)]
    offset = 0
    merges: list[pd.DataFrame] = []
    negatives: list[pd.DataFrame] = []
    n_cells = n_true = 0
    buffer = np.zeros((tile[0], shape[1], shape[2]), dtype=DTYPE)
    for iz in range(grid[0]):
        z0 = iz * tile[0]
        dz = min(tile[0], shape[0] - z0)
        recipes: list[tuple[_Recipe, int]] = []
        buffer[:dz] = 0
        for iy in range(grid[1]):
            for ix in range(grid[2]):
                y0, x0 = iy * tile[1], ix * tile[2]
                recipe = _Recipe(
                    origin=(z0, y0, x0),
                    extent=(dz, min(tile[1], shape[1] - y0), min(tile[2], shape[2] - x0)),
                    block=int(rng.integers(src.n_blocks)),
                    flips=tuple(bool(f) for f in rng.random(3) < 0.5),
                    flaw_seed=int(rng.integers(2**31 - 1)),
                )
                truth, n = src.truth_tile(recipe)
                flawed = synthesize_flaws(
                    truth, split_fraction=split_fraction, random_state=recipe.flaw_seed
                )
                labels = np.asarray(flawed.labels, dtype=np.int64)
                present = np.unique(labels)
                n_cells += int(np.count_nonzero(present))
                n_true += n
                labels[labels > 0] += offset
                _, ey, ex = recipe.extent
                buffer[:dz, y0 : y0 + ey, x0 : x0 + ex] = labels
                for table, out in ((flawed.merges, merges), (flawed.hard_negatives, negatives)):
                    if len(table):
                        table = table.copy()
                        table[["cell_a", "cell_b"]] += offset
                        out.append(table)
                recipes.append((recipe, offset))
                offset += max(int(present[-1]), n)
        arrays["flawed"][z0 : z0 + dz] = buffer[:dz]
        buffer[:dz] = 0
        for recipe, tile_offset in recipes:
            truth, _ = src.truth_tile(recipe)
            truth[truth > 0] += DTYPE.type(tile_offset)
            _, ey, ex = recipe.extent
            _, y0, x0 = recipe.origin
            buffer[:dz, y0 : y0 + ey, x0 : x0 + ex] = truth
        arrays["truth"][z0 : z0 + dz] = buffer[:dz]
    del buffer
    if offset > np.iinfo(DTYPE).max:
        raise OverflowError(f"{offset} ids do not fit {DTYPE}; use a smaller shape.")

    merge_table = _concat(merges, ("cell_a", "cell_b", "flaw", "z", "gap"))
    negative_table = _concat(negatives, ("cell_a", "cell_b", "z", "gap"))
    merge_path = directory / "merges.csv"
    negative_path = directory / "hard_negatives.csv"
    merge_table.to_csv(merge_path, index=False)
    negative_table.to_csv(negative_path, index=False)
    info = {
        "params": params,
        "directory": str(directory),
        "flawed": str(paths["flawed"]),
        "truth": str(paths["truth"]),
        "merges": str(merge_path),
        "hard_negatives": str(negative_path),
        "dtype": DTYPE.name,
        "spacing": list(SPACING),
        "tile_shape": list(tile),
        "n_tiles": int(np.prod(grid)),
        "n_cells": n_cells,
        "n_true_cells": n_true,
        "n_merges": len(merge_table),
        "n_hard_negatives": len(negative_table),
        "max_id": offset,
        "nbytes": int(np.prod(shape)) * DTYPE.itemsize,
        "disk_bytes": disk_bytes(paths["flawed"]),
        "build_seconds": time.perf_counter() - start,
    }
    (directory / BUILD_FILE).write_text(json.dumps(info, indent=1))
    return {**info, "reused": False}


def _concat(tables: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in columns})
    return pd.concat(tables, ignore_index=True)


def read_merges(info: dict) -> pd.DataFrame:
    """The true merges of a build (``cell_a, cell_b, flaw, z, gap``)."""
    return pd.read_csv(info["merges"])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build the paper_large Zarr volume.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 2008, 2008))
    parser.add_argument("--chunks", type=int, nargs=3, default=(16, 256, 256))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="auto", choices=("auto", "tissue", "synthetic"))
    args = parser.parse_args()
    result = build_paper_large(
        args.directory, tuple(args.shape), tuple(args.chunks), args.seed, source=args.source
    )
    print(json.dumps(result, indent=1))

"""The candidate table: one row per suspected split, self-contained.

Feature transformers read only this table, never the volume. That is what lets a
table be split with ``GroupKFold(groups=table["volume"])``, cached, shipped to joblib
or Dask workers, and concatenated across volumes.

``voxels_a``/``voxels_b`` are the cells' sizes, and ``ref_layers``/``ref_voxels`` the
z-extent and size of the volume's typical cell (medians weighted by voxel count, see
:meth:`~sklearn_overseg.screening.cells.CellIndex.typical_cell`): a scale that lets a
model ask whether A and B together would make an unusually tall or large cell.

Each row carries a :class:`PairGeometry` in its ``geometry`` column: the per-layer 2D
masks of cell A and cell B, cropped to one common in-plane frame and ordered along the
cut normal so that ``a[-1]`` and ``b[0]`` face each other across the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "CANDIDATE_COLUMNS",
    "PairGeometry",
    "concat_tables",
    "empty_candidate_table",
]

#: Columns of every candidate table, in order (``geometry`` last).
CANDIDATE_COLUMNS: tuple[str, ...] = (
    "volume",
    "cell_a",
    "cell_b",
    "kind",
    "gap",
    "z_a_first",
    "z_a_last",
    "z_b_first",
    "z_b_last",
    "overlap_px",
    "contact_px",
    "voxels_a",
    "voxels_b",
    "ref_layers",
    "ref_voxels",
    "geometry",
)


@dataclass(frozen=True, eq=False)
class PairGeometry:
    """The 2D masks of a candidate pair, layer by layer, in one shared frame.

    Parameters
    ----------
    a : ndarray of bool, shape (n_a, H, W)
        Layers of cell A, ordered towards the gap: ``a[-1]`` is A's layer that faces B.
        Layers where A has no pixel (ids with several pieces, or hand-edited masks)
        are kept so that layer indices stay physical; features skip them.
    b : ndarray of bool, shape (n_b, H, W)
        Layers of cell B, ordered away from the gap: ``b[0]`` faces A.
    gap : int
        Number of missing layers between ``a[-1]`` and ``b[0]`` (0 = adjacent).
    spacing : tuple of float
        Physical (row, column) pixel size of the in-plane frame.
    layer_step : float
        Physical distance between consecutive layers.
    origin : tuple of int
        For axial pairs, (y0, x0) of the frame in the volume, so that a mask pixel
        ``(r, c)`` is voxel ``(z, y0 + r, x0 + c)``. Informational for contact pairs.
    """

    a: np.ndarray
    b: np.ndarray
    gap: int = 0
    spacing: tuple[float, float] = (1.0, 1.0)
    layer_step: float = 1.0
    origin: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for side in ("a", "b"):
            stack = getattr(self, side)
            if not isinstance(stack, np.ndarray) or stack.ndim != 3 or stack.dtype != bool:
                raise TypeError(f"PairGeometry.{side} must be a 3D bool array.")
        if self.a.shape[1:] != self.b.shape[1:]:
            raise ValueError(
                f"PairGeometry frames differ: a {self.a.shape[1:]} vs b {self.b.shape[1:]}."
            )
        if self.gap < 0:
            raise ValueError(f"gap must be >= 0, got {self.gap}.")

    @property
    def n_layers_a(self) -> int:
        """Number of layers of A (including empty ones)."""
        return int(self.a.shape[0])

    @property
    def n_layers_b(self) -> int:
        """Number of layers of B (including empty ones)."""
        return int(self.b.shape[0])

    def layers(self) -> np.ndarray:
        """Stack of A's then B's layers with the gap removed, shape (n_a + n_b, H, W)."""
        return np.concatenate([self.a, self.b], axis=0)

    def __repr__(self) -> str:
        return (
            f"PairGeometry(a={self.a.shape[0]} layers, b={self.b.shape[0]} layers, "
            f"frame={self.a.shape[1:]}, gap={self.gap})"
        )


def empty_candidate_table() -> pd.DataFrame:
    """A candidate table with the right columns and dtypes and no row."""
    table = pd.DataFrame(
        {
            "volume": pd.Series([], dtype=object),
            "cell_a": pd.Series([], dtype=np.int64),
            "cell_b": pd.Series([], dtype=np.int64),
            "kind": pd.Series([], dtype=object),
            "gap": pd.Series([], dtype=np.int64),
            "z_a_first": pd.Series([], dtype=np.int64),
            "z_a_last": pd.Series([], dtype=np.int64),
            "z_b_first": pd.Series([], dtype=np.int64),
            "z_b_last": pd.Series([], dtype=np.int64),
            "overlap_px": pd.Series([], dtype=np.int64),
            "contact_px": pd.Series([], dtype=np.int64),
            "voxels_a": pd.Series([], dtype=np.int64),
            "voxels_b": pd.Series([], dtype=np.int64),
            "ref_layers": pd.Series([], dtype=np.float64),
            "ref_voxels": pd.Series([], dtype=np.float64),
            "geometry": pd.Series([], dtype=object),
        }
    )
    table.index.name = "candidate"
    return table


def candidate_ids(volume: str, cell_a, cell_b, kind) -> list[str]:
    """Readable, unique row ids ``"volume:a-b:kind"`` that survive concatenation."""
    return [f"{volume}:{a}-{b}:{k}" for a, b, k in zip(cell_a, cell_b, kind, strict=True)]


def concat_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate candidate tables from several volumes.

    Raises
    ------
    ValueError
        If two tables share a row id, which happens when two volumes were given
        the same ``volume`` key.
    """
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_candidate_table()
    table = pd.concat(tables, axis=0)
    if not table.index.is_unique:
        dup = table.index[table.index.duplicated()][0]
        raise ValueError(
            f"candidate id {dup!r} occurs twice: give each volume its own `volume` key."
        )
    return table

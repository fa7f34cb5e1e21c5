"""Shared fixtures: the repository root on sys.path and the optional shared data folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Real ground-truth volumes live beside the repository when the workplace provides them.
DATA_DIR = ROOT.parent / "shared" / "data"


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data folder, or a skip when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def plant_tissue(data_dir: Path) -> np.ndarray:
    """Dense plant tissue ground truth (151×326×283), read-only."""
    vol = _read_tif(data_dir / "plant_tissue_a" / "labels_gt.tif")
    vol.setflags(write=False)
    return vol


@pytest.fixture(scope="session")
def plant_ovule(data_dir: Path) -> np.ndarray:
    """Arabidopsis ovule ground truth (32×128×128), read-only."""
    vol = _read_tif(data_dir / "plant_ovule" / "labels_gt.tif")
    vol.setflags(write=False)
    return vol

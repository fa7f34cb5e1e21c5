"""Tests of the synthetic tissue generator and the bundled demo volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as connected_components

from sklearn_overseg.synthesis.datasets import (
    DATA_DIR,
    DEMO_FILE,
    DEMO_RAW_FILE,
    load_demo,
    make_tissue,
)


def _extents(labels: np.ndarray, interior: bool = True) -> np.ndarray:
    """Bounding-box extents (z, y, x) of the cells, optionally only those off the border."""
    boxes = [b for b in ndimage.find_objects(labels) if b is not None]
    if interior:
        boxes = [
            b
            for b in boxes
            if all(s.start > 0 and s.stop < n for s, n in zip(b, labels.shape, strict=True))
        ]
    return np.array([[s.stop - s.start for s in b] for b in boxes], dtype=float)


@pytest.fixture(scope="module")
def dense() -> np.ndarray:
    return make_tissue((20, 64, 64), random_state=0)


def test_shape_dtype_and_consecutive_ids(dense):
    assert dense.shape == (20, 64, 64) and dense.dtype == np.uint32
    ids = np.unique(dense)
    np.testing.assert_array_equal(ids, np.arange(1, ids[-1] + 1))  # dense: no 0 at all


def test_default_cell_count_follows_cell_size(dense):
    # 1.38**3 * (20/6) * (64/24) * (64/24) = 62.3 seeds
    assert 56 <= dense.max() <= 62
    ext = _extents(make_tissue((30, 120, 120), random_state=1))
    np.testing.assert_allclose(ext.mean(axis=0), (6, 24, 24), rtol=0.2)


def test_explicit_n_cells():
    labels = make_tissue((16, 48, 48), n_cells=40, random_state=0)
    assert 36 <= labels.max() <= 40
    assert make_tissue((4, 8, 8), n_cells=1, random_state=0).max() == 1


def test_cells_are_single_pieces(dense):
    loose = make_tissue((20, 64, 64), mode="loose", random_state=0)
    for labels in (dense, loose):
        pieces = connected_components(labels, background=0, connectivity=1)
        assert pieces.max() == labels.max()


def test_cells_fill_space_evenly(dense):
    sizes = np.bincount(dense.ravel())[1:]
    assert sizes.min() > 0
    assert sizes.std() / sizes.mean() < 0.6  # Lloyd relaxation evens out the cells
    raw = np.bincount(make_tissue((20, 64, 64), n_relax=0, random_state=0).ravel())[1:]
    assert raw.std() / raw.mean() > sizes.std() / sizes.mean()


@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_loose_background_fraction(fraction):
    labels = make_tissue((20, 64, 64), mode="loose", background_fraction=fraction, random_state=0)
    assert abs(np.mean(labels == 0) - fraction) < 0.03
    assert labels.max() >= 50  # cells shrink, they do not vanish


def test_loose_default_has_air_and_dense_has_none(dense):
    loose = make_tissue((20, 64, 64), mode="loose", random_state=0)
    assert 0.17 < np.mean(loose == 0) < 0.23
    assert np.mean(dense == 0) == 0.0


def test_anisotropy_reduces_z_extent():
    iso = _extents(make_tissue((40, 64, 64), cell_size=(24, 24, 24), random_state=0), False)
    aniso = _extents(
        make_tissue((40, 64, 64), cell_size=(24, 24, 24), anisotropy=4, random_state=0), False
    )
    iso_ratio = iso[:, 0].mean() / iso[:, 1].mean()
    aniso_ratio = aniso[:, 0].mean() / aniso[:, 1].mean()
    assert 0.7 < iso_ratio < 1.4
    assert 0.15 < aniso_ratio < 0.4  # about 1/4
    assert aniso_ratio < iso_ratio / 2.5


def test_wall_curvature_bends_walls():
    flat = make_tissue((12, 48, 48), wall_curvature=0.0, random_state=0)
    bent = make_tissue((12, 48, 48), wall_curvature=0.3, random_state=0)
    # Flat Voronoi cells are convex: every layer's mask fills its convex hull.
    from skimage.morphology import convex_hull_image

    def non_convex(labels):
        missing = 0
        for z in range(labels.shape[0]):
            for c in np.unique(labels[z]):
                mask = labels[z] == c
                if mask.any(axis=0).sum() > 1 and mask.any(axis=1).sum() > 1:
                    hull = convex_hull_image(mask, offset_coordinates=False)
                    missing += np.count_nonzero(hull & ~mask)
        return missing / labels.size

    assert non_convex(flat) < 5e-4
    assert non_convex(bent) > 4e-3


def test_determinism():
    a = make_tissue((10, 32, 32), random_state=5)
    b = make_tissue((10, 32, 32), random_state=np.random.RandomState(5))
    c = make_tissue((10, 32, 32), random_state=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = make_tissue((10, 32, 32), mode="loose", random_state=5)
    np.testing.assert_array_equal(d, make_tissue((10, 32, 32), mode="loose", random_state=5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (10, 10)}, "shape"),
        ({"shape": (0, 10, 10)}, "shape"),
        ({"shape": (4.5, 10, 10)}, "shape"),
        ({"shape": 10}, "shape"),
        ({"mode": "sparse"}, "mode"),
        ({"anisotropy": 0}, "anisotropy"),
        ({"anisotropy": -2.0}, "anisotropy"),
        ({"anisotropy": float("nan")}, "anisotropy"),
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": 10**6}, "n_cells"),
        ({"cell_size": (6, 24)}, "cell_size"),
        ({"cell_size": (6, -1, 24)}, "cell_size"),
        ({"wall_curvature": -0.1}, "wall_curvature"),
        ({"background_fraction": 0.2}, "loose"),
        ({"mode": "loose", "background_fraction": 0.95}, "background_fraction"),
        ({"n_relax": -1}, "n_relax"),
        ({"n_relax": 1.5}, "n_relax"),
    ],
)
def test_bad_parameters(kwargs, match):
    kwargs = {"shape": (8, 16, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        make_tissue(**kwargs)


# ------------------------------------------------------------------ demo


def test_demo_file_is_bundled():
    path = Path(DATA_DIR) / DEMO_FILE
    assert path.is_file() and path.stat().st_size < 1_000_000
    readme = (Path(DATA_DIR) / "README.md").read_text()
    assert "kreshuklab/plant-seg" in readme and "MIT" in readme


def test_load_demo_ground_truth():
    demo = load_demo(flawed=False)
    gt = demo.ground_truth
    assert gt.shape == (32, 128, 128)
    assert len(np.unique(gt)) - 1 == 50
    assert demo.spacing == (0.235, 0.15, 0.15)
    np.testing.assert_array_equal(demo.labels, gt)
    assert demo.labels is not gt
    assert demo.merges.empty and demo.hard_negatives.empty
    assert list(demo.merges.columns) == ["cell_a", "cell_b", "flaw", "z", "gap"]
    assert "plant-seg" in demo.description and "MIT" in demo.description


def test_load_demo_flawed_roundtrip():
    demo = load_demo()
    gt, labels, merges = demo.ground_truth, demo.labels, demo.merges
    # 30 % of the cells that can be split with an overlapping blank layer.
    assert 8 <= len(merges) <= 15 and (merges.flaw == "blank").all()
    top = int(gt.max())
    assert merges.cell_b.tolist() == list(range(top + 1, top + 1 + len(merges)))
    lut = np.arange(int(labels.max()) + 1)
    lut[merges.cell_b] = merges.cell_a
    restored = lut[labels]
    for a, z in merges[["cell_a", "z"]].to_numpy():
        assert not np.any(restored[z] == a) and np.any(gt[z] == a)
        restored[z][gt[z] == a] = a
    for a, z in demo.hard_negatives[["cell_a", "z"]].to_numpy():
        restored[z][gt[z] == a] = a
    np.testing.assert_array_equal(restored, gt)
    again = load_demo(random_state=0)
    np.testing.assert_array_equal(again.labels, labels)
    assert not np.array_equal(load_demo(random_state=1).labels, labels)


def test_demo_matches_shared_copy(data_dir):
    import tifffile

    shared = tifffile.imread(data_dir / "plant_ovule" / "labels_gt.tif")
    np.testing.assert_array_equal(load_demo(flawed=False).ground_truth, shared)


def test_demo_raw_image_is_bundled():
    import tifffile

    path = Path(DATA_DIR) / DEMO_RAW_FILE
    assert path.is_file() and path.stat().st_size < 400_000
    assert DEMO_RAW_FILE in (Path(DATA_DIR) / "README.md").read_text()
    demo = load_demo(flawed=False)
    assert demo.raw.shape == demo.ground_truth.shape and demo.raw.dtype == np.uint8
    with tifffile.TiffFile(path) as tif:
        assert tif.shaped_metadata[0]["spacing_zyx_um"] == list(demo.spacing)
    # Membranes are bright: voxels on a cell boundary outshine cell interiors.
    from skimage.segmentation import find_boundaries

    wall = find_boundaries(demo.ground_truth, mode="inner")
    assert demo.raw[wall].mean() > demo.raw[~wall].mean() + 50


def test_demo_raw_matches_shared_copy(data_dir):
    import tifffile

    shared = tifffile.imread(data_dir / "plant_ovule" / "raw.tif")
    np.testing.assert_array_equal(load_demo(flawed=False).raw, shared)

"""The lateral solidity's hull count is skimage's ``convex_hull_image`` count, exactly.

The shipped model was trained on features computed with
``np.count_nonzero(skimage.morphology.convex_hull_image(mask))``; the faster
``_hull_pixel_counts`` must give the same integers on every mask (blobs, lines of every
slope, single pixels, L-shapes, scattered pixels, empty masks), and ``LateralFeatures``
must give the same bits as with the old per-mask skimage solidity.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage
from skimage.morphology import convex_hull_image

import sklearn_overseg.features.lateral as lateral_module
from sklearn_overseg.features.lateral import LateralFeatures, _hull_pixel_counts
from sklearn_overseg.screening.lateral import LateralScreener

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _skimage_count(mask: np.ndarray) -> int:
    if not mask.any():
        return 0  # skimage warns and returns an empty image
    return int(np.count_nonzero(convex_hull_image(mask)))


def _old_solidity(mask: np.ndarray) -> float:
    """``lateral._solidity`` as the shipped model's features were computed."""
    area = np.count_nonzero(mask)
    if area < 3:
        return 1.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    hull = np.count_nonzero(convex_hull_image(mask))
    return area / hull if hull else 1.0


def _check(masks: np.ndarray) -> None:
    got = _hull_pixel_counts(masks)
    want = [_skimage_count(m) for m in masks]
    assert got.tolist() == want


def _shapes() -> dict[str, np.ndarray]:
    shapes = {}
    one = np.zeros((5, 7), dtype=bool)
    one[2, 3] = True
    shapes["single pixel"] = one
    shapes["1x1 frame"] = np.ones((1, 1), dtype=bool)
    shapes["one row"] = np.ones((1, 9), dtype=bool)
    shapes["one column"] = np.ones((9, 1), dtype=bool)
    shapes["two far pixels"] = np.zeros((9, 9), dtype=bool)
    shapes["two far pixels"][[0, 8], [0, 8]] = True
    shapes["knight's move"] = np.zeros((4, 4), dtype=bool)
    shapes["knight's move"][[0, 2], [0, 1]] = True
    shapes["diagonal"] = np.eye(12, dtype=bool)
    shapes["anti-diagonal"] = np.eye(12, dtype=bool)[::-1]
    steep = np.zeros((15, 6), dtype=bool)
    steep[np.arange(15), np.arange(15) * 5 // 14] = True
    shapes["steep line"] = steep
    shapes["shallow line"] = steep.T.copy()
    ell = np.zeros((10, 10), dtype=bool)
    ell[1:9, 1:3] = True
    ell[7:9, 1:9] = True
    shapes["L-shape"] = ell
    shapes["rotated L"] = np.rot90(ell).copy()
    shapes["checkerboard"] = (np.indices((7, 8)).sum(axis=0) % 2).astype(bool)
    yy, xx = np.mgrid[:40, :50]
    disc = (yy - 20) ** 2 + (xx - 24) ** 2 < 15**2
    shapes["disc"] = disc
    crescent = disc & ~((yy - 20) ** 2 + (xx - 30) ** 2 < 12**2)
    shapes["crescent"] = crescent
    gap = np.zeros((9, 9), dtype=bool)
    gap[1, 1:4] = gap[7, 5:8] = True  # empty rows between the parts
    shapes["parts with empty rows between"] = gap
    shapes["disc cut by the frame"] = disc[:, :30]
    return shapes


@pytest.mark.parametrize("name", list(_shapes()))
def test_hull_count_matches_skimage_on_shapes(name):
    mask = _shapes()[name]
    _check(mask[None])
    _check(mask.T[None])
    _check(mask[::-1, ::-1][None])


def test_hull_count_stack_with_empty_masks():
    shapes = [m for m in _shapes().values() if m.shape == (9, 9)]
    stack = np.stack([np.zeros((9, 9), dtype=bool), *shapes, np.zeros((9, 9), dtype=bool)])
    _check(stack)
    assert _hull_pixel_counts(np.zeros((3, 4, 5), dtype=bool)).tolist() == [0, 0, 0]


def test_hull_count_matches_skimage_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = rng.integers(1, 40, size=2)
        kind = rng.integers(4)
        if kind == 0:  # sparse noise
            mask = rng.random((h, w)) < rng.random() * 0.2
        elif kind == 1:  # blobs
            seeds = rng.random((h, w)) < 0.03
            mask = ndimage.binary_dilation(seeds, iterations=int(rng.integers(1, 6)))
        elif kind == 2:  # a random segment, 1 px wide
            t = np.linspace(0, 1, 200)
            (y0, y1), (x0, x1) = rng.integers(0, h, 2), rng.integers(0, w, 2)
            mask = np.zeros((h, w), dtype=bool)
            rows, cols = np.rint(y0 + t * (y1 - y0)), np.rint(x0 + t * (x1 - x0))
            mask[rows.astype(int), cols.astype(int)] = True
        else:  # a disc, cut by the frame, with pixels missing here and there
            yy, xx = np.mgrid[:h, :w]
            cy, cx, r = rng.random(3) * (h, w, max(h, w))
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            mask &= rng.random((h, w)) < 0.97
        _check(mask[None])
    # Stacks of several masks on one frame, as LateralFeatures passes them.
    for _ in range(50):
        stack = rng.random((3, 20, 25)) < rng.random((3, 1, 1)) * 0.3
        _check(stack)


@SETTINGS
@given(
    hnp.arrays(
        dtype=bool,
        shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12),
        elements=st.booleans(),
    )
)
def test_hull_count_matches_skimage_property(stack):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage's qhull on odd inputs
        _check(stack)


def _reference_solidities(masks):
    return [_old_solidity(m) for m in masks]


def _assert_features_unchanged(volume, monkeypatch, **screen):
    table = LateralScreener(**screen).screen(volume)
    assert len(table) > 10
    est = LateralFeatures(n_jobs=1).fit(table)
    new = est.transform(table)
    with monkeypatch.context() as patch:
        patch.setattr(lateral_module, "_solidities", _reference_solidities)
        old = est.transform(table)
    # Bit for bit: the shipped model was trained on the old values.
    assert new.tobytes() == old.tobytes()


def test_lateral_features_unchanged_on_stitched_tissue(monkeypatch):
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched

    gt = make_tissue((16, 64, 64), cell_size=(16, 16, 16), random_state=1)
    labels = synthesize_stitched(gt, cut_rate=0.2, random_state=1).labels
    _assert_features_unchanged(labels, monkeypatch, max_distance=2)


def test_lateral_features_unchanged_on_real_tissue(plant_tissue, monkeypatch):
    from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched

    labels = synthesize_stitched(plant_tissue[::4], cut_rate=0.05, random_state=0).labels
    _assert_features_unchanged(labels, monkeypatch, max_distance=2)

"""The fast EMD path must give bit-identical floats to the original implementation.

A shipped pretrained model was trained on the Geo-Wasserstein features, so any speed-up of
:mod:`sklearn_overseg.features.ot` or :mod:`sklearn_overseg.features.geo_wasserstein` must not move
a single bit. This file freezes a private copy of the implementation as it was before the speed-up
(``_ref_*``, calling ``ot.emd2`` through POT's public wrapper) and compares with ``==``.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import numpy as np
import ot as pot
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.utils import check_random_state

from sklearn_overseg._validation import check_spacing
from sklearn_overseg.features.geo_wasserstein import GeoWassersteinFeatures
from sklearn_overseg.features.ot import (
    _projection_angles,
    _sliced_emd,
    mask_wasserstein,
    pairwise_layer_distances,
)
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.candidates import PairGeometry
from sklearn_overseg.synthesis.datasets import make_tissue

# ------------------------------------------------------------ frozen reference copy
# Verbatim (modulo names) from sklearn_overseg/features/ot.py and features.py before the speed-up.

_NUM_ITER_MAX = 10_000_000


def _ref_signed_parts(mask1, mask2):
    union = mask1 | mask2
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    m1, m2 = mask1[box], mask2[box]
    n1, n2 = int(np.count_nonzero(m1)), int(np.count_nonzero(m2))
    net = m1 * (1.0 / n1) - m2 * (1.0 / n2)
    tol = 1e-12 / min(n1, n2)
    pos_rc = np.argwhere(net > tol)
    neg_rc = np.argwhere(net < -tol)
    pos_w = net[pos_rc[:, 0], pos_rc[:, 1]]
    neg_w = -net[neg_rc[:, 0], neg_rc[:, 1]]
    total = float(pos_w.sum())
    return pos_rc, pos_w, neg_rc, neg_w, total


def _ref_emd(pos_xy, pos_w, neg_xy, neg_w):
    total = pos_w.sum()
    a = pos_w / total
    b = neg_w / neg_w.sum()
    cost = cdist(pos_xy, neg_xy)
    return float(pot.emd2(a, b, cost, numItermax=_NUM_ITER_MAX)) * float(total)


def _ref_coarsen(rc, w, k):
    if k == 1:
        return rc.astype(float), w
    block_r, block_c = rc[:, 0] // k, rc[:, 1] // k
    ncols = int(block_c.max()) + 1
    keys = block_r * ncols + block_c
    uniq, inverse = np.unique(keys, return_inverse=True)
    mass = np.bincount(inverse, weights=w, minlength=uniq.size)
    r = np.bincount(inverse, weights=w * rc[:, 0], minlength=uniq.size) / mass
    c = np.bincount(inverse, weights=w * rc[:, 1], minlength=uniq.size) / mass
    return np.column_stack([r, c]), mass


def _ref_n_blocks(rc, k):
    if k == 1:
        return rc.shape[0]
    block_r, block_c = rc[:, 0] // k, rc[:, 1] // k
    return np.unique(block_r * (int(block_c.max()) + 1) + block_c).size


def _ref_coarse_emd(pos_rc, pos_w, neg_rc, neg_w, scale, max_points):
    n_max = max(pos_rc.shape[0], neg_rc.shape[0])
    k = max(1, int(np.ceil(np.sqrt(n_max / max_points))))
    while _ref_n_blocks(pos_rc, k) > max_points or _ref_n_blocks(neg_rc, k) > max_points:
        k += 1
    pos_xy, pos_m = _ref_coarsen(pos_rc, pos_w, k)
    neg_xy, neg_m = _ref_coarsen(neg_rc, neg_w, k)
    return _ref_emd(pos_xy * scale, pos_m, neg_xy * scale, neg_m)


def _ref_distance(m1, m2, scale, method, max_exact_points, n_projections, random_state):
    pos_rc, pos_w, neg_rc, neg_w, total = _ref_signed_parts(m1, m2)
    if pos_rc.shape[0] == 0 or neg_rc.shape[0] == 0 or total <= 0.0:
        return 0.0
    if method == "sliced":
        angles = _projection_angles(n_projections, random_state)
        return _sliced_emd(pos_rc * scale, pos_w, neg_rc * scale, neg_w, angles)
    if method == "exact":
        return _ref_emd(pos_rc * scale, pos_w, neg_rc * scale, neg_w)
    return _ref_coarse_emd(pos_rc, pos_w, neg_rc, neg_w, scale, max_exact_points)


def _ref_layer_distances(stack, scale, method, max_exact_points, n_projections, random_state):
    keep = np.flatnonzero(stack.any(axis=(1, 2)))
    rng = (
        random_state
        if isinstance(random_state, np.random.Generator)
        else check_random_state(random_state)
    )
    out = np.empty(max(keep.size - 1, 0), dtype=float)
    for j in range(out.size):
        out[j] = _ref_distance(
            stack[keep[j]], stack[keep[j + 1]], scale, method, max_exact_points, n_projections, rng
        )
    return out


def _ref_cell_distances(stack, args, cache):
    if cache is None:
        return _ref_layer_distances(stack, *args)
    rows = np.flatnonzero(stack.any(axis=(0, 2)))
    cols = np.flatnonzero(stack.any(axis=(0, 1)))
    if rows.size == 0:
        return _ref_layer_distances(stack, *args)
    crop = stack[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    key = (crop.shape, hashlib.blake2b(np.packbits(crop).tobytes(), digest_size=16).digest())
    if key not in cache:
        cache[key] = _ref_layer_distances(crop, *args)
    return cache[key]


def _ref_emd_row(geom, rng, *, spacing, method, max_exact_points, n_projections, normalize,
                 quantiles, cache):  # fmt: skip
    keep_a = np.flatnonzero(geom.a.any(axis=(1, 2)))
    keep_b = np.flatnonzero(geom.b.any(axis=(1, 2)))
    scale_t = spacing if spacing is not None else check_spacing(geom.spacing, ndim=2)
    scale = np.asarray(scale_t, dtype=float)
    args = (scale, method, max_exact_points, n_projections, rng)
    d_a = _ref_cell_distances(geom.a, args, cache)
    gap = _ref_distance(geom.a[keep_a[-1]], geom.b[keep_b[0]], *args)
    d_b = _ref_cell_distances(geom.b, args, cache)
    unit = 1.0
    if normalize:
        counts = np.concatenate(
            [
                np.count_nonzero(geom.a[keep_a], axis=(1, 2)),
                np.count_nonzero(geom.b[keep_b], axis=(1, 2)),
            ]
        )
        unit = float(np.sqrt(counts.mean() * scale.prod() / np.pi))
    floor = 0.25 * float(scale.min()) / unit
    out = [gap / unit]
    medians = []
    for d in (d_a / unit, d_b / unit):
        if d.size:
            out.extend(np.quantile(d, quantiles).tolist())
            medians.append(float(np.median(d)))
        else:
            out.extend([0.0] * quantiles.size)
            medians.append(None)
        out.append(float(d.size))
    for med in medians:
        out.append(0.0 if med is None else (gap / unit) / max(med, floor))
    return np.asarray(out, dtype=float)


def _ref_features(table: pd.DataFrame, **params: Any) -> np.ndarray:
    """``GeoWassersteinFeatures(**params).fit_transform(table)`` as it was (one chunk)."""
    est = GeoWassersteinFeatures(**params).fit(table)
    spacing = None if est.spacing is None else check_spacing(est.spacing, ndim=2)
    base_seed = int(check_random_state(est.random_state).randint(np.iinfo(np.int32).max))
    quantiles = np.asarray([q for _, q in est.statistics_], dtype=float)
    cache = None if est.method == "sliced" else {}
    rows = []
    for geom, row_id in zip(table["geometry"], table.index, strict=True):
        key = zlib.crc32(str(row_id).encode("utf-8"))
        rng = np.random.default_rng(np.random.SeedSequence([base_seed, key]))
        rows.append(
            _ref_emd_row(
                geom,
                rng,
                spacing=spacing,
                method=est.method,
                max_exact_points=int(est.max_exact_points),
                n_projections=int(est.n_projections),
                normalize=bool(est.normalize),
                quantiles=quantiles,
                cache=cache,
            )
        )
    return np.vstack(rows)


def _ref_mask_wasserstein(m1, m2, *, spacing=(1.0, 1.0), method="auto", max_exact_points=120):
    scale = np.asarray(check_spacing(spacing, ndim=2))
    return _ref_distance(
        np.asarray(m1, dtype=bool), np.asarray(m2, dtype=bool), scale, method,
        max_exact_points, 64, None,
    )  # fmt: skip


def _ref_pairwise(stack, *, spacing=(1.0, 1.0), method="auto", max_exact_points=120):
    scale = np.asarray(check_spacing(spacing, ndim=2))
    return _ref_layer_distances(
        np.asarray(stack, dtype=bool), scale, method, max_exact_points, 64, None
    )


# ------------------------------------------------------------------ random masks


def _blob(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    """A random mask: a jittered ellipse, scattered pixels, or both."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.5, h / 1.5 + 1), rng.uniform(0.5, w / 1.5 + 1)
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    mask ^= rng.random(shape) < density
    if not mask.any():
        mask[rng.integers(h), rng.integers(w)] = True
    return mask


def _random_pairs(seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        shape = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        m1 = _blob(rng, shape, float(rng.choice([0.0, 0.02, 0.3])))
        kind = rng.integers(5)
        if kind == 0:
            m2 = m1.copy()  # equal masks
        elif kind == 1:
            m2 = np.zeros(shape, bool)  # a single pixel
            m2[rng.integers(shape[0]), rng.integers(shape[1])] = True
        elif kind == 2:
            m2 = m1 ^ (rng.random(shape) < 0.05)  # small edit of m1
            if not m2.any():
                m2 = m1.copy()
        else:
            m2 = _blob(rng, shape, float(rng.choice([0.0, 0.1])))
        yield m1, m2


SPACINGS = [(1.0, 1.0), (0.7, 1.3), (4.0, 0.25)]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_mask_wasserstein_identical_on_random_masks(spacing):
    n_coarse = 0
    for m1, m2 in _random_pairs(hash(spacing) % 1000, 80):
        for method, points in (("auto", 120), ("auto", 7), ("exact", 120), ("coarse", 30)):
            new = mask_wasserstein(m1, m2, spacing=spacing, method=method, max_exact_points=points)
            old = _ref_mask_wasserstein(
                m1, m2, spacing=spacing, method=method, max_exact_points=points
            )
            assert new == old, (method, points, m1.shape)
        n_coarse += max(m1.sum(), m2.sum()) > 120
    assert n_coarse > 15  # the coarsening branch was really exercised


def test_mask_wasserstein_identical_on_edge_cases():
    one = np.zeros((5, 7), bool)
    one[2, 3] = True
    other = np.zeros((5, 7), bool)
    other[4, 0] = True
    assert mask_wasserstein(one, one) == 0.0
    # Two single pixels: the distance is exactly their separation.
    assert mask_wasserstein(one, other, spacing=(2.0, 1.0)) == _ref_mask_wasserstein(
        one, other, spacing=(2.0, 1.0)
    )
    assert mask_wasserstein(one, other, spacing=(2.0, 1.0)) == pytest.approx(np.hypot(4.0, 3.0))
    # A mask inside a larger one, integer 0/1 masks, a 1 x n frame, read-only inputs.
    big = np.ones((5, 7), np.uint8)
    big.setflags(write=False)
    assert mask_wasserstein(one, big) == _ref_mask_wasserstein(one, big)
    row1, row2 = np.array([[1, 1, 0, 0, 1]], bool), np.array([[0, 1, 1, 1, 0]], bool)
    assert mask_wasserstein(row1, row2) == _ref_mask_wasserstein(row1, row2)
    # Large masks far over the exact budget, non-contiguous views.
    rng = np.random.default_rng(3)
    a = _blob(rng, (200, 160), 0.05)[::2, ::-1]
    b = _blob(rng, (200, 160), 0.0)[1::2, ::-1]
    for points in (120, 400, 13):
        assert mask_wasserstein(a, b, max_exact_points=points) == _ref_mask_wasserstein(
            a, b, max_exact_points=points
        )


def _random_stack(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(1, 9))
    shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
    base = _blob(rng, shape, 0.0)
    layers = []
    for _ in range(n):
        kind = rng.integers(4)
        if kind == 0:
            layers.append(np.zeros(shape, bool))  # empty layers are skipped
        elif kind == 1:
            layers.append(base.copy())
        else:
            layers.append(np.roll(base, rng.integers(-3, 4, size=2), axis=(0, 1)))
    return np.stack(layers)


@pytest.mark.parametrize("spacing", SPACINGS[:2])
def test_pairwise_layer_distances_identical(spacing):
    rng = np.random.default_rng(11)
    for _ in range(30):
        stack = _random_stack(rng)
        for view in (stack, stack[:, 1:, ::-1]):
            # The exact solver on thousands of points is slow: only on smaller layers.
            small = view.sum(axis=(1, 2)).max() < 800
            for method, points in (("auto", 120), ("auto", 25), ("exact", 120))[: 2 + small]:
                new = pairwise_layer_distances(
                    view, spacing=spacing, method=method, max_exact_points=points
                )
                old = _ref_pairwise(view, spacing=spacing, method=method, max_exact_points=points)
                assert new.dtype == old.dtype and new.shape == old.shape
                assert np.array_equal(new, old), (method, points, view.shape)


# ------------------------------------------------------------------ real geometry


def _table_from_random_stacks(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    geoms = []
    for _ in range(25):
        stack = _random_stack(rng)
        while not stack.any():
            stack = _random_stack(rng)
        nz = np.flatnonzero(stack.any(axis=(1, 2)))
        cut = int(rng.integers(0, stack.shape[0]))
        a, b = stack[: max(cut, nz[0] + 1)], stack[max(cut, nz[0] + 1) :]
        if not b.any():
            b = stack[nz[-1] :]
        geoms.append(
            PairGeometry(a=a, b=b, gap=1, spacing=(1.0, 0.5), layer_step=1.0, origin=(0, 0))
        )
    return pd.DataFrame({"geometry": geoms}, index=[f"r{i}" for i in range(len(geoms))])


def _assert_features_identical(table: pd.DataFrame, **params: Any) -> None:
    new = GeoWassersteinFeatures(**params).fit_transform(table)
    old = _ref_features(table, **params)
    assert new.shape == old.shape and new.dtype == old.dtype
    # Bitwise, NaN-safe: the model was trained on these exact floats.
    assert np.array_equal(new.view(np.int64), old.view(np.int64))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"normalize": True, "spacing": (0.5, 1.0)},
        {"max_exact_points": 40},
        {"method": "exact"},
        {"method": "sliced", "random_state": 0},
    ],
)
def test_features_identical_on_random_geometries(params):
    _assert_features_identical(_table_from_random_stacks(5), **params)


@pytest.fixture(scope="module")
def tissue_table() -> pd.DataFrame:
    vol = make_tissue((30, 96, 96), random_state=0)
    table = AxialGapScreener().screen(vol, spacing=(2.0, 1.0, 1.0))
    assert len(table) > 10
    return table


@pytest.mark.parametrize("params", [{}, {"statistics": "extra", "normalize": True}])
def test_features_identical_on_tissue(tissue_table, params):
    _assert_features_identical(tissue_table, **params)


def test_features_identical_on_plant_tissue(plant_tissue):
    vol = np.ascontiguousarray(plant_tissue[::4, :160, :160])
    table = AxialGapScreener().screen(vol, spacing=(4.0, 1.0, 1.0))
    assert len(table) > 10
    _assert_features_identical(table)


def test_direct_solver_matches_pot_wrapper(monkeypatch):
    import sklearn_overseg.features.ot as ot_module

    if pot.__version__.startswith("0.9.7"):
        assert ot_module._emd_c is not None  # the fast path is the one tested above
    pairs = list(_random_pairs(7, 40))
    fast = [mask_wasserstein(m1, m2, spacing=(0.5, 2.0)) for m1, m2 in pairs]
    monkeypatch.setattr(ot_module, "_emd_c", None)  # every problem through ot.emd2
    slow = [mask_wasserstein(m1, m2, spacing=(0.5, 2.0)) for m1, m2 in pairs]
    assert fast == slow
    assert sum(d > 0 for d in fast) > 20

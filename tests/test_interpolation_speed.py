"""The sped-up ``method="ot"`` path gives exactly the masks of the implementation it replaced.

``_old_interpolate_ot`` below is a verbatim private copy of the previous implementation
(``ot.emd`` wrapper, ``scipy.ndimage`` band extraction, ``np.pad``, eager
``check_random_state``). Every case compares whole output stacks for equality.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from sklearn.utils import check_random_state

from sklearn_overseg.correction import interpolation
from sklearn_overseg.correction.interpolation import interpolate_masks

# --- private copy of the previous implementation ---------------------------------------

_CROSS = ndimage.generate_binary_structure(2, 1)
_EIGHT = np.ones((3, 3), dtype=bool)


def _old_band_points(mask, spacing, max_points, rng):
    inner = mask & ~ndimage.binary_erosion(mask, _CROSS)
    outer = ndimage.binary_dilation(mask, _CROSS) & ~mask
    scale = np.asarray(spacing)
    bands = []
    for band in (inner, outer):
        pts = np.argwhere(band)
        if len(pts) > max_points:
            pts = pts[np.sort(rng.choice(len(pts), size=max_points, replace=False))]
        bands.append(pts * scale)
    return bands[0], bands[1]


def _old_transport(src, dst):
    n, m = len(src), len(dst)
    cost = cdist(src, dst, "sqeuclidean")
    cost += np.random.default_rng(0).random(n * m).reshape(n, m) * (1e-8 * max(cost.max(), 1e-12))
    plan = ot.emd(
        np.full(n, 1.0 / n),
        np.full(m, 1.0 / m),
        cost,
        numItermax=max(100_000, 50 * (n + m) ** 2),
        center_dual=False,
        check_marginals=False,
    )
    i, j = np.nonzero(plan > 1e-3 / (n * m))
    return src[i], dst[j]


def _old_tree(points):
    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def _old_fill(in_pts, out_pts, centres, near_end, tol):
    n_in = len(in_pts)
    dist, idx = _old_tree(np.concatenate([in_pts, out_pts])).query(centres, k=2)
    first_in = idx[:, 0] < n_in
    d_first, d_second = dist[:, 0], dist[:, 1]
    mixed = first_in != (idx[:, 1] < n_in)
    close = ~mixed & (d_second - d_first <= 2.0 * tol)
    d_other = d_second.copy()
    for kind_in, other in ((True, out_pts), (False, in_pts)):
        ask = np.flatnonzero(close & (first_in == kind_in))
        if len(ask):
            d_other[ask] = _old_tree(other).query(centres[ask])[0]
    inside = first_in.copy()
    rule = np.flatnonzero(mixed | close)
    d_in = np.where(first_in[rule], d_first[rule], d_other[rule])
    d_out = np.where(first_in[rule], d_other[rule], d_first[rule])
    inside[rule] = (d_in < d_out - tol) | ((np.abs(d_in - d_out) <= tol) & near_end[rule])
    return inside


def _old_sizes(mask):
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    return labels, np.bincount(labels.ravel())[1:]


def _old_interpolate_ot(a, b, n_layers, spacing=(1.0, 1.0), max_points=2000, random_state=None):
    ts = np.arange(1, n_layers + 1) / (n_layers + 1)
    rng = check_random_state(random_state)
    pa, pb = np.pad(a, 1), np.pad(b, 1)
    in_a, out_a = _old_band_points(pa, spacing, max_points, rng)
    in_b, out_b = _old_band_points(pb, spacing, max_points, rng)
    in_src, in_dst = _old_transport(in_a, in_b)
    out_src, out_dst = _old_transport(out_a, out_b)
    rows, cols = np.indices(pa.shape)
    centres = np.column_stack([rows.ravel() * spacing[0], cols.ravel() * spacing[1]])
    centres = centres.reshape(*pa.shape, 2)[1:-1, 1:-1].reshape(-1, 2)
    tol = 1e-9 * max(spacing) * max(pa.shape)
    min_size = None
    out = np.empty((len(ts), *a.shape), dtype=bool)
    for k, t in enumerate(ts):
        inside = _old_fill(
            (1 - t) * in_src + t * in_dst,
            (1 - t) * out_src + t * out_dst,
            centres,
            (a if t <= 0.5 else b).ravel(),
            tol,
        )
        labels, sizes = _old_sizes(inside.reshape(a.shape))
        if len(sizes) < 2:
            out[k] = labels > 0
            continue
        if min_size is None:
            min_size = 0.5 * min(_old_sizes(a)[1].min(), _old_sizes(b)[1].min())
        out[k] = np.concatenate([[False], sizes >= min_size])[labels]
    return out


# --- cases -----------------------------------------------------------------------------


def _disk(shape, centre, radius, spacing=(1.0, 1.0)):
    rows, cols = np.indices(shape)
    d2 = ((rows - centre[0]) * spacing[0]) ** 2 + ((cols - centre[1]) * spacing[1]) ** 2
    return d2 <= radius**2


def _ellipse(shape, centre, radii, angle):
    rows, cols = np.indices(shape, dtype=float)
    y, x = rows - centre[0], cols - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * y + s * x, -s * y + c * x
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 <= 1.0


def _blob(rng, shape, sigma=3.0, level=0.55):
    """A random smooth blob (its largest component), never empty."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    mask = field > np.quantile(field, level)
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    return mask


def _tissue_pairs(limit, vol=None):
    from sklearn_overseg.synthesis.datasets import make_tissue

    if vol is None:
        vol = make_tissue((24, 64, 64), cell_size=(24, 22, 22), anisotropy=4.0, random_state=1)
    pairs = []
    for lab, sl in enumerate(ndimage.find_objects(vol), 1):
        if sl is None:
            continue
        cell = vol[sl] == lab
        layers = np.flatnonzero(cell.any(axis=(1, 2)))
        for gap in (2, 3):
            if len(layers) > gap:
                pairs.append((cell[layers[0]], cell[layers[gap]]))
    return pairs[:limit]


def _assert_same(a, b, n_layers, **kw):
    new = interpolate_masks(a, b, n_layers, method="ot", **kw)
    old = _old_interpolate_ot(
        np.asarray(a, bool),
        np.asarray(b, bool),
        n_layers,
        spacing=tuple(float(s) for s in kw.get("spacing", (1.0, 1.0))),
        max_points=kw.get("max_contour_points", 2000),
        random_state=kw.get("random_state"),
    )
    assert new.dtype == bool and new.shape == old.shape
    np.testing.assert_array_equal(new, old)
    return new


def test_same_as_old_on_tissue_cells():
    pairs = _tissue_pairs(60)
    assert len(pairs) >= 40
    drawn = 0
    for k, (a, b) in enumerate(pairs):
        drawn += _assert_same(a, b, 1 + k % 3).sum()
    assert drawn > 0


def test_same_as_old_on_larger_tissue_cells():
    from sklearn_overseg.synthesis.datasets import make_tissue

    vol = make_tissue((20, 96, 96), cell_size=(24, 36, 36), anisotropy=4.0, random_state=2)
    pairs = _tissue_pairs(16, vol)
    assert len(pairs) >= 12
    for k, (a, b) in enumerate(pairs):
        _assert_same(a, b, 1 + k % 2, spacing=(1.0, 1.0) if k % 3 else (0.9, 1.1))


def test_same_as_old_on_plant_tissue(plant_tissue):
    pairs = _tissue_pairs(24, plant_tissue[::4])
    assert len(pairs) == 24
    for k, (a, b) in enumerate(pairs):
        _assert_same(a, b, 1 + k % 2)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.3), (2.0, 0.5)])
def test_same_as_old_on_random_blobs(spacing):
    rng = np.random.default_rng(7)
    for k in range(8):
        shape = (int(rng.integers(18, 48)), int(rng.integers(18, 48)))
        a, b = _blob(rng, shape), _blob(rng, shape)
        _assert_same(a, b, 1 + k % 3, spacing=spacing)


def test_same_as_old_on_shifted_scaled_and_rotated_shapes():
    shape = (44, 52)
    cases = [
        (_disk(shape, (22, 16), 8), _disk(shape, (22, 19), 8)),  # half-pixel ties at t=0.5
        (_disk(shape, (22, 16), 6), _disk(shape, (20, 30), 11)),
        (_disk(shape, (22, 26), 15), _disk(shape, (22, 26), 5)),
        (_ellipse(shape, (20, 20), (12, 5), 0.3), _ellipse(shape, (24, 30), (6, 10), 1.2)),
        (_disk(shape, (5, 5), 9), _disk(shape, (40, 48), 9)),  # touching the frame border
        (np.ones(shape, bool), _disk(shape, (22, 26), 10)),  # a full frame
        (_disk(shape, (22, 26), 0.5), _disk(shape, (23, 27), 1.5)),  # single pixels
    ]
    for a, b in cases:
        for n_layers in (1, 2, 3):
            _assert_same(a, b, n_layers)
        _assert_same(a, b, 2, spacing=(1.0, 0.5))


def test_same_as_old_on_holes_and_several_components():
    shape = (40, 48)
    annulus = _disk(shape, (20, 14), 11) & ~_disk(shape, (20, 14), 4)
    two = _disk(shape, (10, 10), 4) | _disk(shape, (30, 30), 5)
    three = two | _disk(shape, (8, 38), 3)
    cases = [
        (annulus, np.roll(annulus, 9, axis=1)),
        (two, np.roll(two, 6, axis=1)),
        (two, _disk(shape, (20, 20), 8)),  # two components become one
        (three, np.roll(three, (3, -4), axis=(0, 1))),
        (_disk(shape, (10, 10), 3) | _disk(shape, (30, 30), 3), _disk(shape, (10, 30), 3)),
    ]
    for a, b in cases:
        for n_layers in (1, 3):
            _assert_same(a, b, n_layers)
        _assert_same(a, b, 1, spacing=(0.5, 1.0))


def test_same_as_old_when_bands_are_subsampled():
    a = _disk((60, 60), (30, 26), 20)
    b = _ellipse((60, 60), (30, 34), (22, 14), 0.4)
    for seed in (0, 3, 12345):
        _assert_same(a, b, 1, max_contour_points=40, random_state=seed)
        _assert_same(a, b, 2, max_contour_points=7, random_state=seed, spacing=(1.2, 0.8))
    # Only one band of one mask above the limit.
    small = _disk((60, 60), (30, 30), 4)
    _assert_same(small, a, 1, max_contour_points=100, random_state=5)


def test_random_state_instance_draws_the_same_numbers():
    a = _disk((50, 50), (25, 20), 16)
    b = _disk((50, 50), (25, 28), 16)
    rs_new, rs_old = np.random.RandomState(4), np.random.RandomState(4)
    kw = {"max_contour_points": 30}
    new = interpolate_masks(a, b, 2, random_state=rs_new, **kw)
    old = _old_interpolate_ot(a, b, 2, max_points=30, random_state=rs_old)
    np.testing.assert_array_equal(new, old)
    # The caller's generator advanced by exactly the same draws.
    assert rs_new.randint(2**31) == rs_old.randint(2**31)
    # Without subsampling nothing is drawn at all (as before).
    rs_new, rs_old = np.random.RandomState(4), np.random.RandomState(4)
    interpolate_masks(a, b, 1, random_state=rs_new)
    _old_interpolate_ot(a, b, 1, random_state=rs_old)
    assert rs_new.randint(2**31) == rs_old.randint(2**31)


@pytest.mark.parametrize("bad", ["seed", -1, 2**32, 1.5])
def test_bad_random_state_still_fails_without_subsampling(bad):
    a = _disk((20, 20), (10, 8), 4)
    b = _disk((20, 20), (10, 12), 4)
    with pytest.raises(ValueError):
        check_random_state(bad)
    with pytest.raises(ValueError):
        interpolate_masks(a, b, 1, random_state=bad)


def test_early_stop_of_the_simplex_still_warns(monkeypatch):
    real_emd_c = interpolation.emd_c

    def stopped(*args):
        plan, cost, u, v, _ = real_emd_c(*args)
        return plan, cost, u, v, 3  # POT's MAX_ITER_REACHED

    monkeypatch.setattr(interpolation, "emd_c", stopped)
    a = _disk((20, 20), (10, 8), 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_masks(a, np.roll(a, 3, axis=1), 1)
    assert any("numItermax" in str(w.message) for w in caught)


def test_band_points_match_ndimage():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((int(rng.integers(1, 15)), int(rng.integers(1, 15)))) < 0.6
        padded = np.pad(mask, 1)
        rng_a = interpolation._LazyRandomState(0)
        new_in, new_out = interpolation._band_points(mask, (1.0, 2.0), 10_000, rng_a)
        old_in, old_out = _old_band_points(padded, (1.0, 2.0), 10_000, None)
        np.testing.assert_array_equal(new_in, old_in)
        np.testing.assert_array_equal(new_out, old_out)
    # Hand-checked: a single pixel is its own inner band, its 4 neighbours the outer one.
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    inner, outer = interpolation._band_points(one, (1.0, 1.0), 100, None)
    np.testing.assert_array_equal(inner, [[2.0, 2.0]])
    np.testing.assert_array_equal(outer, [[1.0, 2.0], [2.0, 1.0], [2.0, 3.0], [3.0, 2.0]])

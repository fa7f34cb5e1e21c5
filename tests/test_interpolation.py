"""Tests of the missing-layer interpolation (OT contour transport and signed distance)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sklearn_overseg.correction.interpolation import fill_gap, interpolate_masks


def disk(shape, centre, radius, spacing=(1.0, 1.0)):
    """Pixels whose centre lies within ``radius`` (physical units) of ``centre`` (pixels)."""
    rows, cols = np.indices(shape)
    dr = (rows - centre[0]) * spacing[0]
    dc = (cols - centre[1]) * spacing[1]
    return dr**2 + dc**2 <= radius**2


def c_shape(shape, centre, outer=10, inner=5, half_opening=3):
    """A thick ring with a slot cut out on its right: a 'C' opening towards +x."""
    rows, cols = np.indices(shape)
    d2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    ring = (d2 <= outer**2) & (d2 >= inner**2)
    slot = (np.abs(rows - centre[0]) <= half_opening) & (cols > centre[1])
    return ring & ~slot


def iou(x, y):
    return (x & y).sum() / (x | y).sum()


def centroid(mask):
    return np.argwhere(mask).mean(axis=0)


def read_only(*arrays):
    for arr in arrays:
        arr.setflags(write=False)
    return arrays


# --- method="ot" ---------------------------------------------------------------------


def test_shifted_disk_gives_midpoint_disk():
    a = disk((40, 40), (20, 14), 8)
    b = disk((40, 40), (20, 20), 8)
    ideal = disk((40, 40), (20, 17), 8)
    out = interpolate_masks(a, b, 1)
    assert out.shape == (1, 40, 40)
    assert out.dtype == bool
    mid = out[0]
    np.testing.assert_allclose(centroid(mid), [20.0, 17.0], atol=0.5)
    assert abs(mid.sum() - ideal.sum()) <= 0.10 * ideal.sum()
    assert iou(mid, ideal) > 0.85


def test_odd_shift_keeps_area_and_centre():
    # A 3 px move puts the midpoint on half pixels: ties must neither grow nor shrink it.
    a = disk((40, 40), (20, 14), 8)
    b = disk((40, 40), (20, 17), 8)
    mid = interpolate_masks(a, b, 1)[0]
    assert abs(int(mid.sum()) - int(a.sum())) <= 3
    assert abs(centroid(mid)[1] - 15.5) <= 0.5
    assert abs(centroid(mid)[0] - 20.0) < 1e-9


def test_growing_disk_midpoint_has_intermediate_radius():
    a = disk((40, 40), (20, 20), 5)
    b = disk((40, 40), (20, 20), 9)
    mid = interpolate_masks(a, b, 1)[0]
    ideal = disk((40, 40), (20, 20), 7)  # 149 px
    assert abs(mid.sum() - ideal.sum()) <= 0.15 * ideal.sum()
    assert iou(mid, ideal) > 0.9


@pytest.mark.parametrize("method", ["ot", "sdf"])
def test_same_mask_on_both_sides_is_reproduced(method):
    mask = c_shape((30, 30), (15, 14))
    mask |= disk((30, 30), (24, 24), 3)  # a second component
    out = interpolate_masks(mask, mask, 2, method=method)
    for layer in out:
        assert iou(layer, mask) > 0.95


def test_c_shape_stays_a_c_shape():
    shape = (40, 50)
    a = c_shape(shape, (20, 15))
    b = c_shape(shape, (20, 23))
    ideal = c_shape(shape, (20, 19))
    mid = interpolate_masks(a, b, 1)[0]
    assert iou(mid, ideal) > 0.8
    # The opening (slot between the arms) and the inner void stay background.
    assert not mid[18:23, 24:30].any()
    assert not mid[19:22, 16:23].any()
    # ... while the arms exist on both sides of the opening.
    assert mid[14, 24:28].all() and mid[26, 24:28].all()


def test_hole_stays_open():
    shape = (30, 40)

    def annulus(c):
        return disk(shape, c, 10) & ~disk(shape, c, 4)

    mid = interpolate_masks(annulus((15, 12)), annulus((15, 20)), 1)[0]
    assert not mid[14:17, 15:18].any()
    assert iou(mid, annulus((15, 16))) > 0.9


def test_two_components_move_separately():
    a = disk((40, 40), (10, 10), 4) | disk((40, 40), (30, 28), 4)
    b = disk((40, 40), (10, 16), 4) | disk((40, 40), (30, 34), 4)
    mid = interpolate_masks(a, b, 1)[0]
    labels, n = ndimage.label(mid)
    assert n == 2
    centres = sorted(map(tuple, ndimage.center_of_mass(mid, labels, [1, 2])))
    np.testing.assert_allclose(centres, [(10, 13), (30, 31)], atol=0.5)


def test_three_layers_progress_monotonically():
    a = disk((40, 48), (20, 12), 7)
    b = disk((40, 48), (20, 36), 7)
    out = interpolate_masks(a, b, 3)
    assert out.shape == (3, 40, 48)
    cols = [centroid(layer)[1] for layer in out]
    np.testing.assert_allclose(cols, [18.0, 24.0, 30.0], atol=0.5)
    assert cols[0] < cols[1] < cols[2]
    for layer in out:
        assert abs(layer.sum() - a.sum()) <= 0.1 * a.sum()


def test_anisotropic_spacing_midpoint():
    spacing = (1.0, 0.5)  # columns are half as wide: a physical disk is a 1:2 ellipse
    shape = (40, 60)
    a = disk(shape, (20, 20), 8, spacing)
    b = disk(shape, (20, 40), 8, spacing)
    ideal = disk(shape, (20, 30), 8, spacing)
    mid = interpolate_masks(a, b, 1, spacing=spacing)[0]
    assert iou(mid, ideal) > 0.95


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        # Wide columns make row moves cheap: blobs travel vertically.
        ((0.5, 1.0), [(20, 10), (20, 30)]),
        # Wide rows make column moves cheap: blobs travel horizontally.
        ((1.0, 0.5), [(10, 20), (30, 20)]),
    ],
)
def test_spacing_decides_the_matching(spacing, expected):
    # A's blobs sit top-left and bottom-right, B's top-right and bottom-left: both
    # pairings cost the same in pixels, so only the physical spacing can pick one.
    shape = (40, 40)
    a = disk(shape, (10, 10), 3) | disk(shape, (30, 30), 3)
    b = disk(shape, (10, 30), 3) | disk(shape, (30, 10), 3)
    mid = interpolate_masks(a, b, 1, spacing=spacing)[0]
    labels, n = ndimage.label(mid)
    assert n == 2
    centres = sorted(map(tuple, ndimage.center_of_mass(mid, labels, [1, 2])))
    np.testing.assert_allclose(centres, expected, atol=0.5)


def test_subsampling_is_seeded_and_still_accurate():
    a = disk((70, 70), (35, 30), 25)
    b = disk((70, 70), (35, 38), 25)
    ideal = disk((70, 70), (35, 34), 25)
    kw = {"max_contour_points": 120}
    first = interpolate_masks(a, b, 1, random_state=0, **kw)
    again = interpolate_masks(a, b, 1, random_state=0, **kw)
    np.testing.assert_array_equal(first, again)
    other = interpolate_masks(a, b, 1, random_state=np.random.RandomState(1), **kw)
    assert iou(first[0], ideal) > 0.9
    assert iou(other[0], ideal) > 0.9


# --- method="sdf" and "none" ---------------------------------------------------------


def test_sdf_growing_disk_is_exact():
    a = disk((40, 40), (20, 20), 5)
    b = disk((40, 40), (20, 20), 9)
    mid = interpolate_masks(a, b, 1, method="sdf")[0]
    np.testing.assert_array_equal(mid, disk((40, 40), (20, 20), 7))


def test_sdf_shifted_disk():
    a = disk((40, 40), (20, 14), 8)
    b = disk((40, 40), (20, 20), 8)
    ideal = disk((40, 40), (20, 17), 8)
    mid = interpolate_masks(a, b, 1, method="sdf")[0]
    np.testing.assert_allclose(centroid(mid), [20.0, 17.0], atol=0.5)
    assert iou(mid, ideal) > 0.85
    # Linear SDF blending shrinks a moving shape (197 px -> 175 px here); OT does not.
    assert 0.8 * ideal.sum() <= mid.sum() <= ideal.sum()


def test_sdf_respects_spacing():
    spacing = (1.0, 0.5)
    a = disk((40, 60), (20, 30), 5, spacing)
    b = disk((40, 60), (20, 30), 9, spacing)
    mid = interpolate_masks(a, b, 1, method="sdf", spacing=spacing)[0]
    assert iou(mid, disk((40, 60), (20, 30), 7, spacing)) > 0.95


def test_none_returns_empty_layers():
    a = disk((20, 20), (10, 10), 4)
    out = interpolate_masks(a, a, 3, method="none")
    assert out.shape == (3, 20, 20)
    assert out.dtype == bool
    assert not out.any()


def test_zero_layers_gives_empty_stack():
    a = disk((20, 20), (10, 10), 4)
    assert interpolate_masks(a, a, 0).shape == (0, 20, 20)


# --- inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ot", "sdf", "none"])
def test_inputs_not_mutated(method):
    a = disk((30, 30), (15, 10), 6)
    b = disk((30, 30), (15, 18), 6)
    a0, b0 = a.copy(), b.copy()
    read_only(a, b)
    interpolate_masks(a, b, 2, method=method)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_zero_one_integer_masks_are_accepted():
    a = disk((30, 30), (15, 10), 6)
    b = disk((30, 30), (15, 18), 6)
    np.testing.assert_array_equal(
        interpolate_masks(a.astype(np.uint8), b.astype(np.int32), 1),
        interpolate_masks(a, b, 1),
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mask_b": np.ones((10, 12), bool)}, ValueError, r"same shape.*\(10, 10\).*\(10, 12\)"),
        ({"mask_a": np.ones((2, 10, 10), bool)}, ValueError, "mask_a must be a 2D mask.*ndim=3"),
        ({"mask_b": np.zeros((10, 10), bool)}, ValueError, "mask_b is empty"),
        ({"method": "linear"}, ValueError, "method must be one of.*'linear'"),
        ({"mask_a": np.ones((10, 10))}, TypeError, "mask_a must be a boolean mask.*float64"),
        ({"mask_a": np.full((10, 10), 3)}, ValueError, "values other than 0 and 1"),
        ({"n_layers": -1}, ValueError, "n_layers must be >= 0, got -1"),
        ({"n_layers": 1.5}, TypeError, "n_layers must be an integer"),
        ({"spacing": (1.0, 0.0)}, ValueError, "spacing"),
        ({"spacing": (1.0, 1.0, 1.0)}, ValueError, "spacing must have 2 values"),
        ({"max_contour_points": 0}, ValueError, "max_contour_points must be >= 3"),
        ({"mask_a": None}, TypeError, "mask_a must be a 2D boolean array"),
    ],
)
def test_bad_inputs(kwargs, error, match):
    args = {"mask_a": np.ones((10, 10), bool), "mask_b": np.ones((10, 10), bool)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        interpolate_masks(**args)


# --- fill_gap --------------------------------------------------------------------------


def _gap_volume():
    """A (z=0) and B (z=2) are the same disk, so the gap mask is that disk exactly."""
    vol = np.zeros((4, 30, 30), dtype=np.uint16)
    cell = disk((20, 20), (10, 10), 6)  # 113 px, frame at origin (5, 5)
    vol[0, 5:25, 5:25][cell] = 1
    vol[2, 5:25, 5:25][cell] = 2
    vol[1, 13:16, 13:16] = 5  # protected complete cell inside the gap: 9 px
    vol[1, 18:20, 12:14] = 7  # another cell, inside the disk footprint: 4 px
    return vol, cell


def test_fill_gap_writes_only_background():
    vol, cell = _gap_volume()
    before = vol.copy()
    n = fill_gap(vol, 1, 0, 2, (5, 5), cell, cell, protect={5})
    assert n == cell.sum() - 9 - 4 == 100
    gap = vol[1, 5:25, 5:25]
    assert (gap == 1).sum() == 100
    assert (vol[1] == 5).sum() == 9 and (vol[1] == 7).sum() == 4
    # Nothing outside the gap layer or the cell's footprint changed.
    changed = vol != before
    assert changed.sum() == 100
    assert changed[1, 5:25, 5:25][cell].sum() == 100


def test_fill_gap_overwrites_unprotected_but_never_protected():
    vol, cell = _gap_volume()
    n = fill_gap(vol, 1, 0, 2, (5, 5), cell, cell, only_background=False, protect=[5])
    assert n == cell.sum() - 9 == 104
    assert (vol[1] == 5).sum() == 9
    assert (vol[1] == 7).sum() == 0


def test_fill_gap_several_layers_and_no_gap():
    vol = np.zeros((5, 20, 20), dtype=np.int32)
    a = disk((20, 20), (10, 6), 4)
    b = disk((20, 20), (10, 14), 4)
    vol[0][a] = 3
    vol[4][b] = 4
    n = fill_gap(vol, 3, 0, 4, (0, 0), a, b, method="sdf")
    assert n == (vol[1:4] == 3).sum() > 0
    cols = [centroid(vol[z] == 3)[1] for z in (1, 2, 3)]
    assert cols[0] < cols[1] < cols[2]
    before = vol.copy()
    assert fill_gap(vol, 3, 3, 4, (0, 0), a, b) == 0
    np.testing.assert_array_equal(vol, before)
    assert fill_gap(vol, 3, 0, 4, (0, 0), a, b, method="none") == 0
    np.testing.assert_array_equal(vol, before)


def test_fill_gap_does_not_mutate_masks():
    vol, cell = _gap_volume()
    cell0 = cell.copy()
    read_only(cell)
    fill_gap(vol, 1, 0, 2, (5, 5), cell, cell)
    np.testing.assert_array_equal(cell, cell0)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"read_only": True}, ValueError, "read-only"),
        ({"origin": (15, 5)}, ValueError, r"frame at origin \(15, 5\) does not fit"),
        ({"z": (2, 0)}, ValueError, "z_a_last < z_b_first"),
        ({"z": (0, 4)}, ValueError, "z_b_first < Z=4"),
        ({"label": 70000}, ValueError, "does not fit volume_out dtype uint16"),
        ({"label": 0}, ValueError, "label must be >= 1"),
        ({"float": True}, TypeError, "integer dtype"),
        ({"origin": "ab"}, TypeError, "origin must be a pair"),
    ],
)
def test_fill_gap_bad_inputs(change, error, match):
    vol, cell = _gap_volume()
    if change.get("read_only"):
        vol.setflags(write=False)
    if change.get("float"):
        vol = vol.astype(float)
    z_a, z_b = change.get("z", (0, 2))
    with pytest.raises(error, match=match):
        fill_gap(vol, change.get("label", 1), z_a, z_b, change.get("origin", (5, 5)), cell, cell)


# --- regression: the optimized fill equals the original full-frame implementation ------

_REF_CROSS = ndimage.generate_binary_structure(2, 1)
_REF_EIGHT = np.ones((3, 3), dtype=bool)


def _ref_band_points(mask, spacing, max_points, rng):
    inner = mask & ~ndimage.binary_erosion(mask, _REF_CROSS)
    outer = ndimage.binary_dilation(mask, _REF_CROSS) & ~mask
    bands = []
    for band in (inner, outer):
        pts = np.argwhere(band)
        if len(pts) > max_points:
            pts = pts[np.sort(rng.choice(len(pts), size=max_points, replace=False))]
        bands.append(pts * np.asarray(spacing))
    return bands


def _ref_transport(src, dst):
    import ot
    from scipy.spatial.distance import cdist

    n, m = len(src), len(dst)
    cost = cdist(src, dst, "sqeuclidean")
    cost += np.random.default_rng(0).random(cost.shape) * (1e-8 * max(cost.max(), 1e-12))
    plan = ot.emd(
        np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost, numItermax=max(100_000, 50 * (n + m) ** 2)
    )
    i, j = np.nonzero(plan > 1e-3 / (n * m))
    return src[i], dst[j]


def _ref_sizes(mask):
    labels, _ = ndimage.label(mask, structure=_REF_EIGHT)
    return labels, np.bincount(labels.ravel())[1:]


def _reference_ot(a, b, n_layers, spacing=(1.0, 1.0), max_contour_points=2000, random_state=None):
    """The pre-optimisation ``method="ot"`` path: two KD-tree queries over every pixel."""
    from scipy.spatial import KDTree
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    ts = np.arange(1, n_layers + 1) / (n_layers + 1)
    pa, pb = np.pad(a, 1), np.pad(b, 1)
    in_a, out_a = _ref_band_points(pa, spacing, max_contour_points, rng)
    in_b, out_b = _ref_band_points(pb, spacing, max_contour_points, rng)
    in_src, in_dst = _ref_transport(in_a, in_b)
    out_src, out_dst = _ref_transport(out_a, out_b)
    rows, cols = np.indices(pa.shape)
    centres = np.column_stack([rows.ravel() * spacing[0], cols.ravel() * spacing[1]])
    min_size = 0.5 * min(_ref_sizes(a)[1].min(), _ref_sizes(b)[1].min())
    tol = 1e-9 * max(spacing) * max(pa.shape)
    out = np.empty((len(ts), *a.shape), dtype=bool)
    for k, t in enumerate(ts):
        d_in, _ = KDTree((1 - t) * in_src + t * in_dst).query(centres)
        d_out, _ = KDTree((1 - t) * out_src + t * out_dst).query(centres)
        near_end = pa if t <= 0.5 else pb
        inside = (d_in < d_out - tol) | ((np.abs(d_in - d_out) <= tol) & near_end.ravel())
        mask = inside.reshape(pa.shape)[1:-1, 1:-1]
        labels, sizes = _ref_sizes(mask)
        if len(sizes) >= 2:
            mask = np.concatenate([[False], sizes >= min_size])[labels]
        out[k] = mask
    return out


def _axial_pairs(volume, step, limit):
    """(first, third-present) layer masks of each cell in its own bounding box."""
    pairs = []
    for lab, sl in enumerate(ndimage.find_objects(volume), 1):
        if sl is None:
            continue
        cell = volume[sl] == lab
        layers = np.flatnonzero(cell.any(axis=(1, 2)))
        if len(layers) > step:
            pairs.append((cell[layers[0]], cell[layers[step]]))
    return pairs[:limit]


def _assert_same_as_reference(pairs, **kw):
    assert pairs
    for a, b in pairs:
        for n_layers in (1, 2):
            np.testing.assert_array_equal(
                interpolate_masks(a, b, n_layers, **kw), _reference_ot(a, b, n_layers, **kw)
            )


def test_matches_reference_on_synthetic_tissue():
    from sklearn_overseg.synthesis.datasets import make_tissue

    vol = make_tissue((10, 48, 48), cell_size=(4, 14, 14), random_state=0)
    pairs = _axial_pairs(vol, 2, 12)
    _assert_same_as_reference(pairs)
    _assert_same_as_reference(pairs[:4], spacing=(0.7, 1.3))
    _assert_same_as_reference(pairs[:4], max_contour_points=15, random_state=3)
    # Hand-made shapes with holes, several components and half-pixel ties.
    annulus = disk((30, 40), (15, 12), 10) & ~disk((30, 40), (15, 12), 4)
    two = disk((40, 40), (10, 10), 4) | disk((40, 40), (30, 28), 4)
    _assert_same_as_reference(
        [
            (annulus, np.roll(annulus, 8, axis=1)),
            (two, np.roll(two, 6, axis=1)),
            (disk((40, 40), (20, 14), 8), disk((40, 40), (20, 17), 8)),
            (c_shape((40, 50), (20, 15)), c_shape((40, 50), (20, 23))),
        ]
    )


def test_matches_reference_on_plant_tissue(plant_tissue):
    _assert_same_as_reference(_axial_pairs(plant_tissue[::4], 2, 40))


def test_cached_tie_noise_equals_a_fresh_draw():
    from sklearn_overseg.correction.interpolation import _tie_noise

    for size in (7, 5000, 300, 70_000, 12):
        np.testing.assert_array_equal(_tie_noise(size), np.random.default_rng(0).random(size))
    assert _tie_noise(3).shape == (3,)

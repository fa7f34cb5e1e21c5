"""Contact screening and re-slicing along the contact plane (paper §3.3)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

import sklearn_overseg.screening.reslice as _reslice
from sklearn_overseg.features.geo_wasserstein import GeoWassersteinFeatures
from sklearn_overseg.features.overlap_topology import OverlapTopologyFeatures
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.candidates import CANDIDATE_COLUMNS, PairGeometry
from sklearn_overseg.screening.cells import CellIndex
from sklearn_overseg.screening.contact import CombinedScreener, ContactScreener, contact_pairs
from sklearn_overseg.screening.reslice import cell_centroids, reslice_pair

# ------------------------------------------------------------------ fixtures


def _boxes() -> np.ndarray:
    """Four boxes with contacts counted by hand.

    1: z0:2 y0:3 x0:3 (18 voxels)   2: z2:4 y0:2 x0:3 (12)
    3: z0:2 y3:5 x0:2 (8)           4: z2   y3   x0:3 (3)
    1|2 share the z=1/2 faces over y0:2 x0:3 -> 6; 1|3 the y=2/3 faces over z0:2 x0:2 -> 4;
    3|4 the z=1/2 faces at y3 x0:2 -> 2. 1 and 4 meet only along an edge (z1 y2 / z2 y3),
    2 and 3 not at all, 2 and 4 not at all (y1 vs y3).
    """
    vol = np.zeros((5, 6, 5), dtype=np.uint16)
    vol[0:2, 0:3, 0:3] = 1
    vol[2:4, 0:2, 0:3] = 2
    vol[0:2, 3:5, 0:2] = 3
    vol[2, 3, 0:3] = 4
    return vol


def _column(depth_a: int = 3, depth_b: int = 4, size: int = 5) -> np.ndarray:
    """A square column split at a z plane, no gap: A above, B below."""
    vol = np.zeros((depth_a + depth_b + 2, size + 3, size + 2), dtype=np.uint16)
    vol[1 : 1 + depth_a, 1 : 1 + size, 2 : 2 + size - 1] = 1
    vol[1 + depth_a : 1 + depth_a + depth_b, 1 : 1 + size, 2 : 2 + size - 1] = 2
    return vol


def _unit(theta_deg: float, phi_deg: float) -> np.ndarray:
    t, p = np.deg2rad(theta_deg), np.deg2rad(phi_deg)
    return np.array([np.cos(t), np.sin(t) * np.sin(p), np.sin(t) * np.cos(p)])  # (z, y, x)


def _tilted_box(normal: np.ndarray, shape=(24, 24, 24), spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A box filling the volume but a 2-voxel margin, cut through its centre by a plane:
    label 1 where ``(p - c) . normal < 0``, label 2 elsewhere (physical coordinates)."""
    grid = np.indices(shape).astype(float) * np.asarray(spacing)[:, None, None, None]
    centre = (np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    side = np.tensordot(normal, grid - centre[:, None, None, None], axes=1)
    vol = np.where(side < 0, 1, 2).astype(np.uint16)
    inner = np.zeros(shape, dtype=bool)
    inner[2:-2, 2:-2, 2:-2] = True
    vol[~inner] = 0
    return vol


def _angle_deg(u, v) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v), -1.0, 1.0))))


def _pairs(table: pd.DataFrame) -> list[list[int]]:
    return table[["cell_a", "cell_b"]].values.tolist()


# ------------------------------------------------------------------ adjacency


def test_adjacency_counts_faces_and_ignores_edges():
    vol = _boxes()
    pairs = contact_pairs(CellIndex.from_volume(vol))
    labels = CellIndex.from_volume(vol).labels
    found = {
        (int(labels[p]), int(labels[q])): int(c)
        for p, q, c in pairs[["pos_p", "pos_q", "contact_px"]].values
    }
    assert found == {(1, 2): 6, (1, 3): 4, (3, 4): 2}


def test_adjacency_is_independent_of_slabs(monkeypatch):
    from sklearn_overseg.screening import contact

    rng = np.random.default_rng(0)
    vol = rng.integers(0, 6, size=(9, 7, 8)).astype(np.uint8)
    index = CellIndex.from_volume(vol)
    whole = contact_pairs(index)
    monkeypatch.setattr(contact, "_SLAB_VOXELS", 7 * 8 * 2)  # two layers per slab
    pd.testing.assert_frame_equal(contact_pairs(index), whole)
    # brute force: every differing non-zero face neighbour, counted once per face
    brute: dict[tuple[int, int], int] = {}
    for axis in range(3):
        a = np.moveaxis(vol, axis, 0)
        first, second = a[:-1].ravel(), a[1:].ravel()
        for x, y in zip(first, second, strict=True):
            if x and y and x != y:
                key = (min(x, y), max(x, y))
                brute[key] = brute.get(key, 0) + 1
    labels = index.labels
    got = {
        (int(labels[p]), int(labels[q])): int(c)
        for p, q, c in whole[["pos_p", "pos_q", "contact_px"]].values
    }
    assert got == brute


def test_screen_table_and_filters():
    vol = _boxes()
    table = ContactScreener().screen(vol)
    assert list(table.columns) == list(CANDIDATE_COLUMNS)
    assert (table["kind"] == "contact").all() and (table["gap"] == 1).all()
    unordered = {
        (min(a, b), max(a, b)): c
        for (a, b), c in zip(_pairs(table), table["contact_px"], strict=True)
    }
    assert unordered == {(1, 2): 6, (1, 3): 4, (3, 4): 2}
    # A lies before B along the normal: 1 is above 2 (z) and 1 is before 3 (y), 3 above 4.
    assert _pairs(table) == [[1, 2], [1, 3], [3, 4]]
    assert list(table.index) == ["0:1-2:contact", "0:1-3:contact", "0:3-4:contact"]

    assert _pairs(ContactScreener(min_contact=3).screen(vol)) == [[1, 2], [1, 3]]
    assert _pairs(ContactScreener(min_contact=5).screen(vol)) == [[1, 2]]
    assert _pairs(ContactScreener(min_size=8).screen(vol)) == [[1, 2], [1, 3]]
    assert _pairs(ContactScreener(min_size=9).screen(vol)) == [[1, 2]]
    assert len(ContactScreener(min_contact=7).screen(vol)) == 0


def test_centroids_match_scipy():
    from scipy import ndimage as ndi

    vol = _boxes()
    index = CellIndex.from_volume(vol)
    expected = ndi.center_of_mass(vol > 0, vol, index.labels)
    np.testing.assert_allclose(cell_centroids(index), np.asarray(expected))


# ------------------------------------------------------------------ geometry


def test_z_split_reslices_into_axial_layers():
    vol = _column()
    contact = ContactScreener().screen(vol)
    axial = AxialGapScreener().screen(vol)
    assert _pairs(contact) == _pairs(axial) == [[1, 2]]
    g, ax = contact.geometry.iloc[0], axial.geometry.iloc[0]
    # A unchanged; B's first layer is the reference layer s = 0 and is removed.
    np.testing.assert_array_equal(g.a, ax.a)
    np.testing.assert_array_equal(g.b, ax.b[1:])
    assert (g.gap, g.spacing, g.layer_step) == (1, (1.0, 1.0), 1.0)
    assert g.extra["method"] == "pca"
    np.testing.assert_allclose(g.extra["normal"], [1, 0, 0])
    np.testing.assert_allclose(g.extra["u"], [0, 1, 0])
    np.testing.assert_allclose(g.extra["v"], [0, 0, 1])
    np.testing.assert_allclose(g.extra["plane_origin"], [3.5, 3.0, 3.5])
    assert contact["overlap_px"].iloc[0] == 20 and contact["contact_px"].iloc[0] == 20


def test_anisotropic_z_split_is_resampled_isotropically():
    vol = _column()
    g = ContactScreener(spacing=(4, 1, 1)).screen(vol).geometry.iloc[0]
    ax = AxialGapScreener().screen(vol).geometry.iloc[0]
    # step = min(spacing) = 1: each 4-unit voxel layer becomes four layers.
    np.testing.assert_array_equal(g.a, np.repeat(ax.a, 4, axis=0))
    np.testing.assert_array_equal(g.b, np.repeat(ax.b, 4, axis=0)[1:])
    assert g.spacing == (1.0, 1.0) and g.layer_step == 1.0
    # The screen() argument overrides the parameter.
    g1 = ContactScreener(spacing=(4, 1, 1)).screen(vol, spacing=1).geometry.iloc[0]
    assert g1.a.shape == ax.a.shape


def test_max_layers_keeps_layers_nearest_the_plane():
    vol = _column(depth_a=6, depth_b=7)
    full = ContactScreener().screen(vol).geometry.iloc[0]
    short = ContactScreener(max_layers=2).screen(vol).geometry.iloc[0]
    assert (full.n_layers_a, full.n_layers_b) == (6, 6)
    assert (short.n_layers_a, short.n_layers_b) == (2, 2)
    np.testing.assert_array_equal(short.a, full.a[-2:])
    np.testing.assert_array_equal(short.b, full.b[:2])


@pytest.mark.parametrize(("theta", "phi"), [(30.0, 20.0), (50.0, 110.0)])
def test_tilted_cut_normal_and_sides(theta, phi):
    normal = _unit(theta, phi)
    vol = _tilted_box(normal)
    table = ContactScreener().screen(vol)
    assert _pairs(table) == [[1, 2]]  # 1 is on the negative side of the normal
    g = table.geometry.iloc[0]
    assert g.extra["method"] == "pca"
    assert _angle_deg(g.extra["normal"], normal) < 5.0
    basis = np.array([g.extra["normal"], g.extra["u"], g.extra["v"]])
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    # The plane passes through the box centre (the cut goes through it).
    assert abs((np.asarray(g.extra["plane_origin"]) - 11.5) @ normal) < 0.5
    # Both sides are present, and the layers facing the plane look like one cell cut in
    # two: nearly the same cross-section on either side of the removed reference layer.
    assert g.n_layers_a >= 6 and g.n_layers_b >= 6
    area_a, area_b = g.a[-1].sum(), g.b[0].sum()
    assert table["overlap_px"].iloc[0] == np.count_nonzero(g.a[-1] & g.b[0])
    assert table["overlap_px"].iloc[0] >= 0.85 * min(area_a, area_b)
    # The pair's 20^3 box: total sampled voxels close to the box volume (isotropic step).
    total = g.a.sum() + g.b.sum() + (area_a + area_b) / 2
    assert abs(total - 20**3) < 0.1 * 20**3


def test_tilted_cut_normal_in_physical_units():
    normal = _unit(45.0, 0.0)  # 45 degrees in physical units, tilted towards x
    vol = _tilted_box(normal, shape=(16, 48, 48), spacing=(4.0, 1.0, 1.0))
    g = ContactScreener(spacing=(4, 1, 1)).screen(vol).geometry.iloc[0]
    assert _angle_deg(g.extra["normal"], normal) < 5.0
    # Without the spacing the plane is fitted in voxel units, where it is squashed to
    # atan(1/4) = 14 degrees from z: the physical fit is not that one.
    assert g.layer_step == 1.0 and g.spacing == (1.0, 1.0)
    unit_g = ContactScreener().screen(vol).geometry.iloc[0]
    voxel_normal = np.array([4.0, 0.0, 1.0]) / np.sqrt(17)
    assert _angle_deg(unit_g.extra["normal"], voxel_normal) < 5.0
    assert _angle_deg(voxel_normal, normal) > 30.0


def test_reslice_pair_orientation_and_fields():
    vol = _column()
    vol.setflags(write=False)
    index = CellIndex.from_volume(vol)
    ab = reslice_pair(index, 1, 2)
    ba = reslice_pair(index, 2, 1)
    assert isinstance(ab, PairGeometry) and ab.a.dtype == bool
    np.testing.assert_allclose(ba.extra["normal"], -np.asarray(ab.extra["normal"]))
    # Seen from B, B's stack ends at the plane and A's starts after it.
    assert ba.n_layers_a == 4 - 0 and ba.n_layers_b == 3 - 1
    assert ab.a.shape[1:] == ab.b.shape[1:] == (5, 4)
    screened = ContactScreener().screen(vol).geometry.iloc[0]
    np.testing.assert_array_equal(screened.a, ab.a)
    np.testing.assert_array_equal(screened.b, ab.b)
    with pytest.raises(ValueError, match="must differ"):
        reslice_pair(index, 1, 1)
    with pytest.raises(ValueError, match="max_layers"):
        reslice_pair(index, 1, 2, max_layers=0)
    with pytest.raises(KeyError, match="7"):
        reslice_pair(index, 1, 7)


def test_line_contact_falls_back_to_centroids():
    vol = np.zeros((4, 6, 6), dtype=np.uint8)
    vol[1:3, 1:4, 1] = 1  # two thin walls touching along one line of faces
    vol[1:3, 1:4, 2] = 2
    vol[1, 1:4, 1] = 0  # keep a single row of contact faces: collinear midpoints
    vol[2, 1:4, 2] = 0
    vol[1, 1:4, 2] = 0
    vol[2, 1:4, 1] = 1
    vol[2, 1:4, 2] = 2
    g = ContactScreener().screen(vol).geometry.iloc[0]
    assert g.extra["method"] == "centroids"
    np.testing.assert_allclose(g.extra["normal"], [0, 0, 1])


def test_features_run_on_contact_table():
    touching = np.zeros((12, 14, 14), dtype=np.uint8)
    touching[1:6, 1:13, 1:13] = 1  # a wide cell with a narrow one sitting on a corner
    touching[6:11, 1:5, 1:5] = 2
    table = pd.concat(
        [
            ContactScreener().screen(_tilted_box(_unit(30, 20)), volume_id="t"),
            ContactScreener().screen(_column(depth_a=5, depth_b=5), volume_id="c"),
            ContactScreener().screen(touching, volume_id="n"),
        ]
    )
    y = np.array([1, 1, 0])
    geo = GeoWassersteinFeatures(random_state=0).fit(table, y)
    emd = pd.DataFrame(geo.transform(table), columns=geo.get_feature_names_out())
    topo = OverlapTopologyFeatures().fit(table, y).transform(table)
    assert len(emd) == topo.shape[0] == 3
    assert np.isfinite(emd.to_numpy()).all() and np.isfinite(topo).all()
    # Straight column: identical layers, every distance is 0 (gap included).
    column = emd.iloc[1]
    assert column["emd_gap"] == 0 and column["emd_a_max"] == 0 and column["emd_b_max"] == 0
    assert (column["emd_a_count"], column["emd_b_count"]) == (4, 3)
    # A tilted cut re-sliced along its plane changes smoothly across the removed layer,
    # two different cells do not.
    assert emd.iloc[0]["emd_gap_over_a_median"] < 2.0
    assert emd.iloc[2]["emd_gap"] > 2.0 and emd.iloc[2]["emd_gap_over_a_median"] > 5.0


# ------------------------------------------------------------------ combined


def test_combined_screener_deduplicates_pairs():
    vol = _column()
    vol[1:8, 1:6, 6] = 3  # a wall along x touching both 1 and 2 sideways
    vol[:, :, 0] = 0
    combined = CombinedScreener().screen(vol)
    axial = AxialGapScreener().screen(vol)
    contact = ContactScreener().screen(vol)
    assert _pairs(axial) == [[1, 2]]
    assert sorted(_pairs(contact)) == [[1, 2], [1, 3], [2, 3]]
    assert list(combined.index) == ["0:1-2:axial", "0:1-3:contact", "0:2-3:contact"]
    keys = {(min(a, b), max(a, b)) for a, b in _pairs(combined)}
    assert len(keys) == len(combined)
    pd.testing.assert_frame_equal(
        combined.drop(columns="geometry").iloc[:1], axial.drop(columns="geometry")
    )


def test_combined_params_and_transform():
    est = CombinedScreener()
    est.set_params(axial__max_gap=2, contact__min_contact=2)
    assert isinstance(est.axial, AxialGapScreener) and est.axial.max_gap == 2
    assert est.contact.min_contact == 2
    params = est.get_params(deep=True)
    assert params["axial__max_gap"] == 2 and params["contact__min_contact"] == 2
    copy = clone(est)
    assert copy.axial is not est.axial and copy.axial.max_gap == 2
    vol = _column()
    gapped = np.zeros_like(vol)
    gapped[1:3] = vol[1:3]
    gapped[5:] = vol[4:-1]  # two blank layers: only the axial screener with max_gap=2 sees it
    table = est.transform([vol, gapped])
    assert list(table.index) == ["0:1-2:axial", "1:1-2:axial"]
    assert table["gap"].tolist() == [0, 2]
    assert len(CombinedScreener().screen(gapped)) == 0
    with pytest.raises(InvalidParameterError):
        CombinedScreener(axial="nope").fit()


def _cut_column_and_stack() -> np.ndarray:
    """Cell 1, a column whose layer 3 is cut in two (piece 2, beside it); cells 3 above 6,
    stacked with no gap, apart from the column."""
    vol = np.zeros((7, 10, 20), dtype=np.uint16)
    vol[:, 1:7, 1:9] = 1
    vol[3, 1:7, 5:9] = 2
    vol[0:3, 1:7, 11:17] = 3
    vol[3:7, 1:7, 11:17] = 6
    return vol


def test_combined_lateral_is_off_by_default_and_lists_pieces_when_on():
    from sklearn_overseg.screening.lateral import LateralScreener

    vol = _cut_column_and_stack()
    assert CombinedScreener().lateral == "drop"
    default = CombinedScreener().screen(vol)
    assert "lateral" not in set(default["kind"])
    table = CombinedScreener(contact="drop", lateral=LateralScreener()).screen(vol)
    assert list(table.index) == ["0:3-6:axial", "0:1-2:lateral"]
    assert table["kind"].tolist() == ["axial", "lateral"]
    # None means the default instance, as for the other parts.
    same = CombinedScreener(contact="drop", lateral=None).screen(vol)
    pd.testing.assert_frame_equal(table.drop(columns="geometry"), same.drop(columns="geometry"))
    lateral_only = CombinedScreener(axial="drop", contact="drop", lateral=None).screen(vol)
    assert list(lateral_only.index) == ["0:1-2:lateral"]
    assert "shared" in lateral_only.iloc[0].geometry.extra


def test_combined_lists_a_pair_found_twice_once_with_the_earlier_kind():
    from sklearn_overseg.screening.lateral import LateralScreener

    vol = _cut_column_and_stack()
    contact = ContactScreener().screen(vol)
    lateral = LateralScreener().screen(vol)
    assert [1, 2] in _pairs(contact) and _pairs(lateral) == [[1, 2]]
    table = CombinedScreener(lateral=LateralScreener()).screen(vol)
    keys = [(min(a, b), max(a, b)) for a, b in _pairs(table)]
    assert len(keys) == len(set(keys))
    # Contact comes before lateral: the cut pair keeps its contact row.
    assert table.loc[table["cell_b"] == 2, "kind"].tolist() == ["contact"]
    assert "0:1-2:lateral" not in table.index


def test_combined_refuses_to_drop_every_part():
    for est in (
        CombinedScreener(axial="drop", contact="drop"),
        CombinedScreener(axial="drop", contact="drop", lateral="drop"),
    ):
        with pytest.raises(ValueError, match="every part is 'drop'"):
            est.screen(_column())
        with pytest.raises(ValueError, match="every part is 'drop'"):
            est.fit()
    with pytest.raises(InvalidParameterError, match="lateral"):
        CombinedScreener(lateral="nope").fit()


def test_combined_set_params_reaches_a_dropped_part():
    from sklearn_overseg.screening.lateral import LateralScreener

    est = CombinedScreener().set_params(lateral__max_shared_layers=2)
    assert isinstance(est.lateral, LateralScreener) and est.lateral.max_shared_layers == 2
    assert est.get_params(deep=True)["lateral__max_shared_layers"] == 2
    copy = clone(est)
    assert copy.lateral is not est.lateral and copy.lateral.max_shared_layers == 2
    est = CombinedScreener(contact="drop").set_params(contact__min_contact=3)
    assert isinstance(est.contact, ContactScreener) and est.contact.min_contact == 3
    # Setting a part to "drop" with no nested key keeps it dropped.
    est = CombinedScreener(lateral=LateralScreener()).set_params(lateral="drop")
    assert est.lateral == "drop"
    # A nested key given with the part itself applies to that part.
    est = CombinedScreener().set_params(
        lateral=LateralScreener(context_layers=3), lateral__max_shared_layers=2
    )
    assert (est.lateral.context_layers, est.lateral.max_shared_layers) == (3, 2)


# ------------------------------------------------------------------ API hygiene


def test_determinism_and_no_mutation():
    vol = _tilted_box(_unit(50, 110))
    ref = vol.copy()
    vol.setflags(write=False)
    first = ContactScreener().screen(vol)
    second = ContactScreener().transform([vol])
    np.testing.assert_array_equal(vol, ref)
    pd.testing.assert_frame_equal(first.drop(columns="geometry"), second.drop(columns="geometry"))
    for g1, g2 in zip(first.geometry, second.geometry, strict=True):
        np.testing.assert_array_equal(g1.a, g2.a)
        np.testing.assert_array_equal(g1.b, g2.b)
        assert g1.extra == g2.extra


def test_bad_input_and_params():
    with pytest.raises(ValueError, match="3D"):
        ContactScreener().screen(np.ones((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="float"):
        ContactScreener().screen(np.ones((3, 4, 4), dtype=float))
    with pytest.raises(TypeError, match="list of 3D"):
        ContactScreener().transform("volume.tif")
    with pytest.raises(InvalidParameterError, match="min_contact"):
        ContactScreener(min_contact=0).fit()
    with pytest.raises(InvalidParameterError, match="max_layers"):
        ContactScreener(max_layers=0).screen(_boxes())
    with pytest.raises(ValueError, match="spacing"):
        ContactScreener().screen(_boxes(), spacing=(1, 1))
    empty = ContactScreener().screen(np.zeros((3, 3, 3), dtype=np.uint8))
    assert len(empty) == 0 and list(empty.columns) == list(CANDIDATE_COLUMNS)
    est = ContactScreener(max_layers=3)
    assert clone(est).get_params() == est.get_params()


# ------------------------------------------------------------------ real data


def test_plant_tissue_adjacency_and_tilted_cuts(plant_tissue):
    index = CellIndex.from_volume(plant_tissue)
    start = time.perf_counter()
    pairs = contact_pairs(index)
    seconds = time.perf_counter() - start
    # Every differing non-zero face neighbour is counted exactly once.
    total = sum(
        int(np.count_nonzero((a != b) & (a != 0) & (b != 0)))
        for a, b in (
            (plant_tissue[1:], plant_tissue[:-1]),
            (plant_tissue[:, 1:], plant_tissue[:, :-1]),
            (plant_tissue[:, :, 1:], plant_tissue[:, :, :-1]),
        )
    )
    assert pairs["contact_px"].sum() == total
    assert (pairs["pos_p"] < pairs["pos_q"]).all()
    print(f"plant_tissue_a: {len(pairs)} touching pairs, adjacency {seconds:.2f} s")

    flaws = pytest.importorskip("sklearn_overseg.synthesis.flaws")
    crop = np.ascontiguousarray(plant_tissue[40:90, 60:180, 60:180])
    flawed = flaws.cut_cells_tilted(crop, 0.2, max_tilt_deg=60, random_state=0)
    table = ContactScreener(max_layers=8, min_contact=4).screen(flawed.labels)
    found = {(min(a, b), max(a, b)) for a, b in _pairs(table)}
    cuts = {(min(a, b), max(a, b)) for a, b in flawed.merges[["cell_a", "cell_b"]].values}
    assert cuts and cuts <= found
    geoms = table.geometry
    assert all(g.n_layers_a <= 8 and g.n_layers_b <= 8 for g in geoms)
    assert all(g.a.any() and g.b.any() for g in geoms)
    # A real cell cut by a plane and re-sliced along it: the layers facing the removed
    # reference layer overlap almost fully.
    for (a, b), g, contact in zip(_pairs(table), geoms, table["contact_px"], strict=True):
        if (min(a, b), max(a, b)) in cuts and contact >= 100:
            smaller = min(g.a[-1].sum(), g.b[0].sum())
            assert np.count_nonzero(g.a[-1] & g.b[0]) >= 0.7 * smaller


def test_sampler_matches_scipy_affine_transform():
    from scipy import ndimage as ndi

    from sklearn_overseg.screening.reslice import _sample_nearest

    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, size=(9, 11, 10)).astype(np.uint8)
    padded = np.pad(codes, 1)
    t = np.deg2rad(35)
    matrix = np.array([[np.cos(t), np.sin(t), 0], [-np.sin(t), np.cos(t), 0], [0, 0, 0.25]])
    offset = np.array([-2.3, 1.2, -0.7])
    expected = ndi.affine_transform(
        codes, matrix, offset=offset, output_shape=(8, 12, 16), order=0, mode="grid-constant"
    )
    np.testing.assert_array_equal(_sample_nearest(padded, matrix, offset, (8, 12, 16)), expected)


# ------------------------------------------------- speed-up exactness (reference copy)
# The re-slicing code as it was before it was optimised (hull restricted to the slab,
# buffered float sampler, np.take, bit-packed process transfer). The screener must give
# bit-identical results with it: any drift would change the features of every pair.


def _old_hull_points(
    self: _reslice._PairBox, origin: np.ndarray, normal: np.ndarray, half_width: float | None
) -> np.ndarray:
    """Voxels holding every extreme of A ∪ B along any direction, physical (n, 3).

    With ``half_width``, only voxels whose centre lies within that physical distance
    of the plane ``(origin, normal)`` count: the sampled frame then fits the slab
    that is kept rather than the whole pair.
    """
    union = self.codes > 0
    if half_width is not None:
        axes = [
            ((np.arange(n) + start) * sp - o) * d
            for n, start, sp, o, d in zip(
                union.shape, self.start, self.spacing, origin, normal, strict=True
            )
        ]
        distance = (
            axes[0].astype(np.float32)[:, None, None]
            + axes[1].astype(np.float32)[None, :, None]
            + axes[2].astype(np.float32)[None, None, :]
        )
        near = union & (np.abs(distance) <= half_width)
        if near.any():
            union = near
    filled = union.any(axis=0)
    ys, xs = np.nonzero(filled)
    first = union.argmax(axis=0)[ys, xs]
    last = union.shape[0] - 1 - union[::-1].argmax(axis=0)[ys, xs]
    ends = np.concatenate([np.stack([first, ys, xs], axis=1), np.stack([last, ys, xs], axis=1)])
    return self._physical(ends)


def _old_sample_nearest(
    padded: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Nearest-neighbour sampling of ``padded[1:-1, 1:-1, 1:-1]`` at ``matrix @ o + offset``.

    Same result as ``scipy.ndimage.affine_transform(..., order=0, mode="grid-constant")``
    (rounding half up, zero outside) but about three times faster here: the coordinates
    are affine in the output index, so each axis is two broadcast additions, and indices
    outside the crop are clipped onto its zero border instead of being tested.
    """
    strides = (padded.shape[1] * padded.shape[2], padded.shape[2], 1)
    grids = [np.arange(n, dtype=float) for n in shape]
    flat = np.zeros(shape, dtype=np.intp)
    for k in range(3):
        # +1 for the border, +0.5 so that floor rounds to the nearest voxel.
        first = (matrix[k, 0] * grids[0] + (offset[k] + 1.5))[:, None, None]
        coord = first + (matrix[k, 1] * grids[1])[None, :, None]
        coord = coord + (matrix[k, 2] * grids[2])[None, None, :]
        np.floor(coord, out=coord)
        np.clip(coord, 0, padded.shape[k] - 1, out=coord)
        flat += coord.astype(np.intp) * strides[k]
    return padded.ravel()[flat]


def _old_in_plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.array([0.0, 1.0, 0.0]) if abs(normal[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = reference - (reference @ normal) * normal
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    return u, v / np.linalg.norm(v)


def _old_reslice(
    box,
    origin: np.ndarray,
    normal: np.ndarray,
    method: str,
    max_layers: int | None,
    n_faces: int,
    codes: tuple[int, int] = (1, 2),
) -> PairGeometry:
    """Sample the pair on layers parallel to the plane; ``codes`` = (A's, B's) crop code."""
    spacing = box.spacing
    step = float(spacing.min())
    u, v = _old_in_plane_axes(normal)
    basis = np.stack([normal, u, v])  # rows: s, i, j directions
    # In-plane grid through the voxel centre nearest the contact centroid (see module doc).
    anchor = np.round(origin / spacing) * spacing
    shift = np.array([0.0, (anchor - origin) @ u, (anchor - origin) @ v]) / step
    # A voxel reaches half its extent beyond its centre along each direction.
    margin = 0.5 * np.abs(basis) @ spacing / step + 1e-3
    half_width = None if max_layers is None else (max_layers + margin[0] + 1e-3) * step
    points = _old_hull_points(box, origin, normal, half_width)
    coords = (points - origin) @ basis.T / step - shift
    s_lo, s_hi = _reslice._span(coords[:, 0], margin[0])
    i_lo, i_hi = _reslice._span(coords[:, 1], margin[1])
    j_lo, j_hi = _reslice._span(coords[:, 2], margin[2])
    if max_layers is not None:
        s_lo, s_hi = max(s_lo, -max_layers), min(s_hi, max_layers)
    s_lo, s_hi = min(s_lo, -1), max(s_hi, 1)
    shape = (s_hi - s_lo + 1, i_hi - i_lo + 1, j_hi - j_lo + 1)
    # Output index o maps to the physical point base + step * basis.T @ o, then to
    # voxel coordinates of the crop.
    base = (
        origin
        + (s_lo + _reslice._TIE_BIAS) * step * normal
        + (i_lo + shift[1]) * step * u
        + (j_lo + shift[2]) * step * v
    )
    matrix = (step * basis.T) / spacing[:, None]
    offset = base / spacing - box.start
    sampled = _old_sample_nearest(box.padded, matrix, offset, shape)
    zero = -s_lo
    a, dropped_a = _reslice._trim(sampled[:zero] == codes[0], keep_last=True)
    b, _ = _reslice._trim(sampled[zero + 1 :] == codes[1], keep_last=False)
    # A cell one layer thin across the plane lives only on the reference layer; removing
    # it would leave nothing, so that side keeps it and the gap shrinks to 0.
    kept = None
    if a.shape[0] == 0 and b.shape[0] > 0:
        a, dropped_a, kept = sampled[zero : zero + 1] == codes[0], zero, "a"
    elif b.shape[0] == 0 and a.shape[0] > 0:
        b, kept = sampled[zero : zero + 1] == codes[1], "b"
    footprint = np.concatenate([a, b]).any(axis=0)
    rows, cols = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    if rows.size:
        frame = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        a, b = a[:, frame[0], frame[1]], b[:, frame[0], frame[1]]
        top = (i_lo + int(rows[0]), j_lo + int(cols[0]))
    else:
        top = (i_lo, j_lo)
    if not a.any():
        a = a[:0]
    if not b.any():
        b = b[:0]
    return PairGeometry(
        a=np.ascontiguousarray(a),
        b=np.ascontiguousarray(b),
        gap=0 if kept else 1,
        spacing=(step, step),
        layer_step=step,
        origin=top,
        extra={
            "plane_origin": tuple(float(x) for x in origin),
            "normal": tuple(float(x) for x in normal),
            "u": tuple(float(x) for x in u),
            "v": tuple(float(x) for x in v),
            "grid_anchor": tuple(float(x) for x in anchor),
            "method": method,
            "n_contact_faces": int(n_faces),
            "reference_kept": kept,
            "s_first_a": s_lo + dropped_a,
        },
    )


def _assert_same_tables(ref: pd.DataFrame, new: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(ref.drop(columns="geometry"), new.drop(columns="geometry"))
    for g1, g2 in zip(ref.geometry, new.geometry, strict=True):
        for side in ("a", "b"):
            m1, m2 = getattr(g1, side), getattr(g2, side)
            assert m1.dtype == m2.dtype == bool
            assert m1.shape == m2.shape
            np.testing.assert_array_equal(m1, m2)
        assert (g1.gap, g1.spacing, g1.layer_step, g1.origin) == (
            g2.gap,
            g2.spacing,
            g2.layer_step,
            g2.origin,
        )
        assert g1.extra == g2.extra


def _reference_screen(monkeypatch, volume, spacing, **params) -> pd.DataFrame:
    with monkeypatch.context() as patch:
        patch.setattr(_reslice._PairBox, "hull_points", _old_hull_points)
        patch.setattr(_reslice, "_sample_nearest", _old_sample_nearest)
        patch.setattr(_reslice, "_in_plane_axes", _old_in_plane_axes)
        patch.setattr(_reslice, "_reslice", _old_reslice)
        return ContactScreener(**params).screen(volume, spacing=spacing)


@pytest.mark.parametrize(
    ("shape", "anisotropy", "spacing", "params"),
    [
        ((16, 48, 48), 1.0, None, {}),
        ((16, 48, 48), 1.0, None, {"max_layers": 3, "min_size": 20}),
        ((12, 40, 40), 3.0, (3.0, 1.0, 1.0), {"max_layers": 2}),
    ],
)
def test_optimised_reslicing_matches_reference_exactly(
    monkeypatch, shape, anisotropy, spacing, params
):
    from sklearn_overseg.synthesis.datasets import make_tissue

    vol = make_tissue(shape, anisotropy=anisotropy, random_state=3)
    ref = _reference_screen(monkeypatch, vol, spacing, **params)
    assert len(ref) > 50
    new = ContactScreener(**params).screen(vol, spacing=spacing)
    _assert_same_tables(ref, new)


def test_parallel_screen_matches_serial_exactly():
    from sklearn_overseg.synthesis.datasets import make_tissue

    vol = make_tissue((12, 40, 40), random_state=4)
    vol.setflags(write=False)
    serial = ContactScreener(max_layers=4).screen(vol)
    parallel = ContactScreener(max_layers=4, n_jobs=2).screen(vol)
    assert len(serial) > 20
    _assert_same_tables(serial, parallel)

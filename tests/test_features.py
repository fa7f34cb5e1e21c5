"""Tests of the candidate-table feature transformers (sklearn_overseg.features.geo_wasserstein)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from sklearn_overseg.features.geo_wasserstein import GeoWassersteinFeatures
from sklearn_overseg.features.ot import mask_wasserstein
from sklearn_overseg.features.overlap_topology import OverlapTopologyFeatures, _curve_features
from sklearn_overseg.screening.candidates import PairGeometry

SHAPE = (64, 64)


def disk(radius: float, center=(32, 32)) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def pair(radii_a, radii_b, *, shift_b=(0, 0), gap=1, spacing=(1.0, 1.0)) -> PairGeometry:
    """A stack of disks (a cone or a cylinder); B's disks moved by ``shift_b``."""
    a = np.stack([disk(r) for r in radii_a])
    b = np.stack([disk(r, center=(32 + shift_b[0], 32 + shift_b[1])) for r in radii_b])
    a.setflags(write=False)
    b.setflags(write=False)
    return PairGeometry(a=a, b=b, gap=gap, spacing=spacing)


def table(geoms, ids=None) -> pd.DataFrame:
    n = len(geoms)
    frame = pd.DataFrame(
        {
            "volume": ["v"] * n,
            "cell_a": np.arange(n, dtype=np.int64) + 1,
            "cell_b": np.arange(n, dtype=np.int64) + 100,
            "kind": ["axial"] * n,
            "gap": [g.gap for g in geoms],
            "geometry": pd.Series(list(geoms), dtype=object),
        }
    )
    frame.index = ids if ids is not None else [f"v:{i}-{i + 100}:axial" for i in range(n)]
    return frame


def features(est, geoms, **fit_kw) -> pd.DataFrame:
    X = table(geoms)
    return est.set_output(transform="pandas").fit(X, **fit_kw).transform(X)


# ------------------------------------------------------------------ Geo-Wasserstein


def test_cylinder_with_shifted_partner():
    # Within each cylinder nothing moves; across the gap B is translated by (3, 4).
    out = features(GeoWassersteinFeatures(), [pair([10] * 4, [10] * 3, shift_b=(3, 4))])
    row = out.iloc[0]
    assert row["emd_gap"] == pytest.approx(5.0, abs=1e-9)
    for stat in ("min", "q25", "median", "q75", "max"):
        assert row[f"emd_a_{stat}"] == 0.0
        assert row[f"emd_b_{stat}"] == 0.0
    assert row["emd_a_count"] == 3
    assert row["emd_b_count"] == 2
    # Median 0 is below the quarter-pixel floor: ratio = 5 / 0.25.
    assert row["emd_gap_over_a_median"] == pytest.approx(20.0)


def test_cone_features_match_pairwise_distances():
    geom = pair([6, 8, 10, 12], [16, 18, 24])
    row = features(GeoWassersteinFeatures(), [geom]).iloc[0]
    d_a = [mask_wasserstein(disk(r1), disk(r2)) for r1, r2 in [(6, 8), (8, 10), (10, 12)]]
    d_b = [mask_wasserstein(disk(16), disk(18)), mask_wasserstein(disk(18), disk(24))]
    gap = mask_wasserstein(disk(12), disk(16))
    assert row["emd_gap"] == pytest.approx(gap)
    assert row["emd_a_min"] == pytest.approx(min(d_a))
    assert row["emd_a_max"] == pytest.approx(max(d_a))
    assert row["emd_a_median"] == pytest.approx(np.median(d_a))
    assert row["emd_b_q25"] == pytest.approx(d_b[0] + 0.25 * (d_b[1] - d_b[0]))
    assert row["emd_gap_over_b_median"] == pytest.approx(gap / np.mean(d_b))
    # Concentric disks: W1 = (2/3)(r2 - r1) in the continuum; pixels are within ~10 %.
    assert row["emd_gap"] == pytest.approx(8.0 / 3.0, rel=0.1)
    assert row["emd_b_max"] == pytest.approx(4.0, rel=0.1)


def test_single_layer_side_is_zero_with_count_zero():
    row = features(GeoWassersteinFeatures(), [pair([10], [10, 11], shift_b=(0, 2))]).iloc[0]
    assert row["emd_a_count"] == 0
    assert row["emd_a_min"] == row["emd_a_max"] == row["emd_gap_over_a_median"] == 0.0
    assert row["emd_b_count"] == 1
    assert row["emd_gap"] == pytest.approx(2.0)
    assert np.isfinite(row.to_numpy()).all()


def test_empty_layers_are_skipped():
    geom = pair([10, 0.1, 10], [10])  # radius 0.1: only the centre pixel
    a = geom.a.copy()
    a[1] = False
    row = features(GeoWassersteinFeatures(), [PairGeometry(a=a, b=geom.b)]).iloc[0]
    assert row["emd_a_count"] == 1
    assert row["emd_a_max"] == 0.0


def test_spacing_from_geometry_and_override():
    geom = pair([10] * 2, [10] * 2, shift_b=(3, 4), spacing=(2.0, 2.0))
    assert features(GeoWassersteinFeatures(), [geom]).iloc[0]["emd_gap"] == pytest.approx(10.0)
    row = features(GeoWassersteinFeatures(spacing=(1.0, 0.5)), [geom]).iloc[0]
    assert row["emd_gap"] == pytest.approx(np.hypot(3.0, 2.0))


def test_normalize_divides_by_equivalent_radius():
    geom = pair([10, 11], [12, 12], shift_b=(3, 4), spacing=(0.5, 0.5))
    raw = features(GeoWassersteinFeatures(), [geom]).iloc[0]
    norm = features(GeoWassersteinFeatures(normalize=True), [geom]).iloc[0]
    areas = [disk(r).sum() * 0.25 for r in (10, 11, 12, 12)]
    radius = np.sqrt(np.mean(areas) / np.pi)
    assert norm["emd_gap"] == pytest.approx(raw["emd_gap"] / radius)
    assert norm["emd_a_max"] == pytest.approx(raw["emd_a_max"] / radius)
    assert norm["emd_gap_over_a_median"] == pytest.approx(raw["emd_gap_over_a_median"])
    assert norm["emd_a_count"] == 1


@pytest.mark.parametrize(
    ("statistics", "names"),
    [
        ("paper", ["min", "q25", "median", "q75", "max"]),
        ("incomplete", ["median", "q25", "q75"]),
        ("perturbed", ["q10", "q30", "median", "q70", "q90"]),
        ([0.125, 0.5, 1.0], ["q12_5", "median", "max"]),
    ],
)
def test_statistics_presets_name_the_columns(statistics, names):
    est = GeoWassersteinFeatures(statistics=statistics).fit(table([pair([5, 6], [7])]))
    expected = (
        ["emd_gap"]
        + [f"emd_a_{n}" for n in names]
        + ["emd_a_count"]
        + [f"emd_b_{n}" for n in names]
        + ["emd_b_count", "emd_gap_over_a_median", "emd_gap_over_b_median"]
    )
    assert list(est.get_feature_names_out()) == expected
    assert est.transform(table([pair([5, 6], [7])])).shape == (1, len(expected))


def test_extra_preset_has_deciles_min_max():
    est = GeoWassersteinFeatures(statistics="extra").fit(table([pair([5, 6], [7])]))
    assert len(est.statistics_) == 11
    assert est.statistics_[0] == ("min", 0.0)
    assert est.statistics_[-1] == ("max", 1.0)


@pytest.mark.parametrize("statistics", ["mean", [], [0.5, 0.5], [1.5], ["a"]])
def test_bad_statistics(statistics):
    with pytest.raises(ValueError, match="statistics"):
        GeoWassersteinFeatures(statistics=statistics).fit(table([pair([5, 6], [7])]))


def test_bad_params():
    X = table([pair([5, 6], [7])])
    with pytest.raises(ValueError, match="method"):
        GeoWassersteinFeatures(method="fast").fit(X)
    with pytest.raises(ValueError, match="max_exact_points"):
        GeoWassersteinFeatures(max_exact_points=0).fit(X)
    with pytest.raises(ValueError, match="spacing"):
        GeoWassersteinFeatures(spacing=(1.0, 0.0)).fit(X)
    with pytest.raises(ValueError, match="min_points"):
        OverlapTopologyFeatures(min_points=2).fit(X)


def _random_geoms(n: int, seed: int = 0) -> list[PairGeometry]:
    rng = np.random.default_rng(seed)
    geoms = []
    for _ in range(n):
        ra = rng.uniform(5, 12, size=rng.integers(2, 5))
        rb = rng.uniform(5, 12, size=rng.integers(1, 4))
        geoms.append(pair(ra, rb, shift_b=tuple(rng.integers(-4, 5, size=2))))
    return geoms


def test_deterministic_across_runs_n_jobs_and_subsets():
    geoms = _random_geoms(6)
    X = table(geoms)
    est = GeoWassersteinFeatures(method="sliced", n_projections=8, random_state=7).fit(X)
    first = est.transform(X)
    np.testing.assert_array_equal(first, est.transform(X))
    parallel = clone(est).set_params(n_jobs=2).fit(X).transform(X)
    np.testing.assert_array_equal(first, parallel)
    # A row's features depend on its id, not its position or neighbours.
    sub = X.iloc[[4, 1]]
    np.testing.assert_array_equal(est.transform(sub), first[[4, 1]])
    other = clone(est).set_params(random_state=8).fit(X).transform(X)
    assert not np.array_equal(first, other)


def test_pandas_output_keeps_index_and_empty_table():
    geoms = _random_geoms(3)
    X = table(geoms, ids=["x", "y", "z"]).iloc[::-1]
    for est in (GeoWassersteinFeatures(), OverlapTopologyFeatures()):
        out = est.set_output(transform="pandas").fit(X).transform(X)
        assert list(out.index) == ["z", "y", "x"]
        assert list(out.columns) == list(est.get_feature_names_out())
        empty = est.transform(X.iloc[:0])
        assert empty.shape == (0, len(est.get_feature_names_out()))


def test_bad_tables_raise_clear_errors():
    X = table([pair([5, 6], [7])])
    for est in (GeoWassersteinFeatures(), OverlapTopologyFeatures()):
        with pytest.raises(TypeError, match="DataFrame"):
            est.fit(X.to_numpy())
        with pytest.raises(ValueError, match="'geometry' column"):
            est.fit(X.drop(columns="geometry"))
        bad = X.copy()
        bad["geometry"] = [np.zeros((2, 3, 3), dtype=bool)]
        with pytest.raises(TypeError, match=r"row 'v:0-100:axial'.*ndarray"):
            est.fit(bad)
        a = np.zeros((2, 8, 8), dtype=bool)
        with pytest.raises(ValueError, match="no pixel in cell A"):
            est.fit_transform(table([PairGeometry(a=a, b=disk(3)[None, :8, :8].copy())]))


def test_not_fitted_errors():
    X = table([pair([5, 6], [7])])
    for est in (GeoWassersteinFeatures(), OverlapTopologyFeatures()):
        with pytest.raises(NotFittedError):
            est.transform(X)
        with pytest.raises(NotFittedError):
            est.get_feature_names_out()


@pytest.mark.parametrize("est", [GeoWassersteinFeatures(), OverlapTopologyFeatures()])
def test_sklearn_api(est):
    name = type(est).__name__
    check_no_attributes_set_in_init(name, est)
    check_parameters_default_constructible(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    X = table(_random_geoms(3))
    fitted = clone(est).fit(X)
    assert fitted.n_features_in_ == X.shape[1]
    assert list(fitted.feature_names_in_) == list(X.columns)
    assert not hasattr(clone(fitted), "n_features_in_")
    with pytest.raises(ValueError, match="input_features"):
        fitted.get_feature_names_out(["nope"])
    with pytest.raises(ValueError, match="feature names"):
        fitted.transform(X.rename(columns={"kind": "type"}))


# ----------------------------------------------------------------------- topology


def test_curve_perfect_valley_quadratic():
    x = np.arange(7, dtype=float)
    r2_lin, r2_quad, r2, cls, mono = _curve_features((x - 3) ** 2 + 5, 3)
    assert r2_quad == pytest.approx(1.0, abs=1e-12)
    assert r2_lin < 0.0
    assert (cls, mono) == (1, 0)
    assert r2 == pytest.approx(1.0, abs=1e-12)


def test_curve_monotone_and_unimodal_score_one():
    noisy_rise = np.array([1.0, 5.0, 5.5, 12.0, 12.1, 30.0])
    r2_lin, _, r2, _, mono = _curve_features(noisy_rise, 3)
    assert r2_lin < 0.95
    assert (r2, mono) == (1.0, 1)
    rise_fall = np.array([1.0, 6.0, 7.0, 9.0, 3.0, 2.0])
    r2_lin, r2_quad, r2, _, mono = _curve_features(rise_fall, 3)
    assert max(r2_lin, r2_quad) < 0.95
    assert (r2, mono) == (1.0, 1)


def test_curve_linear_and_zigzag():
    line = 3.0 * np.arange(6) + 2.0
    r2_lin, r2_quad, r2, cls, mono = _curve_features(line, 3)
    assert r2_lin == pytest.approx(1.0) and r2_quad == pytest.approx(1.0)
    assert (cls, mono) == (0, 1)
    zigzag = np.array([10.0, 2.0, 11.0, 1.0, 12.0, 3.0, 10.0])
    r2_lin, r2_quad, r2, cls, mono = _curve_features(zigzag, 3)
    assert mono == 0
    assert r2 == max(r2_lin, r2_quad) < 0.2


def test_curve_short_and_three_points():
    assert _curve_features(np.array([4.0, 9.0]), 3) == (1.0, 1.0, 1.0, 0, 1)
    assert _curve_features(np.array([4.0, 9.0, 1.0, 7.0]), 5) == (1.0, 1.0, 1.0, 0, 1)
    # Three points: the parabola interpolates, so the quadratic score falls back to linear.
    r2_lin, r2_quad, _, cls, mono = _curve_features(np.array([4.0, 1.0, 4.0]), 3)
    assert r2_quad == r2_lin and cls == 0 and mono == 0
    # Constant curve: perfectly fitted, monotone.
    assert _curve_features(np.full(5, 7.0), 3) == (1.0, 1.0, 1.0, 0, 1)


def test_topology_of_cone_and_shifted_cylinder():
    cone = pair([6, 8, 10, 12], [16, 18, 20])
    shifted = pair([10] * 4, [10] * 4, shift_b=(0, 6))
    out = features(OverlapTopologyFeatures(normalize=False), [cone, shifted])
    assert "topo_r2_normalized" not in out.columns
    c, s = out.iloc[0], out.iloc[1]
    # Concentric growing disks: overlaps increase, monotone.
    assert (c["topo_r2"], c["topo_monotonic"]) == (1.0, 1.0)
    assert c["gap_overlap_frac"] == pytest.approx(1.0)
    assert c["gap_area_ratio"] == pytest.approx(disk(12).sum() / disk(16).sum())
    # Cylinder with B shifted: constant overlaps with a dip at the gap, not monotone.
    assert s["topo_monotonic"] == 0.0
    assert s["topo_r2"] < 1.0
    area = disk(10).sum()
    assert s["gap_overlap_frac"] == pytest.approx((disk(10) & disk(10, (32, 38))).sum() / area)
    assert s["gap_area_ratio"] == 1.0


def test_topology_normalisation_is_learned_per_class():
    train = [*_random_geoms(12, seed=1), pair([10] * 4, [10] * 4, shift_b=(0, 6))]
    X = table(train)
    est = OverlapTopologyFeatures().fit(X)
    raw = OverlapTopologyFeatures(normalize=False).fit(X).transform(X)
    r2, cls = raw[:, 2], raw[:, 3].astype(int)
    for c in (0, 1):
        if np.any(cls == c):
            assert est.class_mean_[c] == pytest.approx(r2[cls == c].mean())
            assert est.class_std_[c] == pytest.approx(r2[cls == c].std())
    out = est.transform(X)
    expected = (r2 - est.class_mean_[cls]) / np.maximum(est.class_std_[cls], 1e-2)
    np.testing.assert_allclose(out[:, 5], expected)
    # Learned, not hard-coded: another training table gives other statistics.
    other = OverlapTopologyFeatures().fit(table(_random_geoms(12, seed=5)))
    assert not np.allclose(other.class_mean_, est.class_mean_, equal_nan=True)


def test_topology_unseen_class_uses_global_stats():
    # Two-layer pairs: curves of one point, class 0 by definition.
    train = table([pair([8], [8], shift_b=(0, k)) for k in range(3)])
    est = OverlapTopologyFeatures().fit(train)
    assert est.class_count_.tolist() == [3, 0]
    assert np.isnan(est.class_mean_[1])
    valley = pair([10] * 4, [10] * 4, shift_b=(0, 6))
    row = est.transform(table([valley]))[0]
    assert row[3] == 1.0
    assert row[5] == pytest.approx((row[2] - est.global_mean_) / max(est.global_std_, 1e-2))
    with pytest.raises(ValueError, match="at least one row"):
        OverlapTopologyFeatures().fit(train.iloc[:0])


# ------------------------------------------------------------------- composition


def _labelled_table(n: int = 16):
    rng = np.random.default_rng(3)
    geoms, y = [], []
    for i in range(n):
        r0 = rng.uniform(6, 10)
        if i % 2:  # one cell: smooth growth, B continues A
            geoms.append(pair(r0 + np.arange(4), r0 + 5 + np.arange(3)))
            y.append(1)
        else:  # two cells: B elsewhere and of another size
            geoms.append(pair(r0 + np.arange(4), [r0 + 8] * 3, shift_b=(0, 9)))
            y.append(0)
    return table(geoms), np.array(y)


def test_feature_union_pipeline_and_grid_search():
    X, y = _labelled_table()
    union = FeatureUnion([("emd", GeoWassersteinFeatures()), ("topo", OverlapTopologyFeatures())])
    pipe = Pipeline([("features", union), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(X, y)
    assert pipe.score(X, y) == 1.0
    names = pipe[0].get_feature_names_out()
    assert "emd__emd_gap" in names and "topo__topo_r2" in names
    search = GridSearchCV(
        pipe, {"features__emd": ["drop", GeoWassersteinFeatures()]}, cv=2, error_score="raise"
    )
    search.fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 2


def test_column_transformer_drop_and_pandas_output():
    X, y = _labelled_table(6)
    ct = ColumnTransformer(
        [
            ("emd", GeoWassersteinFeatures(), ["geometry"]),
            ("topo", OverlapTopologyFeatures(), ["geometry"]),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    out = ct.fit_transform(X, y)
    assert out.index.equals(X.index)
    assert "emd_gap" in out.columns and "topo_r2" in out.columns
    dropped = clone(ct).set_params(emd="drop").fit_transform(X, y)
    assert not any(c.startswith("emd_") for c in dropped.columns)
    np.testing.assert_array_equal(dropped.to_numpy(), out[dropped.columns].to_numpy())

"""Lateral candidates: pieces of one cell that share a layer (screening and features)."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

import sklearn_overseg.features.lateral as lateral_features_module
import sklearn_overseg.screening.lateral as lateral_screening_module
from sklearn_overseg.features.lateral import LATERAL_FEATURES, LateralFeatures
from sklearn_overseg.screening.cells import CellIndex
from sklearn_overseg.screening.lateral import LateralScreener, lateral_pairs


def _cut_and_neighbours() -> np.ndarray:
    """Cell 1, a column cut in two in layer 3 (piece 2); cells 3 and 4 distinct neighbours
    that meet in layer 3 only; cell 5, tall beside 3 and 4 (shares four layers with each)."""
    vol = np.zeros((7, 10, 20), dtype=np.uint16)
    vol[:, 1:7, 1:9] = 1
    vol[3, 1:7, 5:9] = 2
    vol[0:4, 1:7, 10:16] = 3
    vol[3:7, 7:9, 10:16] = 4
    vol[:, 1:9, 16:19] = 5
    return vol


def _pairs(table: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(table["cell_a"].tolist(), table["cell_b"].tolist(), strict=True))


# ------------------------------------------------------------------ lateral_pairs


def test_lateral_pairs_keep_in_plane_neighbours_with_short_z_overlap():
    vol = _cut_and_neighbours()
    index = CellIndex.from_volume(vol)
    pairs = lateral_pairs(index)
    assert list(pairs.columns) == ["pos_a", "pos_b", "gap", "overlap_px", "contact_px"]
    labels = index.labels
    found = [(labels[a], labels[b]) for a, b in zip(pairs["pos_a"], pairs["pos_b"], strict=True)]
    assert found == [(1, 2), (3, 4)]
    # Contact counts in-plane pixel edges: 6 along the cut, 6 where 3 meets 4.
    assert pairs["contact_px"].tolist() == [6, 6] == pairs["overlap_px"].tolist()
    assert (pairs["gap"] == 0).all()
    # Cells 3 and 5 share four layers (0-3), 4 and 5 share four (3-6).
    wide = lateral_pairs(index, max_shared_layers=4)
    found = {(labels[a], labels[b]) for a, b in zip(wide["pos_a"], wide["pos_b"], strict=True)}
    assert found == {(1, 2), (3, 4), (5, 3), (5, 4)}
    contact = {
        (labels[a], labels[b]): c
        for a, b, c in zip(wide["pos_a"], wide["pos_b"], wide["contact_px"], strict=True)
    }
    assert contact[5, 3] == 4 * 6 and contact[5, 4] == 4 * 2


def test_lateral_pairs_orientation_starts_higher_then_taller():
    vol = np.zeros((6, 4, 8), dtype=np.uint8)
    vol[2:4, :, :4] = 1  # starts lower
    vol[0:3, :, 4:] = 2  # starts higher: A
    index = CellIndex.from_volume(vol)
    pairs = lateral_pairs(index)
    assert (index.labels[pairs["pos_a"]].item(), index.labels[pairs["pos_b"]].item()) == (2, 1)
    vol = np.zeros((6, 4, 8), dtype=np.uint8)
    vol[1:3, :, :4] = 1
    vol[1:5, :, 4:] = 3  # same start as 1, taller: A
    index = CellIndex.from_volume(vol)
    pairs = lateral_pairs(index, max_shared_layers=2)
    assert (index.labels[pairs["pos_a"]].item(), index.labels[pairs["pos_b"]].item()) == (3, 1)
    vol = np.zeros((6, 4, 8), dtype=np.uint8)
    vol[1:3, :, :4] = 4
    vol[1:3, :, 4:] = 2  # same start, same height: the smaller id is A
    index = CellIndex.from_volume(vol)
    pairs = lateral_pairs(index, max_shared_layers=2)
    assert (index.labels[pairs["pos_a"]].item(), index.labels[pairs["pos_b"]].item()) == (2, 4)
    assert len(lateral_pairs(index)) == 0  # two shared layers > 1


def test_lateral_pairs_ignore_axial_and_diagonal_contacts():
    vol = np.zeros((4, 6, 6), dtype=np.uint8)
    vol[:2, 1:5, 1:5] = 1
    vol[2:, 1:5, 1:5] = 2  # stacked on 1: an axial neighbour, no in-plane contact
    vol[1, 0, 0] = 3  # meets 1 at a corner only: no shared pixel edge
    assert len(lateral_pairs(CellIndex.from_volume(vol))) == 0
    empty = lateral_pairs(CellIndex.from_volume(np.zeros((2, 3, 3), dtype=np.uint8)))
    assert len(empty) == 0 and list(empty.columns)[:2] == ["pos_a", "pos_b"]


def test_lateral_pairs_footprint_pairs_pieces_that_do_not_touch_in_their_layer():
    vol = np.zeros((6, 8, 12), dtype=np.uint8)
    vol[0:6, 1:7, 1:5] = 1  # a cell, 6 layers tall
    vol[2, 1:7, 7:11] = 2  # one layer of it cut off, 2 px away: too far to touch
    vol[1, 1:7, 5:11] = 1  # ...but the cell reaches over it in the layer above
    vol[3:6, 1:7, 8] = 3  # right under 2, sharing no layer with it: an axial pair
    index = CellIndex.from_volume(vol)
    assert len(lateral_pairs(index, max_distance=2)) == 0
    pairs = lateral_pairs(index, max_distance=2, footprint=True)
    labels = index.labels
    found = [(labels[a], labels[b]) for a, b in zip(pairs["pos_a"], pairs["pos_b"], strict=True)]
    assert found == [(1, 2)]
    # No in-plane contact; overlap is 2's voxels right under 1's (6 rows x 4 cols).
    assert pairs["contact_px"].tolist() == [0] and pairs["overlap_px"].tolist() == [24]
    # A pair that touches in-plane keeps its in-plane counts when footprint is on.
    vol[2, 1:7, 5:7] = 2
    touching = lateral_pairs(CellIndex.from_volume(vol), footprint=True)
    assert touching["contact_px"].tolist() == [6] == touching["overlap_px"].tolist()
    table = LateralScreener(footprint=True).screen(vol)
    assert table[["cell_a", "cell_b"]].values.tolist() == [[1, 2]]


# ------------------------------------------------------------------ LateralScreener


def test_screener_table_and_geometry():
    vol = _cut_and_neighbours()
    table = LateralScreener().screen(vol, volume_id="v")
    assert _pairs(table) == [(1, 2), (3, 4)]
    assert (table["kind"] == "lateral").all()
    assert list(table.index) == ["v:1-2:lateral", "v:3-4:lateral"]
    assert table["z_b_first"].tolist() == [3, 3] and table["z_b_last"].tolist() == [3, 6]
    cut = table.iloc[0].geometry
    # Window: the shared layer 3 and two layers on each side, in one (Y, X) frame.
    assert cut.a.shape == cut.b.shape == (5, 6, 8)
    assert cut.gap == 0 and cut.origin == (1, 1)
    assert cut.extra["shared"] == (2, 3)
    assert cut.a.sum(axis=(1, 2)).tolist() == [48, 48, 24, 48, 48]
    assert cut.b.sum(axis=(1, 2)).tolist() == [0, 0, 24, 0, 0]
    assert not (cut.a & cut.b).any()
    assert not cut.extra["other"].any()
    neighbours = table.iloc[1].geometry
    # 3 ends and 4 begins in layer 3: the window runs from layer 1 to layer 5.
    assert neighbours.extra["shared"] == (2, 3) and neighbours.a.shape[0] == 5
    assert neighbours.a[:3].any(axis=(1, 2)).all() and not neighbours.a[3:].any()
    assert neighbours.b[2:].any(axis=(1, 2)).all() and not neighbours.b[:2].any()


def test_screener_other_marks_third_labels_in_the_window():
    vol = _cut_and_neighbours()
    vol[4, 2:4, 2:4] = 7  # a third cell inside 1's footprint, one layer under the cut
    geom = LateralScreener().screen(vol).iloc[0].geometry
    other = geom.extra["other"]
    assert other.shape == geom.a.shape
    assert other.sum() == 4 and other[3].sum() == 4  # window layer 3 = volume layer 4


def test_screener_max_shared_layers_and_context_layers():
    vol = _cut_and_neighbours()
    assert _pairs(LateralScreener(max_shared_layers=4).screen(vol)) == [
        (1, 2),
        (3, 4),
        (5, 3),
        (5, 4),
    ]
    geom = LateralScreener(context_layers=1).screen(vol).iloc[0].geometry
    assert geom.a.shape[0] == 3 and geom.extra["shared"] == (1, 2)
    geom = LateralScreener(context_layers=9).screen(vol).iloc[0].geometry
    assert geom.a.shape[0] == 7 and geom.extra["shared"] == (3, 4)  # clipped to the volume


def test_screener_spacing_and_threads():
    vol = _cut_and_neighbours()
    geom = LateralScreener(spacing=(4.0, 0.5, 0.5)).screen(vol).iloc[0].geometry
    assert geom.spacing == (0.5, 0.5) and geom.layer_step == 4.0
    serial = LateralScreener().screen(vol)
    threads = LateralScreener(n_jobs=2).screen(vol)
    pd.testing.assert_frame_equal(serial.drop(columns="geometry"), threads.drop(columns="geometry"))


def test_screener_params_input_and_clone():
    vol = _cut_and_neighbours()
    reference = vol.copy()
    vol.setflags(write=False)
    LateralScreener().screen(vol)
    np.testing.assert_array_equal(vol, reference)
    with pytest.raises(InvalidParameterError, match="max_shared_layers"):
        LateralScreener(max_shared_layers=0).screen(vol)
    with pytest.raises(InvalidParameterError, match="context_layers"):
        LateralScreener(context_layers=0).screen(vol)
    with pytest.raises(TypeError, match="float"):
        LateralScreener().screen(vol.astype(float))
    est = LateralScreener(max_shared_layers=2, context_layers=3)
    assert clone(est).get_params() == est.get_params()
    table = est.transform([vol, vol])
    assert table["volume"].tolist() == ["0", "0", "1", "1"]
    assert LateralScreener.kind == "lateral"


# ------------------------------------------------------------------ LateralFeatures


def _features(vol: np.ndarray, **screen) -> pd.DataFrame:
    table = LateralScreener(**screen).screen(vol)
    return LateralFeatures().set_output(transform="pandas").fit_transform(table)


def test_feature_names_and_pandas_output():
    vol = _cut_and_neighbours()
    table = LateralScreener().screen(vol)
    est = LateralFeatures().fit(table)
    names = est.get_feature_names_out()
    assert list(names) == list(LATERAL_FEATURES) and len(names) == 19
    assert est.n_features_in_ == len(table.columns)
    plain = est.transform(table)
    assert isinstance(plain, np.ndarray) and plain.shape == (2, 19)
    frame = LateralFeatures().set_output(transform="pandas").fit_transform(table)
    assert list(frame.columns) == list(names)
    assert list(frame.index) == list(table.index)
    np.testing.assert_array_equal(frame.to_numpy(), plain)
    assert LateralFeatures().fit(table).transform(table.iloc[:0]).shape == (0, 19)


@pytest.mark.parametrize("classifier", [None, "logistic"])
def test_lateral_pipeline_with_context_adds_the_context_block(classifier):
    from sklearn.linear_model import LogisticRegression

    from sklearn_overseg.classification.pipeline import make_lateral_pipeline
    from sklearn_overseg.features.context import CellContextFeatures

    table = LateralScreener().screen(_cut_and_neighbours())
    clf = LogisticRegression() if classifier else None
    plain = make_lateral_pipeline(clf, random_state=0)
    with_context = make_lateral_pipeline(clf, context=True, random_state=0)
    assert isinstance(plain.named_steps["features"], LateralFeatures)
    features = with_context.named_steps["features"].set_output(transform="pandas")
    assert features.n_jobs == 1  # never ship the masks to worker processes
    frame = features.fit_transform(table)
    names = list(frame.columns)
    context_names = CellContextFeatures().fit(table).get_feature_names_out()
    assert names == [f"lateral__{n}" for n in LATERAL_FEATURES] + [
        f"context__{n}" for n in context_names
    ]
    assert np.isfinite(frame.to_numpy()).all()
    np.testing.assert_allclose(
        frame.filter(like="lateral__").to_numpy(), _features(_cut_and_neighbours())
    )


def test_a_cut_cross_section_gains_iou_and_distinct_neighbours_lose_it():
    f = _features(_cut_and_neighbours())
    cut, neighbours = f.loc["0:1-2:lateral"], f.loc["0:3-4:lateral"]
    # The union of the two pieces is exactly the cross-section above and below.
    assert cut["lat_iou_union_above"] == cut["lat_iou_union_below"] == 1.0
    assert cut["lat_iou_gain_above"] == cut["lat_iou_gain_below"] == pytest.approx(0.5)
    assert cut["lat_area_ratio"] == 1.0 and cut["lat_solidity_union"] == 1.0
    for side in ("above", "below"):
        assert cut[f"lat_iou_gain_{side}"] > neighbours[f"lat_iou_gain_{side}"]
        assert neighbours[f"lat_iou_gain_{side}"] < 0
    assert neighbours["lat_area_ratio"] == pytest.approx(12 / 36)
    assert cut["lat_layers_a"] == 5 and cut["lat_layers_b"] == 1
    assert cut["lat_shared_layers"] == 1 and cut["lat_has_above"] == cut["lat_has_below"] == 1
    # The one-layer piece lies inside the column's footprint next to the cut.
    assert max(cut["lat_cover_small"], cut["lat_cover_large"]) == 1.0
    assert neighbours["lat_cover_small"] == neighbours["lat_cover_large"] == 0.0
    assert cut["lat_contact_ratio"] == pytest.approx(6 / np.sqrt(24))


def test_foreign_cover_sees_a_third_cell_under_a_piece():
    vol = _cut_and_neighbours()
    vol[4, 1:7, 5:9] = 7  # under piece 2, another cell continues
    f = _features(vol)
    cut = f.loc["0:1-2:lateral"]
    assert max(cut["lat_foreign_small"], cut["lat_foreign_large"]) == 1.0


@pytest.mark.parametrize("depth", [1, 2])
def test_features_are_finite_for_one_layer_pieces(depth):
    # Two pieces of one layer each, in a stack of `depth` layers: nothing above or below.
    vol = np.zeros((depth, 6, 10), dtype=np.uint8)
    vol[0, 1:5, 1:5] = 1
    vol[0, 1:5, 5:9] = 2
    f = _features(vol)
    assert len(f) == 1
    assert np.isfinite(f.to_numpy()).all()
    row = f.iloc[0]
    assert row["lat_has_above"] == row["lat_has_below"] == 0.0
    assert row["lat_iou_gain_above"] == row["lat_iou_gain_below"] == 0.0
    assert row["lat_layers_a"] == row["lat_layers_b"] == 1.0


def test_features_are_finite_on_stitched_tissue():
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched

    gt = make_tissue((16, 48, 48), cell_size=(16, 16, 16), random_state=0)
    labels = synthesize_stitched(gt, cut_rate=0.2, random_state=0).labels
    f = _features(labels)
    assert len(f) > 10
    assert np.isfinite(f.to_numpy()).all()
    for column in ("lat_area_ratio", "lat_iou_union_above", "lat_cover_small", "lat_foreign_large"):
        assert f[column].between(0, 1).all(), column


def test_features_bad_input_and_unfitted():
    from sklearn.exceptions import NotFittedError

    table = LateralScreener().screen(_cut_and_neighbours())
    with pytest.raises(TypeError, match="candidate table"):
        LateralFeatures().fit(table.drop(columns="geometry"))
    with pytest.raises(TypeError, match="got ndarray"):
        LateralFeatures().fit(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        LateralFeatures().transform(table)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        LateralFeatures(n_jobs="two").fit(table)
    threads = LateralFeatures(n_jobs=2).fit_transform(table)
    np.testing.assert_array_equal(threads, LateralFeatures().fit_transform(table))


@pytest.mark.parametrize("module", [lateral_screening_module, lateral_features_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

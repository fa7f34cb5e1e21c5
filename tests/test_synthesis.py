"""Tests of training-data synthesis (sklearn_overseg.synthesis.training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold

from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.candidates import PairGeometry
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.training import (
    label_candidates,
    majority_labels,
    make_training_table,
)


@pytest.fixture(scope="module")
def tissue():
    gt = make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=0)
    gt.setflags(write=False)
    return gt


# ------------------------------------------------------------------ majority_labels


def test_majority_labels_by_hand():
    flawed = np.array([[[1, 1, 1, 2, 2, 0], [3, 3, 3, 3, 4, 4]]], dtype=np.uint16)
    truth = np.array([[[10, 10, 20, 20, 20, 20], [20, 0, 0, 10, 30, 20]]], dtype=np.int32)
    flawed.setflags(write=False)
    truth.setflags(write=False)
    # 1: two voxels of 10, one of 20. 2: all 20. 3: background wins (2 of 4).
    # 4: a tie between 30 and 20 goes to the smaller id. The flawed background is ignored.
    assert majority_labels(flawed, truth) == {1: 10, 2: 20, 3: 0, 4: 20}


def test_majority_labels_identity_large_ids_and_empty():
    vol = np.zeros((2, 3, 3), dtype=np.int64)
    vol[0] = 2**40
    vol[1, :2] = 7
    assert majority_labels(vol, vol) == {7: 7, 2**40: 2**40}
    empty = np.zeros((2, 3, 3), dtype=np.uint8)
    assert majority_labels(empty, vol) == {}


def test_majority_labels_bad_inputs():
    vol = np.ones((2, 3, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        majority_labels(vol, np.ones((2, 3, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="float"):
        majority_labels(vol.astype(float), vol)
    with pytest.raises(ValueError, match="3D"):
        majority_labels(vol[0], vol[0])


# ----------------------------------------------------------------- label_candidates


def test_label_candidates_by_hand():
    table = pd.DataFrame(
        {"cell_a": [1, 1, 3, 5, 3], "cell_b": [2, 4, 4, 1, 6]},
        index=["p", "q", "r", "s", "t"],
    )
    mapping = {1: 10, 2: 10, 3: 0, 4: 20, 6: 0}
    y = label_candidates(table, mapping)
    # Same ground-truth cell → 1; different, unknown (5) or both background (3, 6) → 0.
    assert y.to_dict() == {"p": 1, "q": 0, "r": 0, "s": 0, "t": 0}
    assert y.name == "same_cell" and np.issubdtype(y.dtype, np.integer)
    assert list(y.index) == list(table.index)


def test_ground_truth_screened_against_itself_is_all_negative(tissue):
    table = AxialGapScreener().screen(tissue)
    assert len(table) > 0  # natural gap-0 neighbours along z
    y = label_candidates(table, majority_labels(tissue, tissue))
    assert (y == 0).all()


# -------------------------------------------------------------- make_training_table


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["geometry"])


def test_training_table_has_both_classes_and_volume_keys(tissue):
    table, y = make_training_table([tissue], n_repeats=1, random_state=0)
    assert len(table) == len(y) > 0
    assert list(y.index) == list(table.index) and table.index.is_unique
    counts = y.value_counts().to_dict()
    assert set(counts) == {0, 1} and min(counts.values()) >= 5
    assert set(table["volume"]) == {"0/z1p0/r0", "0/z1p0f/r0"}
    assert all(isinstance(g, PairGeometry) for g in table["geometry"])
    # Every positive's halves overlap across the gap; positives here are blanked splits.
    assert (table.loc[y == 1, "overlap_px"] > 0).all()
    assert set(table.loc[y == 1, "gap"]) == {1}
    # The input is never written.
    assert not tissue.flags.writeable


def test_training_table_is_deterministic(tissue):
    t1, y1 = make_training_table({"g": tissue}, n_repeats=1, random_state=3)
    t2, y2 = make_training_table({"g": tissue}, n_repeats=1, random_state=3)
    pd.testing.assert_frame_equal(_plain(t1), _plain(t2))
    pd.testing.assert_series_equal(y1, y2)
    for g1, g2 in zip(t1["geometry"], t2["geometry"], strict=True):
        np.testing.assert_array_equal(g1.a, g2.a)
        np.testing.assert_array_equal(g1.b, g2.b)
    t3, _ = make_training_table({"g": tissue}, n_repeats=1, random_state=4)
    assert list(t3.index) != list(t1.index)


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        (
            {"z_subsample": (1, 2)},
            {"g/z1p0/r0", "g/z1p0f/r0", "g/z2p0/r0", "g/z2p0f/r0", "g/z2p1/r0", "g/z2p1f/r0"},
        ),
        (
            {"z_subsample": (1, 2), "all_phases": False},
            {"g/z1p0/r0", "g/z1p0f/r0", "g/z2p0/r0", "g/z2p0f/r0"},
        ),
        ({"z_subsample": (1, 2), "flip_z": False}, {"g/z1p0/r0", "g/z2p0/r0", "g/z2p1/r0"}),
        ({"all_phases": False, "flip_z": False}, {"g/z1p0/r0"}),
    ],
)
def test_variants_produce_documented_volume_keys(tissue, options, keys):
    table, y = make_training_table({"g": tissue}, n_repeats=1, random_state=0, **options)
    assert set(table["volume"]) == keys
    assert set(y) == {0, 1}
    # One group per draw: GroupKFold over the keys never splits a draw.
    if len(keys) > 1:
        groups = table["volume"].to_numpy()
        for train, test in GroupKFold(n_splits=2).split(table, y, groups):
            assert not set(groups[train]) & set(groups[test])


def test_flip_turns_the_volume_upside_down(tissue):
    up, _ = make_training_table(
        {"g": tissue}, n_repeats=1, all_phases=False, flip_z=True, random_state=0
    )
    down = up[up["volume"] == "g/z1p0f/r0"]
    # In a flipped draw, z indices are mirrored: z_a_last < z_b_first still holds.
    assert (down["z_a_last"] < down["z_b_first"]).all()
    assert down["z_b_last"].max() <= tissue.shape[0] - 1


def test_subsampling_scales_the_layer_step(tissue):
    table, _ = make_training_table(
        {"g": tissue},
        n_repeats=1,
        z_subsample=(1, 2),
        flip_z=False,
        spacing=(0.5, 0.25, 0.2),
        random_state=0,
    )
    for key, geom in zip(table["volume"], table["geometry"], strict=True):
        assert geom.spacing == (0.25, 0.2)
        assert geom.layer_step == (1.0 if "/z2" in key else 0.5)
    # Half the layers: no z index can reach past the subsampled depth.
    sub = table[table["volume"].str.contains("/z2")]
    assert sub["z_b_last"].max() <= tissue.shape[0] // 2 - 1


def test_relabel_repeats_come_first_and_have_no_gap(tissue):
    table, y = make_training_table(
        {"g": tissue},
        n_repeats=2,
        relabel_fraction=0.5,
        all_phases=False,
        flip_z=False,
        random_state=0,
    )
    positives = table[y == 1]
    by_repeat = positives.groupby("volume")["gap"].unique().to_dict()
    assert set(by_repeat) == {"g/z1p0/r0", "g/z1p0/r1"}
    assert list(by_repeat["g/z1p0/r0"]) == [0]  # relabelled at a z plane
    assert list(by_repeat["g/z1p0/r1"]) == [1]  # one blanked layer


def test_single_volume_array_and_custom_screener(tissue):
    table, _ = make_training_table(
        tissue, n_repeats=1, flip_z=False, screener=AxialGapScreener(min_gap=1), random_state=0
    )
    assert set(table["volume"]) == {"0/z1p0/r0"}
    assert (table["gap"] == 1).all()


def test_training_table_bad_inputs(tissue):
    with pytest.raises(ValueError, match="z_subsample"):
        make_training_table([tissue], z_subsample=(0,))
    with pytest.raises(ValueError, match="n_repeats"):
        make_training_table([tissue], n_repeats=0)
    with pytest.raises(ValueError, match="relabel_fraction"):
        make_training_table([tissue], relabel_fraction=1.5)
    with pytest.raises(ValueError, match="spacing"):
        make_training_table([tissue], spacing=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="3D"):
        make_training_table([tissue[0]])
    with pytest.raises(TypeError, match="float"):
        make_training_table({"f": tissue.astype(np.float32)})
    with pytest.raises(ValueError, match="split_fraction"):
        make_training_table([tissue], split_fraction=1.5)


def test_volume_without_tall_cells_gives_empty_typed_result():
    flat = np.zeros((2, 8, 8), dtype=np.uint16)
    flat[:, :4] = 1
    flat[:, 4:] = 2
    table, y = make_training_table([flat], n_repeats=1, random_state=0)
    assert len(table) == 0 and len(y) == 0
    assert "geometry" in table.columns and y.name == "same_cell"

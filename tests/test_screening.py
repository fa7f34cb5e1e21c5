import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.candidates import CANDIDATE_COLUMNS, PairGeometry, concat_tables


def _split_column(gap: int, depth: int = 7) -> np.ndarray:
    """A 4×4 column cut after layer 1, with ``gap`` blank layers."""
    vol = np.zeros((depth, 8, 8), dtype=np.uint16)
    vol[:2, 2:6, 2:6] = 1
    vol[2 + gap :, 2:6, 2:6] = 2
    return vol


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_finds_split_across_gap(gap):
    vol = _split_column(gap)
    vol.setflags(write=False)
    table = AxialGapScreener(max_gap=2).screen(vol)
    assert table[["cell_a", "cell_b", "gap", "overlap_px"]].values.tolist() == [[1, 2, gap, 16]]
    row = table.iloc[0]
    assert (row.z_a_first, row.z_a_last, row.z_b_first, row.z_b_last) == (0, 1, 2 + gap, 6)
    geom = row.geometry
    assert isinstance(geom, PairGeometry)
    assert geom.gap == gap and geom.a.shape == (2, 4, 4) and geom.b.shape == (5 - gap, 4, 4)
    assert geom.a.all() and geom.b.all() and geom.origin == (2, 2)


def test_gap_range_is_respected():
    vol = _split_column(2)
    assert len(AxialGapScreener(max_gap=1).screen(vol)) == 0
    assert len(AxialGapScreener(min_gap=1, max_gap=2).screen(vol)) == 1
    assert len(AxialGapScreener(min_gap=1, max_gap=1).screen(_split_column(0))) == 0


def test_complete_cell_in_gap_blocks_but_partial_and_small_do_not():
    vol = _split_column(1)
    blocked = vol.copy()
    blocked[2, 2:6, 2:6] = 3  # a complete one-layer cell covering the overlap
    table = AxialGapScreener().screen(blocked)
    assert ("1", "2") not in set(
        zip(table.cell_a.astype(str), table.cell_b.astype(str), strict=True)
    )

    partial = vol.copy()
    partial[2, 2:6, 2:6] = 4
    partial[0, 0, 0] = 4  # the same id elsewhere: its extent reaches outside the gap
    pairs = AxialGapScreener().screen(partial)[["cell_a", "cell_b"]].values.tolist()
    assert [1, 2] in pairs

    noise = vol.copy()
    noise[2, 3, 3] = 5  # a tiny hallucinated mask covers 1/16 of the overlap
    pairs = AxialGapScreener().screen(noise)[["cell_a", "cell_b"]].values.tolist()
    assert [1, 2] in pairs
    pairs = AxialGapScreener(min_blocking_fraction=0.05).screen(noise)
    assert [1, 2] not in pairs[["cell_a", "cell_b"]].values.tolist()


def test_complete_cell_elsewhere_does_not_block():
    vol = _split_column(1)
    vol[2, 0:2, 0:2] = 9  # complete, in the gap layer, but away from the overlap
    pairs = AxialGapScreener().screen(vol)[["cell_a", "cell_b"]].values.tolist()
    assert [1, 2] in pairs


def test_overlap_thresholds():
    vol = np.zeros((3, 10, 10), dtype=np.uint8)
    vol[0, 0:5, 0:5] = 1
    vol[2, 4:9, 4:9] = 2  # overlaps cell 1 in one pixel
    assert AxialGapScreener().screen(vol).overlap_px.tolist() == [1]
    assert len(AxialGapScreener(min_overlap=2).screen(vol)) == 0
    assert len(AxialGapScreener(min_overlap_fraction=0.1).screen(vol)) == 0


def test_several_b_for_one_a_and_stable_order():
    vol = np.zeros((3, 6, 8), dtype=np.uint32)
    vol[0, 1:5, 1:7] = 10
    vol[1, 1:5, 1:4] = 30
    vol[1, 1:5, 4:7] = 20
    table = AxialGapScreener().screen(vol, volume_id="v")
    assert table[["cell_a", "cell_b"]].values.tolist() == [[10, 20], [10, 30]]
    assert table.index.tolist() == ["v:10-20:axial", "v:10-30:axial"]
    assert list(table.columns) == list(CANDIDATE_COLUMNS)
    again = AxialGapScreener().screen(vol, volume_id="v")
    pd.testing.assert_frame_equal(table.drop(columns="geometry"), again.drop(columns="geometry"))


def test_tables_concatenate_and_group():
    vols = {"a": _split_column(0), "b": _split_column(1), "c": _split_column(2)}
    table = AxialGapScreener(max_gap=2).transform(vols)
    assert table.volume.tolist() == ["a", "b", "c"]
    folds = list(GroupKFold(n_splits=3).split(table, groups=table.volume))
    assert all(len(test) == 1 for _, test in folds)
    with pytest.raises(ValueError, match="occurs twice"):
        concat_tables([table, table])


def test_params_and_clone():
    screener = AxialGapScreener(max_gap=3)
    assert clone(screener).get_params() == screener.get_params()
    with pytest.raises(ValueError, match="min_gap"):
        AxialGapScreener(min_gap=2, max_gap=1).screen(_split_column(0))
    with pytest.raises(ValueError, match="max_gap"):
        AxialGapScreener(max_gap=-1).screen(_split_column(0))
    with pytest.raises(TypeError, match="list of 3D label volumes"):
        AxialGapScreener().transform("volume.tif")


def test_bad_volume():
    with pytest.raises(TypeError, match="float"):
        AxialGapScreener().screen(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="ndim=2"):
        AxialGapScreener().screen(np.zeros((2, 2), dtype=np.uint8))


def test_real_volume_pairs_overlap(plant_tissue):
    vol = plant_tissue[::4]
    table = AxialGapScreener().screen(vol)
    assert len(table) > 0
    for row in table.itertuples():
        last = vol[row.z_a_last] == row.cell_a
        first = vol[row.z_b_first] == row.cell_b
        assert (last & first).sum() == row.overlap_px
        assert row.z_b_first - row.z_a_last - 1 == row.gap
        assert (vol[row.z_a_last + 1 :] == row.cell_a).sum() == 0


def _screened_pairs(volume) -> set[tuple[int, int]]:
    table = AxialGapScreener().screen(volume)
    return set(zip(table.cell_a.tolist(), table.cell_b.tolist(), strict=True))


def _assert_no_split_dropped(gt, seeds=(0, 1, 2)):
    from sklearn_overseg.synthesis.flaws import synthesize_flaws

    n_checked = 0
    for seed in seeds:
        for blank in (True, False):
            flawed = synthesize_flaws(gt, split_fraction=0.5, blank=blank, random_state=seed)
            found = _screened_pairs(flawed.labels)
            wanted = set(zip(flawed.merges.cell_a, flawed.merges.cell_b, strict=True))
            hard = set(zip(flawed.hard_negatives.cell_a, flawed.hard_negatives.cell_b, strict=True))
            assert wanted <= found, f"dropped splits {sorted(wanted - found)}"
            assert hard <= found, f"dropped hard negatives {sorted(hard - found)}"
            n_checked += len(wanted)
    assert n_checked > 0


def test_recall_of_synthesised_splits_on_synthetic_tissue():
    from sklearn_overseg.synthesis.datasets import make_tissue

    _assert_no_split_dropped(make_tissue((48, 96, 96), cell_size=(24, 24, 24), random_state=3))
    _assert_no_split_dropped(
        make_tissue((24, 96, 96), cell_size=(24, 24, 24), anisotropy=4, random_state=4)
    )
    _assert_no_split_dropped(
        make_tissue((40, 96, 96), cell_size=(24, 24, 24), mode="loose", random_state=5)
    )


@pytest.mark.parametrize("step", [1, 4])
def test_recall_of_synthesised_splits_on_real_tissue(plant_tissue, plant_ovule, step):
    _assert_no_split_dropped(plant_tissue[::step], seeds=(0, 1))
    _assert_no_split_dropped(plant_ovule[::step], seeds=(0, 1))


def test_empty_volume_and_foreign_index():
    from sklearn_overseg.screening.cells import CellIndex

    empty = np.zeros((4, 4, 4), np.uint8)
    assert len(AxialGapScreener().screen(empty)) == 0
    other = CellIndex.from_volume(np.ones((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="index was built for a volume of shape"):
        AxialGapScreener().screen(_split_column(1), index=other)
    with pytest.raises(ValueError, match="n_jobs"):
        AxialGapScreener(n_jobs=0).screen(_split_column(1))


def test_axial_pairs_with_huge_ids():
    vol = _split_column(1).astype(np.uint64)
    vol[vol == 1] = 2**62
    vol[vol == 2] = 2**62 + 2
    table = AxialGapScreener().screen(vol)
    assert table[["cell_a", "cell_b", "gap"]].values.tolist() == [[2**62, 2**62 + 2, 1]]


def test_build_table_needs_a_geometry_unless_told_not_to_cut():
    from sklearn_overseg.screening.axial import screen_axial_pairs
    from sklearn_overseg.screening.base import build_table
    from sklearn_overseg.screening.cells import CellIndex

    vol = np.zeros((5, 6, 6), dtype=np.uint16)
    vol[0:2, 1:5, 1:5] = 1
    vol[3:5, 1:5, 1:5] = 2
    index = CellIndex.from_volume(vol)
    pairs = screen_axial_pairs(index, min_gap=0, max_gap=1)
    assert len(pairs) == 1
    with pytest.raises(ValueError, match="geometry function"):
        build_table(index, pairs, volume_id="v", kind="axial", spacing=(1.0, 1.0, 1.0))
    table = build_table(
        index, pairs, volume_id="v", kind="axial", spacing=(1.0, 1.0, 1.0), with_geometry=False
    )
    assert table["geometry"].isna().all() and table.index.tolist() == ["v:1-2:axial"]
    assert (table[["ref_layers", "ref_voxels"]].to_numpy() == [2.0, 32.0]).all()

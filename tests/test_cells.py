import numpy as np
import pytest

from sklearn_overseg.screening.cells import CellIndex


def _volume():
    vol = np.zeros((4, 5, 6), dtype=np.uint16)
    vol[0:2, 0:2, 0:3] = 3
    vol[1:4, 3:5, 2:6] = 7
    vol[3, 0, 0] = 7  # a second, disconnected piece of cell 7
    return vol


def test_index_extents_and_counts():
    vol = _volume()
    vol.setflags(write=False)
    index = CellIndex.from_volume(vol)
    assert index.labels.tolist() == [3, 7]
    assert index.bboxes.tolist() == [[0, 2, 0, 2, 0, 3], [1, 4, 0, 5, 0, 6]]
    assert index.voxel_counts.tolist() == [12, 25]
    assert index.z_first.tolist() == [0, 1]
    assert index.z_last.tolist() == [1, 3]
    assert index.mask(3, 1).tolist() == [[True] * 3] * 2
    stack = index.stack(7)
    assert stack.shape == (3, 5, 6) and stack.sum() == 25


def test_positions_absent_ids():
    index = CellIndex.from_volume(_volume())
    assert index.positions(np.array([0, 3, 5, 7, 100])).tolist() == [-1, 0, -1, 1, -1]
    with pytest.raises(KeyError, match="label 5"):
        index.position(5)


def test_sparse_huge_ids_match_dense():
    vol = _volume().astype(np.uint64)
    sparse = vol.copy()
    sparse[vol == 3] = 4_000_000_000
    sparse[vol == 7] = 2**40
    dense_index = CellIndex.from_volume(vol)
    sparse_index = CellIndex.from_volume(sparse)
    assert sparse_index.lookup is None
    assert sparse_index.labels.tolist() == [4_000_000_000, 2**40]
    np.testing.assert_array_equal(sparse_index.bboxes, dense_index.bboxes)
    np.testing.assert_array_equal(sparse_index.voxel_counts, dense_index.voxel_counts)
    assert sparse_index.positions(np.array([2**40, 5])).tolist() == [1, -1]


def test_empty_volume_allowed_in_index():
    index = CellIndex.from_volume(np.zeros((2, 3, 3), dtype=np.uint8))
    assert len(index) == 0


def test_typical_cell_ignores_fragments():
    # Three cells of 8 layers x 100 px and ten one-layer fragments of 4 px: a plain median
    # over labels would say cells are one layer tall.
    vol = np.zeros((10, 40, 40), dtype=np.int32)
    for i in range(3):
        vol[1:9, 0:10, 10 * i : 10 * i + 10] = i + 1
    for j in range(10):
        vol[9, 30:32, 4 * j : 4 * j + 2] = 10 + j
    index = CellIndex.from_volume(vol)
    assert float(np.median(index.z_last - index.z_first + 1)) == 1.0
    assert index.typical_cell() == (8.0, 800.0)


def test_typical_cell_of_empty_volume():
    assert CellIndex.from_volume(np.zeros((2, 3, 3), dtype=np.uint8)).typical_cell() == (0.0, 0.0)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.zeros((3, 3), dtype=np.uint8), ValueError, "ndim=2"),
        (np.ones((2, 2, 2), dtype=float), TypeError, "float64"),
        (np.ones((2, 2, 2), dtype=bool), TypeError, "bool"),
        (-np.ones((2, 2, 2), dtype=np.int32), ValueError, "negative"),
        (np.zeros((0, 2, 2), dtype=np.int32), ValueError, "empty"),
    ],
)
def test_bad_volumes_refused(bad, error, match):
    with pytest.raises(error, match=match):
        CellIndex.from_volume(bad)


def test_index_on_real_volume_matches_bruteforce(plant_ovule):
    index = CellIndex.from_volume(plant_ovule)
    for label in index.labels[:: max(1, len(index) // 8)]:
        zz, yy, xx = np.nonzero(plant_ovule == label)
        pos = index.position(label)
        assert index.bboxes[pos].tolist() == [
            zz.min(),
            zz.max() + 1,
            yy.min(),
            yy.max() + 1,
            xx.min(),
            xx.max() + 1,
        ]
        assert index.voxel_counts[pos] == zz.size


def test_uint64_ids_above_float_precision_stay_distinct():
    vol = np.zeros((6, 12, 12), np.uint64)
    vol[0:2, 2:8, 2:8] = 2**62
    vol[3:6, 2:8, 2:8] = 2**62 + 2
    index = CellIndex.from_volume(vol)
    assert index.labels.tolist() == [2**62, 2**62 + 2]
    assert index.voxel_counts.tolist() == [72, 108]
    assert index.positions(np.array([2**62 + 2, 2**62 + 1], dtype=np.uint64)).tolist() == [1, -1]
    vol[0, 0, 0] = 2**64 - 5
    with pytest.raises(ValueError, match="largest supported id"):
        CellIndex.from_volume(vol)

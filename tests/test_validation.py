import numpy as np
import pytest

from sklearn_overseg._validation import check_label_volume, check_spacing


def test_accepts_and_does_not_copy():
    vol = np.zeros((2, 3, 4), dtype=np.uint16)
    vol[0, 0, 0] = 1
    vol.setflags(write=False)
    assert check_label_volume(vol) is vol


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (None, TypeError, "NoneType"),
        ("a.tif", TypeError, "str"),
        (np.zeros((3, 3), dtype=np.uint8), ValueError, r"ndim=2 with shape \(3, 3\)"),
        (np.zeros((1, 1, 1, 1), dtype=np.uint8), ValueError, "ndim=4"),
        (np.ones((2, 2, 2), dtype=np.float32), TypeError, "astype"),
        (np.ones((2, 2, 2), dtype=bool), TypeError, "skimage.measure.label"),
        (np.array([[[1, -3]]], dtype=np.int16), ValueError, "minimum -3"),
        (np.zeros((2, 0, 2), dtype=np.int32), ValueError, "no voxels"),
        (np.zeros((2, 2, 2), dtype=np.int32), ValueError, "no labelled voxel"),
        (np.empty((1, 1, 1), dtype=object), TypeError, "object"),
    ],
)
def test_refuses_bad_volumes(bad, error, match):
    with pytest.raises(error, match=match):
        check_label_volume(bad)


def test_all_background_allowed_on_request():
    vol = np.zeros((2, 2, 2), dtype=np.int32)
    assert check_label_volume(vol, allow_empty=True) is vol


def test_spacing():
    assert check_spacing(None) == (1.0, 1.0, 1.0)
    assert check_spacing(2) == (2.0, 2.0, 2.0)
    assert check_spacing([4, 1, 1]) == (4.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="3 values"):
        check_spacing([1, 1])
    with pytest.raises(ValueError, match="> 0"):
        check_spacing([1, 0, 1])
    with pytest.raises(TypeError, match="spacing"):
        check_spacing(object())


def test_spacing_string_is_named():
    with pytest.raises(TypeError, match="spacing must be"):
        check_spacing("abc")


def test_n_jobs():
    from sklearn_overseg._validation import check_n_jobs

    for ok in (None, 1, 2, -1):
        check_n_jobs(ok)
    with pytest.raises(ValueError, match="non-zero"):
        check_n_jobs(0)
    with pytest.raises(TypeError, match="int or None"):
        check_n_jobs("2")
    with pytest.raises(TypeError, match="int or None"):
        check_n_jobs(True)

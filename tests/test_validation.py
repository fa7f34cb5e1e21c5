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


# ----------------------------------------------------------------------------- workers
@pytest.fixture
def two_cores(monkeypatch):
    import os

    import joblib

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(joblib, "cpu_count", lambda *a, **k: 2)


def test_effective_n_jobs_is_min_of_requested_cores_and_tasks(two_cores):
    from joblib import parallel_config

    from sklearn_overseg._validation import effective_n_jobs

    assert effective_n_jobs(1000) == 2
    assert effective_n_jobs(-1) == 2
    assert effective_n_jobs(None) == 1
    assert effective_n_jobs(1000, n_tasks=1) == 1
    assert effective_n_jobs(2, n_tasks=0) == 1
    assert effective_n_jobs(-1000) == 1
    with parallel_config(n_jobs=1000):
        assert effective_n_jobs(None) == 2  # what a bare Parallel() would inherit
        assert effective_n_jobs(None, 1) == 1
    with pytest.raises(ValueError, match="non-zero"):
        effective_n_jobs(0)


def test_effective_n_jobs_leaves_a_cluster_its_workers(two_cores, monkeypatch):
    from sklearn_overseg import _validation

    monkeypatch.setattr(_validation, "_backend_is_distributed", lambda: True)
    assert _validation.effective_n_jobs(16) == 16
    assert _validation.effective_n_jobs(16, n_tasks=3) == 3


def _calls(tree, names):
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in names:
                yield node


def test_every_pool_in_the_package_goes_through_effective_n_jobs():
    """A Parallel, parallel_config or LocalCluster whose size is not capped would let
    n_jobs=1000 start 1000 processes (it once took a 23 GB machine down)."""
    import ast
    from pathlib import Path

    import sklearn_overseg

    def capped(value, function) -> bool:
        if isinstance(value, ast.Constant) and value.value == 1:
            return True
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "effective_n_jobs":
            return True
        if isinstance(value, ast.Name):  # a local assigned from effective_n_jobs(...)
            return any(
                isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == value.id for t in node.targets)
                and capped(node.value, function)
                for node in ast.walk(function)
            )
        return False

    offenders, seen = [], 0
    for path in sorted(Path(sklearn_overseg.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for call in _calls(tree, {"Parallel", "parallel_config", "LocalCluster"}):
            seen += 1
            function = next((f for f in functions if f.lineno <= call.lineno <= f.end_lineno), tree)
            keywords = {k.arg: k.value for k in call.keywords}
            size = keywords.get("n_workers" if "n_workers" in keywords else "n_jobs")
            backend = keywords.get("backend")
            dask_only = (
                size is None and isinstance(backend, ast.Constant) and backend.value == "dask"
            )
            if not dask_only and (size is None or not capped(size, function)):
                offenders.append(f"{path.name}:{call.lineno}")
    assert seen >= 10
    assert offenders == []

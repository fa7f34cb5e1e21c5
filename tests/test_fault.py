"""A writer killed (SIGKILL) at a random point never leaves a partial output.

A child process overwrites one target again and again, alternating two contents; the
test kills it after a random delay, wherever it is: importing, writing the temporary,
renaming, deleting the old store. The target must then be absent or hold one of the two
contents whole, and the next write to it must remove what the dead writer left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sklearn_overseg.io._paths import _temp_pattern

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (12, 128, 128)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    target, kind = sys.argv[1], sys.argv[2]
    contents = [np.full({shape}, v, dtype=np.uint16) for v in (1, 2)]
    contents[1][0, 0, 0] = 3
    if kind == "model":
        from sklearn.linear_model import LogisticRegression
        from sklearn_overseg.io.persistence import save_estimator
        X = np.random.default_rng(0).normal(size=(2000, 40))
        y = (X[:, 0] > 0).astype(int)
        models = [LogisticRegression(C=c).fit(X, y) for c in (1.0, 2.0)]
        i = 0
        while True:
            save_estimator(models[i % 2], target, overwrite=True)
            i += 1
    else:
        from sklearn_overseg.io.volumes import save_volume
        i = 0
        while True:
            save_volume(target, contents[i % 2], overwrite=True)
            i += 1
    """
).format(shape=SHAPE)


def _expected(kind: str) -> list:
    if kind == "model":
        return [1.0, 2.0]
    first = np.full(SHAPE, 1, dtype=np.uint16)
    second = np.full(SHAPE, 2, dtype=np.uint16)
    second[0, 0, 0] = 3
    return [first, second]


def _read(target: Path, kind: str):
    if kind == "model":
        from sklearn_overseg.io.persistence import load_estimator

        return load_estimator(target).C
    from sklearn_overseg.io.volumes import load_volume

    return load_volume(target)


def _check_complete(target: Path, kind: str) -> bool:
    """True if the target exists and equals one of the contents; fails if partial."""
    if not (target.exists() or target.is_symlink()):
        return False
    value = _read(target, kind)
    if kind == "model":
        assert value in _expected(kind)
    else:
        assert any(np.array_equal(value, e) for e in _expected(kind)), "partial volume"
    return True


def _leftovers(target: Path) -> list[Path]:
    pattern = _temp_pattern(target)
    return [p for p in target.parent.iterdir() if pattern.match(p.name)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tif", "zarr", "h5", "model"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_during_write_leaves_target_absent_or_complete(kind, seed, tmp_path):
    target = tmp_path / ("model" if kind == "model" else f"out.{kind}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), kind],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rng = random.Random(f"{kind}-{seed}")
    try:
        # Wait for the first temporary, so that the kill lands while writing, not while
        # importing; then a random delay of up to a few writes.
        deadline = time.monotonic() + 60
        while not _leftovers(target) and not target.exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.2))  # the first Zarr write alone takes ~0.6 s
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    _check_complete(target, kind)
    # What the dead writer left, once past the grace period that protects a live
    # writer's newborn temporary, goes with the next write to the same target.
    old = time.time() - 60
    for leftover in _leftovers(target):
        os.utime(leftover, (old, old))
    if kind == "model":
        from sklearn.linear_model import LogisticRegression

        from sklearn_overseg.io.persistence import save_estimator

        save_estimator(LogisticRegression(C=1.0), target, overwrite=True)
    else:
        from sklearn_overseg.io.volumes import save_volume

        save_volume(target, _expected(kind)[0], overwrite=True)
    assert _leftovers(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]

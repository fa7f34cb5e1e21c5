"""Shared fixtures: the repository root on sys.path and the optional real-data folder.

The real ground-truth volumes are not part of the repository. They are found as
:func:`sklearn_overseg.synthesis.datasets.find_data_dir` finds them (``OVERSEG_DATA_DIR``, else
``shared/data`` beside the checkout). A test that needs them either requests the
``data_dir`` fixture (directly or through ``plant_tissue``/``plant_ovule``) or carries
``@pytest.mark.needs_data``; both are marked ``needs_data`` at collection and skipped,
with the reason, when the folder is absent. The header names the folder used, or the
number of tests that will skip and why, also under pytest-xdist.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn_overseg.synthesis.datasets import DATA_ENV, find_data_dir  # noqa: E402

#: Start of the skip reason of every test skipped for want of the real data.
SKIP_PREFIX = "needs real data: "
# The xdist controller collects nothing itself: each worker writes its count of
# needs_data tests to a file named in its workerinput, read when it reports collection.
_WORKER_REPORT = "overseg_needs_data_report"
_COUNT_KEY = pytest.StashKey[int]()
_REPORT_DIR_KEY = pytest.StashKey[str]()


def _locate() -> tuple[Path | None, str]:
    """The real-data folder (or None) and how it was found (or why it was not)."""
    try:
        path = find_data_dir(start=ROOT, required=True)
    except FileNotFoundError as exc:
        return None, str(exc)
    if os.environ.get(DATA_ENV):
        return path, f"{path} (from {DATA_ENV})"
    return path, f"{path} (shared/data beside the checkout; {DATA_ENV} overrides it)"


#: The real-data folder, or None when no test that needs it can run.
DATA_DIR, DATA_NOTE = _locate()


# ------------------------------------------------------------------------ hooks


def pytest_report_header(config) -> str:
    if DATA_DIR is not None:
        return f"real data: {DATA_NOTE}"
    return f"real data: none, tests marked needs_data will skip. {DATA_NOTE}"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so `-m needs_data` sees the marks
def pytest_collection_modifyitems(config, items) -> None:
    skip = pytest.mark.skip(reason=SKIP_PREFIX + DATA_NOTE)
    for item in items:
        if "data_dir" in item.fixturenames:  # the closure: plant_tissue etc. count too
            item.add_marker(pytest.mark.needs_data)
        if DATA_DIR is None and item.get_closest_marker("needs_data") is not None:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)  # before xdist tells the controller collection is done
def pytest_collection_finish(session) -> None:
    if DATA_DIR is not None:
        return
    count = sum(item.get_closest_marker("needs_data") is not None for item in session.items)
    session.config.stash[_COUNT_KEY] = count
    report = getattr(session.config, "workerinput", {}).get(_WORKER_REPORT)
    if report:
        Path(report).write_text(json.dumps({"skip": count, "total": len(session.items)}))


def _skip_line(count: int, total: int) -> str:
    return (
        f"{count} of {total} tests need real data and will skip: set {DATA_ENV} "
        "(see README.md, 'Tests')."
    )


def pytest_report_collectionfinish(config, items) -> str | None:
    count = config.stash.get(_COUNT_KEY, 0)
    return _skip_line(count, len(items)) if count else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: give each worker a file to report its needs_data count in."""
    if DATA_DIR is not None:
        return
    config = node.config
    if _REPORT_DIR_KEY not in config.stash:
        config.stash[_REPORT_DIR_KEY] = tempfile.mkdtemp(prefix="overseg_xdist_")
    path = Path(config.stash[_REPORT_DIR_KEY]) / f"{node.gateway.id}.json"
    node.workerinput[_WORKER_REPORT] = str(path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """xdist controller: print the first worker's count (all collect the same tests)."""
    config = node.config
    path = node.workerinput.get(_WORKER_REPORT)
    if _COUNT_KEY in config.stash or not path or not Path(path).is_file():
        return
    report = json.loads(Path(path).read_text())
    config.stash[_COUNT_KEY] = report["skip"]
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None and report["skip"]:
        terminal.write_line(_skip_line(report["skip"], report["total"]))


def pytest_terminal_summary(terminalreporter) -> None:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    skipped = [
        rep
        for rep in terminalreporter.stats.get("skipped", [])
        if isinstance(rep.longrepr, tuple) and SKIP_PREFIX in str(rep.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_sep("-", f"{len(skipped)} skipped: no real data", yellow=True)
        terminalreporter.write_line(DATA_NOTE)


def pytest_unconfigure(config) -> None:
    report_dir = config.stash.get(_REPORT_DIR_KEY, None)
    if report_dir:
        shutil.rmtree(report_dir, ignore_errors=True)


# --------------------------------------------------------------------- fixtures


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


@pytest.fixture(scope="session")
def optional_data_dir() -> Path | None:
    """The real-data folder or None, for tests that fall back to synthetic data."""
    return DATA_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data folder; tests that use it are skipped at collection without it."""
    if DATA_DIR is None:  # reached only through request.getfixturevalue
        pytest.skip(SKIP_PREFIX + DATA_NOTE)
    return DATA_DIR


@pytest.fixture(scope="session")
def plant_tissue(data_dir: Path) -> np.ndarray:
    """Dense plant tissue ground truth (151×326×283), read-only."""
    vol = _read_tif(data_dir / "plant_tissue_a" / "labels_gt.tif")
    vol.setflags(write=False)
    return vol


@pytest.fixture(scope="session")
def plant_ovule(data_dir: Path) -> np.ndarray:
    """Arabidopsis ovule ground truth (32×128×128), read-only."""
    vol = _read_tif(data_dir / "plant_ovule" / "labels_gt.tif")
    vol.setflags(write=False)
    return vol

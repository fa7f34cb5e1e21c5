"""Finding the real-data folder: ``find_data_dir`` and what the test suite makes of it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sklearn_overseg.synthesis import datasets
from sklearn_overseg.synthesis.datasets import DATA_ENV, find_data_dir

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """``work/repo`` (a checkout), ``work/shared/data`` and ``elsewhere/``; no env var."""
    repo = tmp_path / "work" / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    data = tmp_path / "work" / "shared" / "data"
    data.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "clone"
    elsewhere.mkdir(parents=True)
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "_SOURCE_ROOT", elsewhere)  # no pyproject: not a checkout
    return repo, data, elsewhere


def test_env_var_wins(layout, tmp_path, monkeypatch):
    repo, _, _ = layout
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    monkeypatch.chdir(repo)  # shared/data is beside the cwd, but the variable comes first
    monkeypatch.setenv(DATA_ENV, str(chosen))
    assert find_data_dir() == chosen.resolve()


def test_env_var_naming_a_missing_folder_is_an_error(layout, tmp_path, monkeypatch):
    repo, _, _ = layout
    monkeypatch.chdir(repo)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=rf"{DATA_ENV}=.*typo.* is not a directory"):
        find_data_dir()


def test_empty_env_var_counts_as_unset(layout, monkeypatch):
    repo, data, _ = layout
    monkeypatch.chdir(repo)
    monkeypatch.setenv(DATA_ENV, "")
    assert find_data_dir() == data.resolve()


def test_beside_the_checkout_of_the_package(layout, monkeypatch):
    repo, data, elsewhere = layout
    monkeypatch.setattr(datasets, "_SOURCE_ROOT", repo)
    monkeypatch.chdir(elsewhere)
    assert find_data_dir() == data.resolve()


def test_installed_package_is_not_a_checkout(layout, monkeypatch):
    # site-packages/../shared/data exists, but site-packages has no pyproject.toml.
    _, data, _ = layout
    site = data.parents[1] / "site-packages"
    site.mkdir()
    monkeypatch.setattr(datasets, "_SOURCE_ROOT", site)
    monkeypatch.chdir(data.parents[2] / "elsewhere")
    assert find_data_dir() is None


def test_beside_the_current_directory_or_start(layout, monkeypatch):
    repo, data, elsewhere = layout
    monkeypatch.chdir(repo)
    assert find_data_dir() == data.resolve()
    monkeypatch.chdir(repo / "notebooks")  # notebooks/../shared/data does not exist
    assert find_data_dir() is None
    assert find_data_dir(start="..") == data.resolve()
    monkeypatch.chdir(elsewhere)
    assert find_data_dir(start=repo) == data.resolve()


def test_none_found(layout, monkeypatch):
    _, _, elsewhere = layout
    monkeypatch.chdir(elsewhere)
    assert find_data_dir() is None
    with pytest.raises(FileNotFoundError, match=rf"no real-data folder: set {DATA_ENV}"):
        find_data_dir(required=True)


# ----------------------------------------------------------- the suite's behaviour

TESTS = """
import pytest


def test_uses_folder(data_dir):
    assert (data_dir / "marker.txt").is_file()


def test_uses_volume(plant_ovule):
    pass


@pytest.mark.needs_data
def test_marked():
    pass


def test_plain():
    pass
"""


def _run_suite(folder: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pytest on a copy of this suite's conftest and four tests, with ``data``."""
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "test_four.py").write_text(TESTS)
    (folder / "pytest.ini").write_text("[pytest]\nmarkers = needs_data: real data\n")
    # Autoloaded plugins (napari's among them) would take most of the run's time.
    env = {**os.environ, DATA_ENV: str(data), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    # The copied conftest imports the package from wherever this run imported it.
    root = str(Path(datasets.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args]
    return subprocess.run(
        [*command, str(folder)], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def test_suite_without_data_says_how_many_skip_and_why(tmp_path):
    pytest.importorskip("xdist")
    missing = tmp_path / "no_such_folder"
    # Under xdist, the path CI takes: only the workers collect.
    result = _run_suite(tmp_path, missing, "-p", "xdist", "-n", "2")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"real data: none, tests marked needs_data will skip. {DATA_ENV}=" in out
    assert f"3 of 4 tests need real data and will skip: set {DATA_ENV}" in out
    assert "3 skipped: no real data" in out
    assert "1 passed, 3 skipped" in out
    # -rs groups skips by location: every group names the reason, and they add up to 3.
    groups = re.findall(r"^SKIPPED \[(\d+)\] .*$", out, flags=re.MULTILINE)
    assert sum(map(int, groups)) == 3
    assert all("needs real data: " in line for line in out.splitlines() if "SKIPPED [" in line)


def test_suite_with_data_runs_everything(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "marker.txt").write_text("")
    suite = tmp_path / "suite"
    suite.mkdir()
    result = _run_suite(suite, data, "-k", "not volume")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"real data: {data} (from {DATA_ENV})" in out
    assert "need real data" not in out and "skipped" not in out
    assert "3 passed, 1 deselected" in out

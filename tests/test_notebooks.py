"""Execute the example notebooks top to bottom and check their key outputs.

Each notebook runs in a fresh kernel started from *this* interpreter (a temporary
kernelspec pointing at ``sys.executable``, found first through ``JUPYTER_PATH``), with the
repository root on ``PYTHONPATH`` and a temporary working directory. The real-data folder
the suite found is passed as ``OVERSEG_DATA_DIR``; without one the notebooks fall back to
synthetic tissue, so these tests never skip for missing data. ``OVERSEG_NOTEBOOK_SIZE=small``
makes notebooks 02-04 run on their smallest meaningful inputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL_NAME = "python3"
NUMBER = r"([0-9]*\.?[0-9]+)"

NOTEBOOKS = [
    "01_quickstart.ipynb",
    "02_train_your_own.ipynb",
    "03_ablation_gridsearch.ipynb",
    "04_transfer_nuclei.ipynb",
    "05_from_raw_slices.ipynb",
]


# ----------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> Path:
    """A JUPYTER_PATH entry whose ``python3`` kernel is the interpreter running pytest."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "Python 3 (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    return root


@pytest.fixture
def kernel_env(kernel_dir, optional_data_dir, monkeypatch) -> None:
    """Environment inherited by the kernel process."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    # The package is not installed: the kernel imports it from the repository root.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    if optional_data_dir is None:  # the notebooks use synthetic tissue
        monkeypatch.delenv("OVERSEG_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("OVERSEG_DATA_DIR", str(optional_data_dir))
    monkeypatch.setenv("OVERSEG_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugger warning


def _text(cell) -> str:
    """Printed text and plain-text results of a code cell."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _all_text(nb) -> str:
    return "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")


def _n_images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.get("outputs", [])
    )


def _map_before_after(text: str) -> tuple[float, float]:
    match = re.search(rf"mAP before: {NUMBER}\s+after: {NUMBER}", text)
    assert match, f"no 'mAP before/after' line in:\n{text}"
    return float(match[1]), float(match[2])


def _pair_precision_recall(text: str) -> tuple[float, float]:
    match = re.search(rf"pair precision {NUMBER}\s+recall {NUMBER}", text)
    assert match, f"no pair precision/recall in:\n{text}"
    return float(match[1]), float(match[2])


def _execute(name: str, workdir: Path):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workdir)}},
        shutdown_kernel="immediate",  # its outputs are in; a graceful stop only waits
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb, time.perf_counter() - start


# ---------------------------------------------------------------- per-notebook checks


def _check_quickstart(nb) -> None:
    before, after = _map_before_after(_text(_tagged(nb, "scores")))
    assert 0 < before < after <= 1
    precision, recall = _pair_precision_recall(_all_text(nb))
    assert precision >= 0.5 and recall >= 0.5
    assert _n_images(nb) >= 2  # orthogonal views and decision gallery


def _check_small(nb) -> None:
    """The size reached the kernel: a full run here would only be slow, not fail."""
    assert "notebook size: small" in _all_text(nb)


def _check_train_your_own(nb) -> None:
    text = _all_text(nb)
    _check_small(nb)
    assert "reloaded model gives the same probabilities: True" in text
    assert "CLI result identical: True" in text
    before, after = _map_before_after(_text(_tagged(nb, "scores")))
    assert 0 < before < after <= 1
    precision, recall = _pair_precision_recall(text)
    assert precision >= 0.5 and recall >= 0.5
    assert _n_images(nb) >= 1  # precision-recall curve


def _check_ablation(nb) -> None:
    _check_small(nb)
    cell = _tagged(nb, "results")
    results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
    assert len(results) == 1, "the results cell must end with the results DataFrame"
    html = results[0]["data"]["text/html"]
    n_rows = html.split("<tbody>", 1)[1].count("<tr>")
    assert n_rows == 10  # (1 without EMD + 4 statistics presets) x 2 classifiers
    # Plain-text rows: index, classifier, emd, statistics, f1, f1_std, precision, ...
    lines = results[0]["data"]["text/plain"].splitlines()
    assert lines[0].split()[:4] == ["classifier", "emd", "statistics", "f1"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == n_rows
    assert {r[1] for r in rows} == {"OversegMLPClassifier", "HistGradientBoostingClassifier"}
    assert sorted(r[3] for r in rows) == sorted(
        ["-", "-"] + 2 * ["paper", "incomplete", "extra", "perturbed"]
    )
    f1 = [float(r[4]) for r in rows]
    assert f1 == sorted(f1, reverse=True)
    assert all(0 <= v <= 1 for v in f1)
    assert f1[0] > 0.6  # the best configuration must separate splits from distinct cells


def _check_transfer(nb) -> None:
    _check_small(nb)
    text = _text(_tagged(nb, "scores"))
    match = re.search(
        rf"trained here: pair precision {NUMBER} recall {NUMBER}; "
        rf"mAP before: {NUMBER}\s+after: {NUMBER}",
        text,
    )
    assert match, text
    precision, recall, before, after = (float(match[i]) for i in range(1, 5))
    assert precision >= 0.5 and recall >= 0.5
    assert 0 < before < after <= 1
    assert _n_images(nb) >= 1


def _check_from_raw(nb) -> None:
    text = _all_text(nb)
    match = re.search(rf"2D mAP layer by layer: {NUMBER}", text)
    assert match, text
    assert float(match[1]) > 0.4  # the watershed is a fair 2D segmentation
    match = re.search(r"split links (\d+), repaired (\d+), false joins (\d+)", text)
    assert match, text
    links, repaired, joins = (int(match[i]) for i in range(1, 4))
    assert links > 0 and 0 < repaired <= links
    assert joins < repaired  # more true pieces joined than distinct cells
    match = re.search(
        rf"mAP 2D masks: {NUMBER}\s+stitched: {NUMBER}\s+corrected: {NUMBER}\s+ceiling: {NUMBER}",
        _text(_tagged(nb, "scores")),
    )
    assert match, _text(_tagged(nb, "scores"))
    masks, stitched, corrected, ceiling = (float(match[i]) for i in range(1, 5))
    # Stitching makes 3D cells of the 2D masks, correction improves on it, and merging
    # every piece into its true cell would do better still.
    assert masks < 0.1 < stitched < corrected <= 1
    assert stitched < ceiling <= 1
    cell = _tagged(nb, "thresholds")
    results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
    assert len(results) == 1
    # Plain-text rows of the first block (wide frames wrap): index, iou_threshold, ...
    lines = results[0]["data"]["text/plain"].splitlines()
    assert lines[0].split()[:2] == ["iou_threshold", "labels"]
    block = lines[1:3]
    assert [float(line.split()[1]) for line in block] == [0.25, 0.5]
    assert _n_images(nb) >= 4  # raw, 2D masks, stitched, stitched vs corrected


CHECKS = {
    "01_quickstart.ipynb": _check_quickstart,
    "02_train_your_own.ipynb": _check_train_your_own,
    "03_ablation_gridsearch.ipynb": _check_ablation,
    "04_transfer_nuclei.ipynb": _check_transfer,
    "05_from_raw_slices.ipynb": _check_from_raw,
}


# ------------------------------------------------------------------------- tests


def test_notebooks_are_clean():
    """Stored notebooks are valid, use the ``python3`` kernel and carry no outputs."""
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == KERNEL_NAME
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_notebooks_match_generator(tmp_path):
    """Regenerating the notebooks reproduces the committed files byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_build", NOTEBOOK_DIR / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    written = build.build(tmp_path)
    assert sorted(p.name for p in written) == NOTEBOOKS
    for path in written:
        committed = (NOTEBOOK_DIR / path.name).read_text()
        assert path.read_text() == committed, f"{path.name} is stale: run notebooks/_build.py"


def test_kernel_is_this_interpreter(kernel_env):
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, kernel_env, record_property):
    nb, elapsed = _execute(name, tmp_path)
    record_property("duration_s", round(elapsed, 1))
    print(f"{name} executed in {elapsed:.1f} s")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors
    CHECKS[name](nb)

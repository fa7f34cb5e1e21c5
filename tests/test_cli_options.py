"""Tests of the ``overseg`` command's start-up, help, options and the ``stitch`` command.

The corrections here use the shipped model (skipped while it is absent); ``test_cli.py``
covers the commands with a model trained for the purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run

from sklearn_overseg import __version__
from sklearn_overseg.cli import _commands as commands
from sklearn_overseg.cli import build_parser
from sklearn_overseg.io.volumes import load_volume, save_volume
from sklearn_overseg.pretrained import PRETRAINED_DIR, load_pretrained
from sklearn_overseg.stitch import stitch_slices
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import synthesize_flaws

ROOT = Path(__file__).resolve().parents[1]
needs_shipped_model = pytest.mark.skipif(
    not (PRETRAINED_DIR / "config.json").is_file(), reason="the shipped model is not there"
)
HEAVY = ("numpy", "scipy", "sklearn", "pandas", "torch", "skorch", "ot", "tifffile")


def _per_layer(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    """What a 2D segmenter gives: each layer's masks numbered on their own."""
    rng = np.random.default_rng(seed)
    stack = np.zeros_like(gt, dtype=np.uint16)
    for z in range(gt.shape[0]):
        ids = np.unique(gt[z])
        ids = ids[ids != 0]
        new = np.zeros(int(gt.max()) + 1, dtype=np.uint16)
        new[ids] = rng.permutation(len(ids)) + 1
        stack[z] = new[gt[z]]
    return stack


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_options")
    gt = make_tissue((16, 48, 48), cell_size=(10, 12, 12), random_state=3)
    flawed = synthesize_flaws(gt, random_state=0).labels
    save_volume(folder / "gt.tif", gt)
    save_volume(folder / "flawed.tif", flawed)
    save_volume(folder / "slices.tif", _per_layer(gt))
    return {"dir": folder, "gt": folder / "gt.tif", "flawed": folder / "flawed.tif"} | {
        "slices": folder / "slices.tif"
    }


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )


# --------------------------------------------------------------------------- start-up
def test_help_and_refusals_import_nothing_heavy(files, tmp_path):
    existing = tmp_path / "exists.tif"
    existing.write_bytes(b"x")
    proc = _python(
        "import sys\n"
        "from sklearn_overseg.cli import main\n"
        f"codes = [main(['correct', {str(files['flawed'])!r}, '-o', {str(existing)!r}]),\n"
        f"         main(['correct', 'missing.tif', '-o', 'o.tif']),\n"
        f"         main(['train', {str(files['gt'])!r}, '-o', {str(tmp_path / 'no' / 'm')!r}])]\n"
        "try:\n"
        "    main(['correct', '--help'])\n"
        "except SystemExit as exc:\n"
        "    codes.append(exc.code)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(codes, heavy)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[2, 2, 2, 0] []"
    assert proc.stderr.count("overseg: error:") == 3


def test_loading_the_shipped_model_imports_neither_torch_nor_pot():
    proc = _python(
        "import sys\n"
        "from sklearn_overseg.pretrained import load_pretrained\n"
        "load_pretrained(kind='both')\n"
        "print(sorted(m for m in ('torch', 'skorch', 'ot') if m in sys.modules))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"overseg (sklearn_overseg) {__version__}"


def _options(parser):
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        for action in subparser._actions:
            if action.option_strings and action.dest != "help":
                yield name, action, subparser


def test_every_option_has_help_with_its_default():
    parser = build_parser()
    options = list(_options(parser))
    assert len(options) > 40
    for command, action, _ in options:
        said = "(required)" if action.required else "(default: "
        assert action.help and said in action.help, (command, action.option_strings)
    for command, action, subparser in options:
        shown = " ".join(subparser.format_help().split())
        assert " ".join(action.help.split()) in shown, (command, action.option_strings)
    helps = {(c, a.option_strings[-1]): a.help for c, a, _ in options}
    assert helps[("correct", "--interpolation")].endswith("(default: ot)")
    assert helps[("train", "--repeats")].endswith("(default: 2)")
    assert helps[("train", "--z-subsample")].endswith("(default: 1)")
    assert helps[("correct", "--threshold")].endswith("(default: the model's own, per kind)")


def test_help_lists_exit_codes(capsys):
    code, out, _ = run(capsys, "correct", "--help")
    assert code == 0
    for line in ("exit codes:", "  0    success", "  2    a user error", "  130  interrupted"):
        assert line in out


# ------------------------------------------------------------------------- thresholds
@needs_shipped_model
@pytest.mark.parametrize("screen", ["axial", "contact", "both"])
def test_threshold_default_keeps_the_models_own(screen, files, tmp_path):
    argv = ["correct", str(files["flawed"]), "-o", str(tmp_path / "o.tif"), "--screen", screen]
    corrector = commands._configured_model(build_parser().parse_args(argv))
    expected = load_pretrained(kind=screen).threshold
    assert corrector.threshold == expected
    if screen == "contact":
        assert expected > 0.9  # the tuned contact threshold, not the 0.5 of axial models
    if screen == "both":
        assert isinstance(expected, dict) and expected["contact"] > 0.9
    given = commands._configured_model(build_parser().parse_args([*argv, "--threshold", "0.7"]))
    assert given.threshold == 0.7


# ------------------------------------------------------------------------------ refusals
@needs_shipped_model
def test_plot_without_matplotlib_is_a_one_line_error(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    out = tmp_path / "o.tif"
    code, stdout, err = run(
        capsys, "correct", files["flawed"], "-o", out, "--plot", tmp_path / "p.png"
    )
    assert code == 2 and stdout == ""
    assert_one_line_error(err, "--plot", "matplotlib", "pip install")
    assert list(tmp_path.iterdir()) == []


def _intensity_image(shape=(6, 48, 48), seed=0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape), 1.0)
    return (smooth * 4000).astype(np.uint16)


@pytest.mark.parametrize("command", ["correct", "screen", "stitch"])
def test_an_intensity_image_is_refused(command, tmp_path, capsys):
    image = tmp_path / "raw.tif"
    save_volume(image, _intensity_image())
    out = tmp_path / ("o.csv" if command == "screen" else "o.tif")
    code, stdout, err = run(capsys, command, image, "-o", out)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, "raw.tif", "intensity image")
    assert not out.exists()


def test_label_volumes_pass_and_raw_images_fail_the_intensity_test(data_dir):
    import tifffile

    labels = [*data_dir.glob("*/*labels*.tif")]
    raws = [*data_dir.glob("*/*raw.tif")]
    assert labels and raws
    for path in labels:
        commands._check_looks_like_labels(tifffile.imread(path), str(path))
    for path in raws:
        with pytest.raises(commands.UserError, match="intensity image"):
            commands._check_looks_like_labels(tifffile.imread(path), str(path))
    # Per-layer 2D labels and small cells (nuclei) are labels too.
    gt = tifffile.imread(data_dir / "plant_ovule" / "labels_gt.tif")
    commands._check_looks_like_labels(_per_layer(gt), "per-layer")


def test_hdf5_errors_name_the_key_option(files, tmp_path, capsys):
    path = tmp_path / "two.h5"
    gt = load_volume(files["gt"])
    with h5py.File(path, "w") as handle:
        handle["raw"] = gt
        handle["labels"] = gt
    code, _, err = run(capsys, "screen", path, "-o", tmp_path / "c.csv")
    assert code == 2
    assert_one_line_error(err, "--key", "'labels'", "'raw'")
    assert "key=" not in err
    code, _, err = run(capsys, "screen", files["gt"], "-o", tmp_path / "c.csv", "--key", "x")
    assert code == 2
    assert_one_line_error(err, "--key x", "tiff")
    code, _, err = run(capsys, "screen", path, "-o", tmp_path / "c.csv", "--key", "labels", "-q")
    assert code == 0, err


# ----------------------------------------------------------------------- names, progress
@needs_shipped_model
def test_screen_and_correct_name_candidates_alike(files, tmp_path, capsys):
    code, _, err = run(capsys, "screen", files["flawed"], "-o", tmp_path / "s.csv", "-q")
    assert code == 0, err
    code, _, err = run(
        capsys,
        "correct",
        files["flawed"],
        "-o",
        tmp_path / "o.tif",
        "--report",
        tmp_path / "r.csv",
        "-q",
    )
    assert code == 0, err
    screened = pd.read_csv(tmp_path / "s.csv", index_col=0)
    decided = pd.read_csv(tmp_path / "r.csv", index_col=0)
    assert len(decided) > 0
    assert list(decided.index) == list(screened.index)
    assert set(decided["volume"]) == {"flawed"}
    assert decided.index[0].startswith("flawed:")


@needs_shipped_model
def test_progress_names_each_step_on_a_terminal_only(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(commands, "_on_terminal", lambda: True)
    code, _, err = run(capsys, "correct", files["flawed"], "-o", tmp_path / "a.tif")
    assert code == 0
    for step in ("read", "model", "index", "screen", "features", "merge", "write"):
        assert f"correct: {step}" in err, (step, err)
    code, _, err = run(capsys, "screen", files["flawed"], "-o", tmp_path / "s.csv")
    assert code == 0 and "screen: screen" in err
    code, _, err = run(
        capsys,
        "train",
        files["gt"],
        "-o",
        tmp_path / "m",
        "--repeats",
        "1",
        "--split-fraction",
        "0.5",
    )
    assert code == 0, err
    for step in ("read", "training pairs", "features and classifier", "save"):
        assert f"train: {step}" in err, (step, err)
    code, out, err = run(capsys, "correct", files["flawed"], "-o", tmp_path / "b.tif", "-q")
    assert code == 0 and out == "" and err == ""
    monkeypatch.setattr(commands, "_on_terminal", lambda: False)
    code, _, err = run(capsys, "correct", files["flawed"], "-o", tmp_path / "c.tif")
    assert code == 0 and err == ""


# ---------------------------------------------------------------------------------- demo
@needs_shipped_model
def test_demo_quiet_is_silent_and_writes_its_outputs(tmp_path, capsys):
    out, report = tmp_path / "demo.tif", tmp_path / "demo.csv"
    code, stdout, err = run(capsys, "demo", "-q", "-o", out, "--report", report)
    assert code == 0 and stdout == "" and err == ""
    corrected = load_volume(out)
    assert corrected.shape == (32, 128, 128)
    table = pd.read_csv(report, index_col=0)
    assert table["merged"].sum() > 5
    # Existing outputs are refused before the work, as everywhere.
    code, _, err = run(capsys, "demo", "-o", out)
    assert code == 2
    assert_one_line_error(err, "--overwrite")


@needs_shipped_model
def test_demo_prints_next_steps(capsys):
    code, stdout, _ = run(capsys, "demo")
    assert code == 0
    assert "next steps:" in stdout and "overseg correct" in stdout
    assert "overseg stitch" in stdout


# -------------------------------------------------------------------------------- stitch
def test_stitch_command_equals_stitch_slices(files, tmp_path, capsys):
    out = tmp_path / "stitched.tif"
    code, stdout, err = run(capsys, "stitch", files["slices"], "-o", out, "--iou-threshold", 0.3)
    assert code == 0, err
    assert str(out) in stdout and "cells" in stdout
    expected = stitch_slices(load_volume(files["slices"]), iou_threshold=0.3)
    np.testing.assert_array_equal(load_volume(out), expected)
    code, _, err = run(capsys, "stitch", files["slices"], "-o", out)
    assert code == 2
    assert_one_line_error(err, "--overwrite")


def test_stitch_refuses_2d_float_and_3d_input(files, tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.ones((8, 8), dtype=np.uint16))
    np.save(tmp_path / "float.npy", np.ones((3, 8, 8)))
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    for source, fragments in (
        (tmp_path / "flat.npy", ("single 2D image",)),
        (tmp_path / "float.npy", ("float64", "integers")),
        (files["gt"], ("3D label volume", "--relabel-layers")),
    ):
        code, stdout, err = run(capsys, "stitch", source, "-o", out)
        assert code == 2 and stdout == ""
        assert_one_line_error(err, *fragments)
    assert list(out.parent.iterdir()) == []
    code, _, err = run(capsys, "stitch", files["gt"], "-o", out, "--relabel-layers", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(
        load_volume(out), stitch_slices(load_volume(files["gt"]), relabel_layers=True)
    )
    code, _, err = run(capsys, "stitch", files["slices"], "-o", out, "--iou-threshold", "0")
    assert code == 2
    assert_one_line_error(err, "--iou-threshold")


@needs_shipped_model
def test_correct_stitched_slices_stitches_then_corrects(files, tmp_path, capsys):
    out, report = tmp_path / "o.tif", tmp_path / "r.csv"
    code, stdout, err = run(
        capsys, "correct", files["slices"], "-o", out, "--stitched-slices", "--report", report
    )
    assert code == 0, err
    assert "stitch" in stdout
    stitched = stitch_slices(load_volume(files["slices"]))
    expected, decisions = load_pretrained().correct(stitched, volume_id="slices")
    np.testing.assert_array_equal(load_volume(out), expected)
    assert len(decisions) > 0 and decisions["merged"].any()
    assert list(pd.read_csv(report, index_col=0).index) == list(decisions.index)
    # Stitching options without --stitched-slices are a mistake, said so.
    code, _, err = run(
        capsys, "correct", files["slices"], "-o", tmp_path / "x.tif", "--relabel-layers"
    )
    assert code == 2
    assert_one_line_error(err, "--stitched-slices")
    # An already-3D volume: the error offers --relabel-layers.
    code, _, err = run(
        capsys, "correct", files["gt"], "-o", tmp_path / "y.tif", "--stitched-slices"
    )
    assert code == 2
    assert_one_line_error(err, "--relabel-layers")
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


def test_iou_default_is_stitch_slices_default():
    import inspect

    from sklearn_overseg.cli import _parser as _cli_parser

    default = inspect.signature(stitch_slices).parameters["iou_threshold"].default
    assert _cli_parser._DEFAULT_IOU == default

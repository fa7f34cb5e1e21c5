"""The napari plugin: manifest, reader, writer and the review widget (headless)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets", exc_type=ImportError)  # napari without a Qt binding

from sklearn_overseg.io.volumes import load_volume, save_volume  # noqa: E402
from sklearn_overseg.napari._reader import get_reader  # noqa: E402
from sklearn_overseg.napari._writer import write_labels  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "sklearn_overseg" / "napari" / "napari.yaml"


@pytest.fixture
def volume() -> np.ndarray:
    vol = np.zeros((4, 5, 6), dtype=np.uint16)
    vol[1:3, 1:4, 2:5] = 7
    vol[3, 0, 0] = 2
    return vol


def test_manifest_is_valid_and_points_at_our_functions():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "sklearn_overseg"
    ids = {c.id: c.python_name for c in manifest.contributions.commands}
    assert ids["sklearn_overseg.get_reader"] == "sklearn_overseg.napari._reader:get_reader"
    for command in manifest.contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))
    patterns = manifest.contributions.readers[0].filename_patterns
    assert sorted(patterns) == sorted(
        ["*.tif", "*.tiff", "*.h5", "*.hdf5", "*.zarr", "*.npy", "*.npz"]
    )
    assert manifest.contributions.writers[0].layer_types == ["labels"]


@pytest.mark.parametrize("ext", [".tif", ".h5", ".zarr", ".npz"])
def test_reader_returns_labels_with_scale(tmp_path, volume, ext):
    path = save_volume(tmp_path / f"cells{ext}", volume, spacing=(2.0, 0.5, 0.25))
    reader = get_reader(str(path))
    assert reader is not None
    [(data, meta, kind)] = reader(str(path))
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), volume)
    assert meta["scale"] == (2.0, 0.5, 0.25)
    assert meta["name"] == "cells"


def test_reader_declines_what_it_cannot_read(tmp_path, volume):
    assert get_reader(str(tmp_path / "missing.tif")) is None
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    np.save(tmp_path / "image.npy", volume.astype(np.float32))
    reader = get_reader(str(tmp_path / "image.npy"))
    assert reader is not None and reader(str(tmp_path / "image.npy")) is None
    np.save(tmp_path / "cells.npy", volume)
    [(data, meta, _)] = get_reader(str(tmp_path / "cells.npy"))(str(tmp_path / "cells.npy"))
    assert "scale" not in meta  # .npy stores no spacing: napari's default scale applies
    np.testing.assert_array_equal(data, volume)


@pytest.mark.parametrize("ext", [".tif", ".h5", ".zarr", ".npz", ".npy"])
def test_writer_round_trip(tmp_path, volume, ext):
    path = str(tmp_path / f"out{ext}")
    meta = {"scale": (3.0, 1.0, 0.5), "name": "x"}
    if ext == ".npy":
        with pytest.warns(UserWarning, match="cannot store a voxel spacing"):
            assert write_labels(path, volume, meta) == [path]
    else:
        assert write_labels(path, volume, meta) == [path]
    back, spacing = load_volume(path, return_spacing=True)
    np.testing.assert_array_equal(np.asarray(back), volume)
    assert spacing == (None if ext == ".npy" else (3.0, 1.0, 0.5))
    # napari confirms overwriting in its dialog, so the writer replaces the file.
    write_labels(path, volume * 2, {"scale": (1.0, 1.0, 1.0)})
    np.testing.assert_array_equal(np.asarray(load_volume(path)), volume * 2)


def test_writer_skips_a_spacing_it_cannot_store(tmp_path, volume):
    path = str(tmp_path / "flipped.tif")
    write_labels(path, volume, {"scale": (-1.0, 1.0, 1.0)})
    assert load_volume(path, return_spacing=True)[1] is None


def test_viewer_opens_and_saves_through_the_plugin(tmp_path, volume):
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    if "sklearn_overseg" not in pm:
        pm.register(PluginManifest.from_file(MANIFEST))
    path = save_volume(tmp_path / "cells.h5", volume, spacing=(2.0, 1.0, 1.0))
    viewer = napari.components.ViewerModel()
    [layer] = viewer.open(str(path), plugin="sklearn_overseg")
    assert isinstance(layer, napari.layers.Labels)
    np.testing.assert_array_equal(layer.scale, [2.0, 1.0, 1.0])
    out = str(tmp_path / "saved.zarr")
    viewer.layers.save(out, selected=False, plugin="sklearn_overseg")
    back, spacing = load_volume(out, return_spacing=True)
    np.testing.assert_array_equal(np.asarray(back), volume)
    assert spacing == (2.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def flawed_case():
    from sklearn.linear_model import LogisticRegression

    from sklearn_overseg.classification.pipeline import make_default_pipeline
    from sklearn_overseg.correction.corrector import SegmentationCorrector
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.flaws import synthesize_flaws

    gt = make_tissue((24, 64, 64), cell_size=(16, 16, 16), random_state=0)
    flawed = synthesize_flaws(gt, random_state=1).labels
    gt2 = make_tissue((24, 64, 64), cell_size=(16, 16, 16), random_state=5)
    corrector = SegmentationCorrector(
        classifier=make_default_pipeline(classifier=LogisticRegression(max_iter=1000)),
        n_repeats=1,
        random_state=0,
    ).fit([gt2])
    return flawed, corrector


@pytest.fixture(scope="module")
def qapp():
    # napari's make_napari_viewer fixture needs pytest-qt; a bare QApplication is enough
    # for the widget, and a ViewerModel (no OpenGL canvas) for the layers it edits.
    from napari.qt import get_qapp

    return get_qapp()


def test_widget_corrects_and_rejecting_a_merge_restores_the_cell(flawed_case, qapp):
    from sklearn_overseg.napari._widget import CorrectorWidget

    flawed, corrector = flawed_case
    viewer = napari.components.ViewerModel()
    viewer.add_labels(flawed, name="seg", scale=(2.0, 1.0, 1.0))
    widget = CorrectorWidget(viewer, corrector=corrector)
    assert widget.layer_combo.currentText() == "seg"
    out_layer = widget.run()
    assert [layer.name for layer in viewer.layers] == ["seg", "seg corrected"]
    np.testing.assert_array_equal(out_layer.scale, [2.0, 1.0, 1.0])
    expected, decisions = corrector.correct(flawed)
    np.testing.assert_array_equal(out_layer.data, expected)
    np.testing.assert_array_equal(viewer.layers["seg"].data, flawed)  # input untouched

    # Rows are sorted by uncertainty; merged rows are all accepted at first.
    table_p = [float(widget.table.item(r, 5).text()) for r in range(widget.table.rowCount())]
    assert len(table_p) == len(decisions)
    assert np.all(np.diff(np.abs(np.array(table_p) - 0.5)) >= -1e-3)
    merged = list(decisions.index[decisions["merged"]])
    assert sorted(widget.accepted_ids) == sorted(merged)

    rejected = merged[0]
    row = decisions.loc[rejected]
    widget.set_accepted(rejected, False)
    assert rejected not in widget.accepted_ids
    data = np.asarray(out_layer.data)
    was_b = flawed == row.cell_b
    np.testing.assert_array_equal(data[was_b], row.cell_b)  # the cell is back
    assert np.count_nonzero(data != expected) == np.count_nonzero(was_b) + row.filled_voxels

    widget.set_accepted(rejected, True)
    np.testing.assert_array_equal(out_layer.data, expected)
    widget.reject_all_button.click()
    np.testing.assert_array_equal(out_layer.data, flawed)
    widget.accept_all_button.click()
    np.testing.assert_array_equal(out_layer.data, expected)

    not_merged = decisions.index[~decisions["merged"]][0]
    with pytest.raises(ValueError, match="was not merged"):
        widget.set_accepted(not_merged, False)

    widget._on_cell_clicked(widget._rows.index(rejected), 1)
    mid = (row.z_a_last + row.z_b_first) / 2
    assert viewer.dims.point[0] == pytest.approx(2.0 * mid)
    assert out_layer.selected_label == row.merged_into
    widget.close()


def test_widget_reports_a_missing_layer(flawed_case, qapp):
    from sklearn_overseg.napari._widget import CorrectorWidget

    viewer = napari.components.ViewerModel()
    widget = CorrectorWidget(viewer, corrector=flawed_case[1])
    with pytest.raises(ValueError, match="choose a Labels layer"):
        widget.run()
    viewer.add_points(np.zeros((1, 3)), name="pts")
    assert widget.layer_combo.count() == 0  # only Labels layers are offered
    viewer.add_labels(np.ones((2, 3, 3), dtype=np.uint8), name="a")
    viewer.add_labels(np.ones((2, 3, 3), dtype=np.uint8), name="b")
    assert [widget.layer_combo.itemText(i) for i in range(2)] == ["a", "b"]
    widget.layer_combo.setCurrentText("b")
    viewer.layers.remove("a")
    assert widget.layer_combo.currentText() == "b"
    with pytest.raises(ValueError, match=r"must be 3D .* got ndim=2"):
        widget.run(napari.layers.Labels(np.zeros((2, 2), dtype=np.uint8)))


def test_widget_docks_in_a_real_viewer_through_the_manifest(qapp):
    from npe2 import PluginManager, PluginManifest

    from sklearn_overseg.napari._widget import CorrectorWidget

    pm = PluginManager.instance()
    if "sklearn_overseg" not in pm:
        pm.register(PluginManifest.from_file(MANIFEST))
    viewer = napari.Viewer(show=False)
    try:
        _, widget = viewer.window.add_plugin_dock_widget(
            "sklearn_overseg", "Oversegmentation corrector"
        )
        assert isinstance(widget, CorrectorWidget)
        assert [widget.model_combo.itemText(i) for i in range(3)] == ["axial", "contact", "both"]
    finally:
        viewer.close()

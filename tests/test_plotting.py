"""Tests of the figures: rendered to PNG with Agg, checked for content, layout and errors."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.image import imread  # noqa: E402

from sklearn_overseg.evaluation.plotting import (  # noqa: E402
    plot_decision_gallery,
    plot_feature_distributions,
    plot_orthogonal_views,
    plot_precision_recall,
)
from sklearn_overseg.screening.candidates import PairGeometry  # noqa: E402

# ---------------------------------------------------------------- fixtures


def _split_cell_volumes() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Cell 1 split by a blank layer z=3 into 1 (z 0-2) and 2 (z 4-8); cell 3 intact.

    The merged cell spans z 0..8, y 4..12, x 5..15: its centroid is (4, 8, 10).
    """
    before = np.zeros((9, 20, 30), dtype=np.uint16)
    before[0:3, 4:13, 5:16] = 1
    before[4:9, 4:13, 5:16] = 2
    before[:, 14:19, 18:28] = 3
    after = before.copy()
    after[0:9, 4:13, 5:16] = 1
    decisions = pd.DataFrame(
        {
            "cell_a": [1, 3],
            "cell_b": [2, 3],
            "merged": [True, False],
            "merged_into": [1, 0],
            "z_a_last": [2, 8],
            "z_b_first": [4, 8],
        }
    )
    before.setflags(write=False)
    after.setflags(write=False)
    return before, after, decisions


def _square_geometry(gap: int, offset: int = 0, n: int = 2) -> PairGeometry:
    """A 6x6 square in a 16x16 frame; B's square shifted by ``offset`` columns."""
    a = np.zeros((n, 16, 16), dtype=bool)
    b = np.zeros((n, 16, 16), dtype=bool)
    a[:, 5:11, 3:9] = True
    b[:, 5:11, 3 + offset : 9 + offset] = True
    return PairGeometry(a=a, b=b, gap=gap)


def _candidate_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    index = pd.Index([f"v:{i}-{i + 10}:axial" for i in range(4)], name="candidate")
    table = pd.DataFrame(
        {
            "cell_a": [0, 1, 2, 3],
            "cell_b": [10, 11, 12, 13],
            "gap": [1, 1, 0, 2],
            "geometry": pd.Series(
                [
                    _square_geometry(1),
                    _square_geometry(1, offset=4),
                    _square_geometry(0),
                    _square_geometry(2, offset=2),
                ],
                index=index,
                dtype=object,
            ),
        },
        index=index,
    )
    decisions = pd.DataFrame(
        {"probability": [0.9, 0.45, 0.1, 0.7], "merged": [True, False, False, True]},
        index=index,
    )
    return table, decisions


def _assert_nontrivial_png(path, min_side: int = 200, min_colors: int = 20) -> np.ndarray:
    assert path.is_file()
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= min_side
    rgb = image[..., :3]
    assert rgb.std() > 0.05
    n_colors = len(np.unique(rgb.reshape(-1, 3), axis=0))
    assert n_colors > min_colors
    # Only the target file was written: the temporary file was renamed, not left over.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return image


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


# ------------------------------------------------------ orthogonal views


def test_orthogonal_views_png_aspect_and_default_cut(tmp_path):
    before, after, decisions = _split_cell_volumes()
    path = tmp_path / "views.png"
    fig = plot_orthogonal_views(
        before, after, decisions=decisions, spacing=(3.0, 0.5, 1.0), path=path
    )
    image = _assert_nontrivial_png(path)
    assert image.shape[1] == 1200  # 12 in at 100 dpi
    assert len(fig.axes) == 6
    # Cut through the centroid (4, 8, 10) of the merged cell in `after`.
    assert _titles(fig) == [
        "before: XY at z=4",
        "before: XZ at y=8",
        "before: YZ at x=10",
        "after: XY at z=4",
        "after: XZ at y=8",
        "after: YZ at x=10",
    ]
    # XY: dy/dx, XZ: dz/dx, YZ: dz/dy.
    aspects = [float(ax.get_aspect()) for ax in fig.axes]
    assert aspects == pytest.approx([0.5, 3.0, 6.0, 0.5, 3.0, 6.0])
    # Inputs are read only and untouched.
    assert before[3, 4:13, 5:16].max() == 0 and after[3, 8, 10] == 1


def test_orthogonal_views_default_cut_without_after_and_without_decisions():
    before, _, decisions = _split_cell_volumes()
    # Union of pieces 1 and 2 in `before`: mean z over layers 0-2, 4-8 = 33/8 -> 4.
    fig = plot_orthogonal_views(before, decisions=decisions)
    assert len(fig.axes) == 3
    assert _titles(fig) == ["before: XY at z=4", "before: XZ at y=8", "before: YZ at x=10"]
    # No merge to look at: the centre of the (9, 20, 30) volume.
    fig = plot_orthogonal_views(before)
    assert _titles(fig) == ["before: XY at z=4", "before: XZ at y=10", "before: YZ at x=15"]
    fig = plot_orthogonal_views(before, z=0, y=19, x=29)
    assert _titles(fig) == ["before: XY at z=0", "before: XZ at y=19", "before: YZ at x=29"]


def _outline_boxes(ax) -> list[tuple[float, float, float, float]]:
    """(x_min, x_max, y_min, y_max) of every contour drawn in ``ax``."""
    boxes = []
    for contour in ax.collections:
        for seg in contour.allsegs[0]:
            (x0, y0), (x1, y1) = seg.min(axis=0), seg.max(axis=0)
            boxes.append((float(x0), float(x1), float(y0), float(y1)))
    return sorted(boxes)


def test_orthogonal_views_colours_and_outlines():
    before, after, decisions = _split_cell_volumes()
    fig = plot_orthogonal_views(before, after, decisions=decisions, z=1, y=8, x=10)
    xy_before = fig.axes[0].get_images()[0].get_array()
    xy_after = fig.axes[3].get_images()[0].get_array()
    assert xy_before.shape == (20, 30, 3)
    assert np.all(xy_before[0, 0] == 0)  # background is black
    # Cell 1: the same colour before and after, neither black nor white; cell 3 differs.
    colour = xy_before[8, 10]
    assert np.allclose(xy_after[8, 10], colour)
    assert 0 < colour.sum() < 3
    assert not np.allclose(xy_before[16, 22], colour)
    # The merged cell (not cell 3) is outlined along its pixel edges: x 4.5-15.5, y 3.5-12.5.
    assert _outline_boxes(fig.axes[0]) == [(4.5, 15.5, 3.5, 12.5)]
    # XZ at y=8: pieces 1 (z 0-2) and 2 (z 4-8) before; one merged cell (z 0-8) after.
    assert _outline_boxes(fig.axes[1]) == [(4.5, 15.5, -0.5, 2.5), (4.5, 15.5, 3.5, 8.5)]
    assert _outline_boxes(fig.axes[4]) == [(4.5, 15.5, -0.5, 8.5)]
    # Outlines do not move the view: the image still fills the axes exactly.
    assert fig.axes[1].get_xlim() == (-0.5, 29.5) and fig.axes[1].get_ylim() == (8.5, -0.5)
    # Explicit highlight: outline cell 3 only; an empty list removes every outline.
    fig = plot_orthogonal_views(before, decisions=decisions, z=1, y=8, x=10, highlight=[3])
    assert _outline_boxes(fig.axes[0]) == [(17.5, 27.5, 13.5, 18.5)]
    fig = plot_orthogonal_views(before, decisions=decisions, z=1, y=8, x=10, highlight=[])
    assert all(not ax.collections for ax in fig.axes)
    # The seed changes the palette, not the layout.
    fig = plot_orthogonal_views(before, z=1, y=8, x=10, cmap_seed=1)
    assert not np.allclose(fig.axes[0].get_images()[0].get_array()[8, 10], colour)


def test_orthogonal_views_bad_inputs():
    before, after, decisions = _split_cell_volumes()
    with pytest.raises(ValueError, match=r"same shape.*\(9, 20, 30\).*\(9, 20, 29\)"):
        plot_orthogonal_views(before, after[:, :, :29])
    with pytest.raises(ValueError, match=r"z=9 is out of range.*\[0, 8\]"):
        plot_orthogonal_views(before, z=9)
    with pytest.raises(ValueError, match=r"x=-1 is out of range"):
        plot_orthogonal_views(before, x=-1)
    with pytest.raises(TypeError, match="y must be an integer"):
        plot_orthogonal_views(before, y=2.5)
    with pytest.raises(TypeError, match="dtype float"):
        plot_orthogonal_views(before.astype(float))
    with pytest.raises(ValueError, match="3D"):
        plot_orthogonal_views(before[0])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['merged_into'\]"):
        plot_orthogonal_views(before, decisions=decisions.drop(columns="merged_into"))
    with pytest.raises(TypeError, match="highlight must be an iterable"):
        plot_orthogonal_views(before, highlight=3)
    with pytest.raises(ValueError, match="spacing must have 3 values"):
        plot_orthogonal_views(before, spacing=(1, 1))
    # An all-background volume is allowed (nothing to see, but not an error).
    fig = plot_orthogonal_views(np.zeros((2, 3, 4), dtype=np.uint8))
    assert len(fig.axes) == 3


def test_save_refuses_overwrite_and_bad_targets(tmp_path):
    before, _, _ = _split_cell_volumes()
    path = tmp_path / "views.png"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        plot_orthogonal_views(before, path=path)
    assert path.read_bytes() == b"keep me"
    plot_orthogonal_views(before, path=str(path), overwrite=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["views.png"]
    with pytest.raises(ValueError, match=r"'\.xyz'"):
        plot_orthogonal_views(before, path=tmp_path / "views.xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_orthogonal_views(before, path=tmp_path / "missing" / "views.png")
    with pytest.raises(TypeError, match="path must be"):
        plot_orthogonal_views(before, path=3)


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install sklearn_overseg\[plot\]"):
        plot_precision_recall([0, 1], [0.2, 0.8])


# ------------------------------------------------------ decision gallery


def test_decision_gallery_png_and_uncertain_order(tmp_path):
    table, decisions = _candidate_table()
    path = tmp_path / "gallery.png"
    fig = plot_decision_gallery(table, decisions, top_k=3, path=path)
    _assert_nontrivial_png(path)
    titles = [sub.texts[0].get_text() for sub in fig.subfigs]
    # |p - 0.5|: 0.45 -> 0.05, 0.7 -> 0.2, 0.9 -> 0.4, 0.1 -> 0.4 (stable: row 0 first).
    assert [t.split()[0] for t in titles] == ["v:1-11:axial", "v:3-13:axial", "v:0-10:axial"]
    assert "p=0.450" in titles[0] and "kept apart" in titles[0]
    assert "p=0.700" in titles[1] and "merged" in titles[1]
    assert "cells 1 → 11" in titles[0]
    assert len(fig.axes) == 3 * 4


def test_decision_gallery_most_probable_and_panels():
    table, decisions = _candidate_table()
    fig = plot_decision_gallery(table, decisions, top_k=2, uncertain=False)
    titles = [sub.texts[0].get_text() for sub in fig.subfigs]
    assert [t.split()[0] for t in titles] == ["v:0-10:axial", "v:3-13:axial"]
    a_ax, gap_ax, _, overlay_ax = fig.subfigs[0].axes
    assert a_ax.get_title() == "A last layer (36 px)"
    assert gap_ax.get_title() == "gap layer 1/1 (interpolated)"
    # Identical end masks: the interpolated layer is the same 6x6 square, in green.
    gap_img = gap_ax.get_images()[0].get_array()
    green = np.all(np.isclose(gap_img, [0.35, 0.85, 0.35]), axis=-1)
    assert green.sum() == 36 and green[5:11, 3:9].all()
    # Gap of 2: the middle layer shown is the first of two (index gap // 2 = 1 -> "2/2").
    assert fig.subfigs[1].axes[1].get_title() == "gap layer 2/2 (interpolated)"
    # Overlay: A and B coincide, so every mask pixel is the mixed colour.
    overlay = overlay_ax.get_images()[0].get_array()
    mixed = (np.array([0.95, 0.45, 0.2]) + np.array([0.25, 0.55, 0.95])) / 2
    assert np.allclose(overlay[7, 5], mixed)


def test_decision_gallery_without_decisions_and_without_interpolation():
    table, _ = _candidate_table()
    fig = plot_decision_gallery(table, top_k=3, interpolated=False)
    titles = [sub.texts[0].get_text() for sub in fig.subfigs]
    assert [t.split()[0] for t in titles] == ["v:0-10:axial", "v:1-11:axial", "v:2-12:axial"]
    assert not any(" p=" in t for t in titles)
    gap_titles = [sub.axes[1].get_title() for sub in fig.subfigs]
    assert gap_titles == ["gap of 1 layer(s)", "gap of 1 layer(s)", "no gap (adjacent)"]
    # An empty table still gives a figure.
    fig = plot_decision_gallery(table.iloc[:0])
    assert fig.texts[0].get_text() == "no candidate to show"


def test_decision_gallery_bad_inputs():
    table, decisions = _candidate_table()
    with pytest.raises(ValueError, match="no 'geometry' column"):
        plot_decision_gallery(table.drop(columns="geometry"))
    with pytest.raises(TypeError, match="candidate table"):
        plot_decision_gallery(table.to_numpy())
    bad = table.copy()
    bad["geometry"] = pd.Series(["x", "y", "z", "w"], index=table.index, dtype=object)
    with pytest.raises(TypeError, match=r"row 'v:0-10:axial' holds str"):
        plot_decision_gallery(bad)
    with pytest.raises(ValueError, match=r"missing from it, e\.g\. 'v:3-13:axial'"):
        plot_decision_gallery(table, decisions.iloc[:3])
    with pytest.raises(ValueError, match=r"\['probability'\]"):
        plot_decision_gallery(table, decisions.drop(columns="probability"))
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        plot_decision_gallery(table, top_k=0)
    with pytest.raises(TypeError, match="top_k must be an integer"):
        plot_decision_gallery(table, top_k=2.0)


# ------------------------------------------------- feature distributions


def test_feature_distributions_png_and_grid(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40, dtype=int), np.zeros(60, dtype=int)]
    X = pd.DataFrame(
        {
            "w2_mean": np.r_[rng.normal(0, 1, 40), rng.normal(3, 1, 60)],
            "iou": rng.random(100),
            "gap": rng.integers(0, 3, 100),
            "const": np.full(100, 2.0),
            "with_nan": np.r_[np.nan, rng.normal(size=99)],
            "name": ["c"] * 100,
        }
    )
    path = tmp_path / "features.png"
    fig = plot_feature_distributions(X, y, path=path)
    _assert_nontrivial_png(path)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    # The text column is skipped; 5 panels on a 4-wide grid, 3 hidden filler axes.
    assert [ax.get_title() for ax in visible] == ["w2_mean", "iou", "gap", "const", "with_nan"]
    assert len(fig.axes) == 8
    legend = [t.get_text() for t in visible[4].get_legend().get_texts()]
    assert legend == ["distinct (0), n=60", "one cell (1), n=39"]  # the NaN (y=1) is left out
    # Density histograms over 30 shared bins: each class integrates to 1.
    bars = visible[0].patches
    assert len(bars) == 60
    widths = np.array([b.get_width() for b in bars])
    heights = np.array([b.get_height() for b in bars])
    assert np.sum(widths[:30] * heights[:30]) == pytest.approx(1.0)
    assert np.sum(widths[30:] * heights[30:]) == pytest.approx(1.0)
    fig = plot_feature_distributions(X, y.astype(bool), features=["iou"])
    assert [ax.get_title() for ax in fig.axes] == ["iou"]


def test_feature_distributions_bad_inputs():
    X = pd.DataFrame({"a": [0.1, 0.2, 0.3], "s": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"only 0 and 1, got \[2\]"):
        plot_feature_distributions(X, [0, 1, 2])
    with pytest.raises(ValueError, match="X has 3 rows but y has 2"):
        plot_feature_distributions(X, [0, 1])
    with pytest.raises(ValueError, match=r"\['b'\] are not columns"):
        plot_feature_distributions(X, [0, 1, 1], features=["a", "b"])
    with pytest.raises(TypeError, match="'s' has dtype"):
        plot_feature_distributions(X, [0, 1, 1], features=["s"])
    with pytest.raises(ValueError, match="no numeric column"):
        plot_feature_distributions(X[["s"]], [0, 1, 1])
    with pytest.raises(TypeError, match="DataFrame or a 2D array"):
        plot_feature_distributions([1, 2, 3], [0, 1, 1])
    fig = plot_feature_distributions(np.arange(6.0).reshape(3, 2), [0, 1, 1])
    assert [ax.get_title() for ax in fig.axes] == ["x0", "x1"]


# ------------------------------------------------------ precision-recall


def test_precision_recall_png_and_values(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    proba = np.clip(0.35 * y + 0.65 * rng.random(300), 0, 1)
    path = tmp_path / "pr.png"
    fig = plot_precision_recall(y, proba, path=path)
    _assert_nontrivial_png(path)
    assert len(fig.axes) == 1

    # Hand-computed: ranking 0.8(1), 0.4(0), 0.35(1), 0.1(0) -> AP = 0.5*1 + 0.5*2/3.
    y_true = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    fig = plot_precision_recall(y_true, scores)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["AP = 0.833", "p ≥ 0.5: P=1.00, R=0.50", "positive rate"]
    marker = ax.get_lines()[1]
    assert marker.get_xdata().tolist() == [0.5] and marker.get_ydata().tolist() == [1.0]
    assert ax.get_lines()[2].get_ydata()[0] == pytest.approx(0.5)


def test_precision_recall_into_given_axes_and_no_positive_prediction():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    out = plot_precision_recall([0, 1, 1], [0.1, 0.2, 0.3], ax=ax)
    assert out is fig
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["AP = 1.000", "p ≥ 0.5: no positive prediction", "positive rate"]


def test_precision_recall_bad_inputs():
    with pytest.raises(ValueError, match="no positive"):
        plot_precision_recall([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"in \[0, 1\], got range \[0.2, 1.5\]"):
        plot_precision_recall([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match="finite"):
        plot_precision_recall([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match="shape \\(3,\\) for 2 labels"):
        plot_precision_recall([0, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="only 0 and 1"):
        plot_precision_recall([0, 2], [0.2, 0.3])
    with pytest.raises(TypeError, match="probability must be numeric"):
        plot_precision_recall([0, 1], ["a", "b"])

"""Figures for inspecting volumes, candidate pairs, features and classifier quality.

matplotlib is an optional dependency (``pip install sklearn_overseg[plot]``); it is
imported inside each function so that the rest of the package works without it.

Every function builds a :class:`matplotlib.figure.Figure` directly instead of going
through ``pyplot``: the figure is not registered with a GUI backend, so nothing pops up,
nothing leaks when many figures are made in a loop, and it renders the same under the
Agg backend of headless servers and CI. Each returns the figure; ``path=`` also writes
it to disk atomically (temporary file in the same folder, then :func:`os.replace`), so
that an interrupted run never leaves a truncated image, and refuses to overwrite an
existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import check_label_volume, check_spacing

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_decision_gallery",
    "plot_feature_distributions",
    "plot_orthogonal_views",
    "plot_precision_recall",
]

_INSTALL_HINT = (
    "matplotlib is required for sklearn_overseg.evaluation.plotting; install it with "
    "`pip install sklearn_overseg[plot]` (or `pip install matplotlib`)."
)
_DECISION_NEEDED = ("cell_a", "cell_b", "merged", "merged_into")
# Colours of the gallery masks: A, interpolated gap, B (RGB in [0, 1]).
_COLOR_A = np.array([0.95, 0.45, 0.2])
_COLOR_GAP = np.array([0.35, 0.85, 0.35])
_COLOR_B = np.array([0.25, 0.55, 0.95])
_PANEL_BG = np.array([0.08, 0.08, 0.1])


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None


def _new_figure(figsize: tuple[float, float]) -> Figure:
    _require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _check_path(path: Any, overwrite: bool) -> tuple[Path, str] | None:
    """Validate ``path`` before any drawing, so a refusal costs nothing."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot save a figure as {path.suffix!r} ({path}); use one of "
            f"{sorted('.' + k for k in supported)}, e.g. '.png'."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist; cannot save {path.name}.")
    return path, fmt


def _save(fig: Figure, target: tuple[Path, str] | None, overwrite: bool) -> None:
    if target is None:
        return
    path, fmt = target
    # The check is repeated because drawing may take a while; os.replace itself
    # would silently clobber a file created in the meantime.
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    from ..io.volumes import atomic_output

    # A sibling created with the user's umask, unlike tempfile's private 0o600 files.
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=100)


def _check_index(value: Any, name: str, size: int, axis: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer index or None, got {value!r}.")
    value = int(value)
    if not 0 <= value < size:
        raise ValueError(
            f"{name}={value} is out of range: the volume has {size} {axis}, "
            f"so {name} must be in [0, {size - 1}]."
        )
    return value


def _label_colors(ids: np.ndarray, seed: int) -> np.ndarray:
    """A vivid RGB colour per label id, a pure function of (id, seed); 0 is black.

    Hashing the id (rather than numbering the labels present) keeps a cell's colour the
    same in every panel and in before/after, whatever other labels are visible.
    """
    from matplotlib.colors import hsv_to_rgb

    h = ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        # splitmix64 finaliser: neighbouring ids get unrelated colours.
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    hue = (h & np.uint64(0xFFFF)).astype(float) / 0x10000
    sat = 0.55 + 0.45 * ((h >> np.uint64(16)) & np.uint64(0xFF)).astype(float) / 255
    val = 0.65 + 0.35 * ((h >> np.uint64(24)) & np.uint64(0xFF)).astype(float) / 255
    rgb = hsv_to_rgb(np.stack([hue, sat, val], axis=-1))
    rgb[ids == 0] = 0.0
    return rgb


def _render_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    ids, inverse = np.unique(labels, return_inverse=True)
    return _label_colors(ids, seed)[inverse.reshape(labels.shape)]


def _draw_outlines(ax: Axes, plane: np.ndarray, ids: np.ndarray) -> None:
    """Outline each highlighted label of ``plane`` with a white contour.

    Vector contours stay one line thick whatever the pixel aspect, where a pixel-wide
    painted border would swallow a cell only a few (stretched) z layers tall.
    """
    present = np.intersect1d(np.unique(plane), ids)
    present = present[present != 0]
    if present.size == 0:
        return
    # Beyond a few hundred ids one contour of their union is legible and much cheaper.
    groups = [plane == i for i in present] if present.size <= 200 else [np.isin(plane, present)]
    h, w = plane.shape
    # Padding closes the contour of a cell cut by the image border.
    rows, cols = np.arange(-1, h + 1), np.arange(-1, w + 1)
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    for mask in groups:
        ax.contour(
            cols, rows, np.pad(mask, 1).astype(float), levels=[0.5], colors="white", linewidths=1.2
        )
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def _check_decisions(decisions: Any, needed: Sequence[str]) -> pd.DataFrame:
    if not isinstance(decisions, pd.DataFrame):
        raise TypeError(
            f"decisions must be a pandas DataFrame (the corrector's decision table), "
            f"got {type(decisions).__name__}."
        )
    missing = [c for c in needed if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions lacks the column(s) {missing}; it has {list(decisions)}.")
    return decisions


def _merged_groups(decisions: pd.DataFrame) -> dict[int, set[int]]:
    """Merged cell id (``merged_into``) -> every original id that went into it."""
    merged = decisions[decisions["merged"].astype(bool)]
    groups: dict[int, set[int]] = {}
    for into, a, b in zip(merged["merged_into"], merged["cell_a"], merged["cell_b"], strict=True):
        groups.setdefault(int(into), {int(into)}).update((int(a), int(b)))
    return groups


def _largest_group_centroid(
    groups: dict[int, set[int]], before: np.ndarray, after: np.ndarray | None
) -> tuple[int, int, int] | None:
    """Voxel nearest to the centroid of the largest merged cell, or None."""
    best, best_size = None, 0
    for into, members in groups.items():
        # In `after` the merged cell (gap filling included) carries the id `into`.
        mask = after == into if after is not None else np.isin(before, list(members))
        size = int(np.count_nonzero(mask))
        if size > best_size:
            best, best_size = mask, size
    if best is None:
        return None
    centre = np.argwhere(best).mean(axis=0)
    return tuple(int(c) for c in np.rint(centre))  # type: ignore[return-value]


def plot_orthogonal_views(
    before: Any,
    after: Any = None,
    *,
    decisions: pd.DataFrame | None = None,
    z: int | None = None,
    y: int | None = None,
    x: int | None = None,
    spacing: Sequence[Real] | Real | None = None,
    highlight: Iterable[int] | None = None,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
    cmap_seed: int = 0,
) -> Figure:
    """Orthogonal XY, XZ and YZ views of a label volume, before and after correction.

    Parameters
    ----------
    before : array-like of int, shape (Z, Y, X)
        Label volume (0 = background), e.g. the input of the corrector. Never modified.
    after : array-like of int, shape (Z, Y, X) or None, default=None
        Corrected volume, drawn as a second row. Same shape as ``before``.
    decisions : DataFrame or None, default=None
        The corrector's decision table (columns ``cell_a``, ``cell_b``, ``merged``,
        ``merged_into``). Merged cells are outlined, and the default cut goes through
        the largest of them.
    z, y, x : int or None, default=None
        Layer of the XY view, row of the XZ view and column of the YZ view. None: the
        voxel nearest to the centroid of the largest merged cell (measured in ``after``
        when given, else as the union of its pieces in ``before``) when ``decisions``
        has a merge, else the centre of the volume.
    spacing : float, sequence of 3 floats or None, default=None
        Physical voxel size (z, y, x). Panels keep physical proportions: the XZ view
        has aspect ``spacing_z / spacing_x``, the YZ view ``spacing_z / spacing_y`` and
        the XY view ``spacing_y / spacing_x``. None means isotropic.
    highlight : iterable of int or None, default=None
        Label ids to outline with a white contour. None: the cells merged according to
        ``decisions`` (the pieces in ``before``, the merged ids in ``after``); an empty
        list turns outlines off.
    path : str, os.PathLike or None, default=None
        Where to save the figure (format from the suffix, PNG by default).
    overwrite : bool, default=False
        Replace ``path`` if it exists; otherwise a :class:`FileExistsError` is raised.
    cmap_seed : int, default=0
        Seed of the categorical colours; a label has the same colour in every panel.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Grid of 1 × 3 panels (2 × 3 with ``after``): XY, XZ, YZ.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If a volume is not an integer array, or ``z``/``y``/``x`` is not an integer.
    ValueError
        If a volume is not 3D or has negative labels, the shapes differ, or ``z``,
        ``y`` or ``x`` is out of range.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    _require_matplotlib()
    before = check_label_volume(before, name="before", allow_empty=True)
    if after is not None:
        after = check_label_volume(after, name="after", allow_empty=True)
        if after.shape != before.shape:
            raise ValueError(
                f"before and after must have the same shape, got {before.shape} and {after.shape}."
            )
    sz, sy, sx = check_spacing(spacing, ndim=3)
    if isinstance(cmap_seed, bool) or not isinstance(cmap_seed, Integral):
        raise TypeError(f"cmap_seed must be an integer, got {cmap_seed!r}.")
    shape = before.shape
    z = _check_index(z, "z", shape[0], "layers (Z)")
    y = _check_index(y, "y", shape[1], "rows (Y)")
    x = _check_index(x, "x", shape[2], "columns (X)")
    groups: dict[int, set[int]] = {}
    if decisions is not None:
        groups = _merged_groups(_check_decisions(decisions, _DECISION_NEEDED))
    target = _check_path(path, overwrite)

    centre = None
    if None in (z, y, x) and groups:
        centre = _largest_group_centroid(groups, before, after)
    if centre is None:
        centre = tuple(n // 2 for n in shape)
    z = centre[0] if z is None else z
    y = centre[1] if y is None else y
    x = centre[2] if x is None else x

    if highlight is not None:
        try:
            ids = np.unique(np.fromiter((int(i) for i in highlight), np.int64))
        except (TypeError, ValueError):
            raise TypeError(
                f"highlight must be an iterable of integer label ids, got {highlight!r}."
            ) from None
        hl_before = hl_after = ids
    else:
        hl_before = np.array(sorted(set().union(*groups.values())), dtype=np.int64)
        hl_after = np.array(sorted(groups), dtype=np.int64)

    rows = [("before", before, hl_before)]
    if after is not None:
        rows.append(("after", after, hl_after))
    # Figure width follows the physical extents so that panels are not squeezed.
    ext_x, ext_y, ext_z = shape[2] * sx, shape[1] * sy, shape[0] * sz
    width_ratios = [ext_x, ext_x, ext_y]
    row_h = max(ext_y, ext_z) / sum(width_ratios) * 12
    fig = _new_figure((12, min(max(2.5, row_h + 0.8), 8) * len(rows)))
    axes = fig.subplots(len(rows), 3, squeeze=False, width_ratios=width_ratios)
    for r, (name, vol, hl) in enumerate(rows):
        panels = [
            (f"XY at z={z}", vol[z], sy / sx, (x, y), "x", "y"),
            (f"XZ at y={y}", vol[:, y, :], sz / sx, (x, z), "x", "z"),
            (f"YZ at x={x}", vol[:, :, x], sz / sy, (y, z), "y", "z"),
        ]
        for c, (title, plane, aspect, (u, v), xl, yl) in enumerate(panels):
            ax = axes[r, c]
            plane = np.asarray(plane)
            ax.imshow(_render_labels(plane, int(cmap_seed)), aspect=aspect, interpolation="nearest")
            _draw_outlines(ax, plane, hl)
            # Cross-hairs show where the other two views cut this one.
            ax.axvline(u, color="0.6", lw=0.6, ls=":")
            ax.axhline(v, color="0.6", lw=0.6, ls=":")
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel(xl, fontsize=8)
            ax.set_ylabel(yl, fontsize=8)
            ax.tick_params(labelsize=7)
    _save(fig, target, overwrite)
    return fig


def _check_candidate_table(table: Any) -> pd.DataFrame:
    from ..screening.candidates import PairGeometry

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a candidate table (DataFrame), got {type(table).__name__}.")
    if "geometry" not in table.columns:
        raise ValueError(
            "table has no 'geometry' column: pass the candidate table (from the screener), "
            f"not the decision table; it has columns {list(table.columns)}."
        )
    for idx, geom in table["geometry"].items():
        if not isinstance(geom, PairGeometry):
            raise TypeError(
                f"table['geometry'] must hold PairGeometry objects; row {idx!r} holds "
                f"{type(geom).__name__}."
            )
    return table


def _mask_rgb(mask: np.ndarray, color: np.ndarray, under: np.ndarray | None = None) -> np.ndarray:
    rgb = np.broadcast_to(_PANEL_BG, (*mask.shape, 3)).copy()
    if under is not None:
        # Faint outline of the neighbouring masks, so shifts between layers are visible.
        rgb[under] = 0.3
    rgb[mask] = color
    return rgb


def _gap_panel(geom: Any, interpolated: bool) -> tuple[np.ndarray | None, str]:
    a_last, b_first, gap = geom.a[-1], geom.b[0], int(geom.gap)
    if gap < 1:
        return None, "no gap (adjacent)"
    if not interpolated:
        return None, f"gap of {gap} layer(s)"
    from ..correction.interpolation import interpolate_masks

    try:
        stack = interpolate_masks(
            a_last, b_first, n_layers=gap, spacing=geom.spacing, random_state=0
        )
    except ValueError as exc:  # an empty end mask cannot be interpolated
        return None, f"gap of {gap}: not interpolated ({str(exc).split(':')[0]})"
    k = gap // 2
    return stack[k], f"gap layer {k + 1}/{gap} (interpolated)"


def plot_decision_gallery(
    table: pd.DataFrame,
    decisions: pd.DataFrame | None = None,
    *,
    top_k: int = 12,
    uncertain: bool = True,
    interpolated: bool = True,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Figure:
    """Gallery of candidate pairs: A's last mask, the gap and B's first mask, one row each.

    Parameters
    ----------
    table : DataFrame
        Candidate table with a ``geometry`` column of
        :class:`~sklearn_overseg.screening.candidates.PairGeometry` (``a[-1]`` faces B, ``b[0]``
        faces A, ``gap`` missing layers).
    decisions : DataFrame or None, default=None
        Indexed like ``table`` (the corrector's decision table is), with columns
        ``probability`` and ``merged``. None: rows are shown in table order without
        probabilities.
    top_k : int, default=12
        Number of candidates shown.
    uncertain : bool, default=True
        With ``decisions``, show the ``top_k`` candidates whose probability is closest
        to 0.5 (the ones worth a human look); False shows the most probable ones.
    interpolated : bool, default=True
        Draw the middle missing layer interpolated between the two end masks with
        :func:`~sklearn_overseg.correction.interpolation.interpolate_masks` (optimal transport)
        when the gap is at least one layer.
    path : str, os.PathLike or None, default=None
        Where to save the figure (format from the suffix, PNG by default).
    overwrite : bool, default=False
        Replace ``path`` if it exists; otherwise a :class:`FileExistsError` is raised.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One row per candidate with four panels: A's last mask, the gap, B's first mask,
        and an overlay of the three (A orange, gap green, B blue). The row title holds
        the candidate id, the pair, the probability and the decision.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``table`` or ``decisions`` is not a DataFrame, a geometry is not a
        ``PairGeometry``, or ``top_k`` is not an integer.
    ValueError
        If ``table`` has no ``geometry`` column, ``decisions`` lacks a needed column
        or a row of ``table``, or ``top_k < 1``.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    _require_matplotlib()
    table = _check_candidate_table(table)
    if isinstance(top_k, bool) or not isinstance(top_k, Integral):
        raise TypeError(f"top_k must be an integer, got {top_k!r}.")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    proba = merged = None
    if decisions is not None:
        decisions = _check_decisions(decisions, ("probability", "merged"))
        missing = table.index.difference(decisions.index)
        if len(missing):
            raise ValueError(
                f"decisions must be indexed like table; {len(missing)} row(s) of table are "
                f"missing from it, e.g. {missing[0]!r}."
            )
        aligned = decisions.loc[table.index]
        proba = pd.to_numeric(aligned["probability"], errors="coerce").to_numpy(float)
        merged = aligned["merged"].to_numpy()
    target = _check_path(path, overwrite)

    if proba is None:
        order = np.arange(len(table))
    else:
        key = np.abs(proba - 0.5) if uncertain else -proba
        key = np.where(np.isnan(key), np.inf, key)  # unknown probabilities go last
        order = np.argsort(key, kind="stable")
    order = order[:top_k]

    if len(order) == 0:
        fig = _new_figure((6, 1.5))
        fig.text(0.5, 0.5, "no candidate to show", ha="center", va="center")
        _save(fig, target, overwrite)
        return fig

    fig = _new_figure((10, 2.7 * len(order)))
    subfigs = fig.subfigures(len(order), 1, squeeze=False).ravel()
    for sub, i in zip(subfigs, order, strict=True):
        row = table.iloc[i]
        geom = row["geometry"]
        a_last, b_first = geom.a[-1], geom.b[0]
        gap_mask, gap_title = _gap_panel(geom, interpolated)
        aspect = float(geom.spacing[0]) / float(geom.spacing[1])
        pair = ""
        if "cell_a" in table.columns and "cell_b" in table.columns:
            pair = f"  cells {row['cell_a']} → {row['cell_b']}"
        title = f"{table.index[i]}{pair}  gap={geom.gap}"
        if proba is not None:
            verdict = "merged" if bool(merged[i]) else "kept apart"
            title += f"  p={proba[i]:.3f}  → {verdict}"
        sub.suptitle(title, fontsize=9)

        overlay = np.broadcast_to(_PANEL_BG, (*a_last.shape, 3)).copy()
        overlay[a_last] = _COLOR_A
        overlay[b_first] = _COLOR_B
        overlay[a_last & b_first] = (_COLOR_A + _COLOR_B) / 2
        if gap_mask is not None:
            overlay[gap_mask & ~(a_last | b_first)] = _COLOR_GAP
        blank = np.zeros_like(a_last)
        panels = [
            (f"A last layer ({int(a_last.sum())} px)", _mask_rgb(a_last, _COLOR_A, b_first)),
            (
                gap_title,
                _mask_rgb(
                    gap_mask if gap_mask is not None else blank, _COLOR_GAP, a_last | b_first
                ),
            ),
            (f"B first layer ({int(b_first.sum())} px)", _mask_rgb(b_first, _COLOR_B, a_last)),
            ("overlay", overlay),
        ]
        axes = sub.subplots(1, 4)
        for ax, (panel_title, img) in zip(axes, panels, strict=True):
            ax.imshow(img, aspect=aspect, interpolation="nearest")
            ax.set_title(panel_title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, target, overwrite)
    return fig


def _check_binary(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1D, got shape {arr.shape}.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}.")
    values = np.unique(arr)
    bad = values[~np.isin(values, [0, 1])]
    if bad.size:
        raise ValueError(f"{name} must hold only 0 and 1, got {bad[:5].tolist()}.")
    return arr.astype(np.int8)


def plot_feature_distributions(
    X: pd.DataFrame,
    y: Any,
    *,
    features: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Figure:
    """Histograms of each feature for true splits (y = 1) versus distinct cells (y = 0).

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
        Feature table, e.g. the output of a feature transformer with
        ``set_output(transform="pandas")``. A 2D array is accepted and its columns are
        named ``x0``, ``x1``, ...
    y : array-like of shape (n_samples,)
        Binary labels, 1 = the pair is one cell.
    features : sequence of str or None, default=None
        Columns to plot, in order. None: every numeric column.
    path : str, os.PathLike or None, default=None
        Where to save the figure (format from the suffix, PNG by default).
    overwrite : bool, default=False
        Replace ``path`` if it exists; otherwise a :class:`FileExistsError` is raised.

    Returns
    -------
    fig : matplotlib.figure.Figure
        A grid of panels (4 per row), one per feature, with the two classes as
        density-normalised histograms over shared bins (classes are usually
        imbalanced, so counts would hide the minority). Non-finite values are left out.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``X`` is not 2D tabular data, ``y`` is not numeric, or a requested feature is
        not numeric.
    ValueError
        If lengths differ, ``y`` is not binary, a requested feature is missing, or
        there is no numeric feature to plot.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    _require_matplotlib()
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X) if isinstance(X, np.ndarray) else None
        if arr is None or arr.ndim != 2:
            raise TypeError(
                f"X must be a DataFrame or a 2D array of features, got {type(X).__name__}."
            )
        X = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    labels = _check_binary(y, "y")
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(labels)} labels.")
    if features is None:
        features = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        if not features:
            raise ValueError(f"X has no numeric column to plot; columns: {list(X.columns)}.")
    else:
        if isinstance(features, str):
            features = [features]
        features = list(features)
        missing = [f for f in features if f not in X.columns]
        if missing:
            raise ValueError(f"features {missing} are not columns of X.")
        for f in features:
            if not pd.api.types.is_numeric_dtype(X[f]):
                raise TypeError(f"feature {f!r} has dtype {X[f].dtype}; it must be numeric.")
        if not features:
            raise ValueError("features is empty: nothing to plot.")
    target = _check_path(path, overwrite)

    ncols = min(4, len(features))
    nrows = -(-len(features) // ncols)
    fig = _new_figure((3.0 * ncols, 2.4 * nrows + 0.4))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    pos, neg = labels == 1, labels == 0
    for ax, name in zip(axes, features, strict=False):
        values = X[name].to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(values)
        if not finite.any():
            ax.text(0.5, 0.5, "no finite value", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = values[finite].min(), values[finite].max()
            if lo == hi:  # a constant feature still gets a visible bar
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, 31)
            for mask, label, color in (
                (neg, "distinct (0)", "tab:blue"),
                (pos, "one cell (1)", "tab:orange"),
            ):
                vals = values[mask & finite]
                if vals.size:
                    ax.hist(
                        vals,
                        bins=bins,
                        density=True,
                        alpha=0.55,
                        color=color,
                        label=f"{label}, n={vals.size}",
                    )
            ax.legend(fontsize=6, frameon=False)
        ax.set_title(str(name), fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(features) :]:
        ax.set_visible(False)
    _save(fig, target, overwrite)
    return fig


def plot_precision_recall(
    y_true: Any,
    probability: Any,
    *,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Precision-recall curve of merge probabilities, with the 0.5 threshold marked.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels, 1 = the pair is one cell. Needs at least one positive.
    probability : array-like of shape (n_samples,)
        Predicted probability that the pair is one cell, in [0, 1].
    path : str, os.PathLike or None, default=None
        Where to save the figure (format from the suffix, PNG by default).
    overwrite : bool, default=False
        Replace ``path`` if it exists; otherwise a :class:`FileExistsError` is raised.
    ax : matplotlib Axes or None, default=None
        Draw into this axes (e.g. to compare models); None makes a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure holding the curve (``ax.figure`` when ``ax`` is given). The legend
        gives the average precision, the precision and recall at threshold 0.5, and
        the positive rate (the precision of a random guess).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If an input is not numeric.
    ValueError
        If lengths differ, ``y_true`` is not binary or has no positive, or a
        probability is outside [0, 1] or not finite.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    _require_matplotlib()
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels = _check_binary(y_true, "y_true")
    proba = np.asarray(probability)
    if proba.dtype.kind not in "biuf":
        raise TypeError(f"probability must be numeric, got dtype {proba.dtype}.")
    proba = proba.astype(float)
    if proba.ndim != 1 or len(proba) != len(labels):
        raise ValueError(
            f"probability must be 1D with one value per label: got shape {proba.shape} "
            f"for {len(labels)} labels."
        )
    if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
        raise ValueError(
            f"probability must be finite and in [0, 1], got range "
            f"[{np.nanmin(proba):g}, {np.nanmax(proba):g}]."
        )
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("y_true has no positive (1): precision-recall is undefined.")
    target = _check_path(path, overwrite)

    precision, recall, _ = precision_recall_curve(labels, proba)
    ap = average_precision_score(labels, proba)
    predicted = proba >= 0.5
    tp = int(np.count_nonzero(predicted & (labels == 1)))
    n_pred = int(np.count_nonzero(predicted))

    if ax is None:
        fig = _new_figure((5, 4.5))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.plot(recall, precision, drawstyle="steps-post", lw=1.8, label=f"AP = {ap:.3f}")
    if n_pred:
        p05, r05 = tp / n_pred, tp / n_pos
        ax.plot(
            [r05], [p05], "o", ms=8, color="tab:red", label=f"p ≥ 0.5: P={p05:.2f}, R={r05:.2f}"
        )
    else:
        ax.plot([], [], "o", color="tab:red", label="p ≥ 0.5: no positive prediction")
    ax.axhline(n_pos / len(labels), color="0.5", ls="--", lw=1, label="positive rate")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall of merge decisions", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, target, overwrite)
    return fig

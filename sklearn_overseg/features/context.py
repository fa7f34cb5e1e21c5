"""Cell-context features: would A and B together make a plausible cell?

The paper's features look at how masks change from layer to layer. They cannot see two
cues that tell a blanked stacked-cell interface (two cells, a hard negative) from a
blanked layer inside one cell:

- **Truncation.** A cell split in its middle is cut where its masks are large; a natural
  cell end tapers (a dome). ``taper_a`` / ``taper_b`` are the facing masks' areas relative
  to the largest mask of the same cell.
- **Size.** Two pieces of one cell add up to about one typical cell; two stacked cells
  add up to about two. ``height_ratio`` and ``volume_ratio`` compare the merged pair with
  the volume's typical cell (``ref_layers``, ``ref_voxels`` columns written by the
  screener: medians weighted by voxel count, so that the one-layer fragments of a
  stitched segmentation do not shrink the scale), so they are scale-free.

This block is an addition to the paper; drop it in a grid search (``features__context``
set to ``"drop"``) to measure what it brings.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from ._common import _check_input_features, _facing_layers, _geometries, _table_tags

__all__ = ["CONTEXT_COLUMNS", "CellContextFeatures"]

#: Table columns this transformer reads besides ``geometry``.
CONTEXT_COLUMNS = (
    "z_a_first",
    "z_a_last",
    "z_b_first",
    "z_b_last",
    "voxels_a",
    "voxels_b",
    "ref_layers",
    "ref_voxels",
)

_NAMES = (
    "layers_a",
    "layers_b",
    "taper_a",
    "taper_b",
    "height_ratio",
    "height_a_ratio",
    "height_b_ratio",
    "volume_ratio",
    "size_balance",
)


def _check_table(X: Any, owner: str) -> None:
    _geometries(X, owner)
    missing = [c for c in CONTEXT_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(
            f"{owner} needs the screener's columns {missing}; the table has {list(X.columns)}."
        )


class CellContextFeatures(TransformerMixin, BaseEstimator):
    """Truncation and size of a candidate pair relative to its volume's cells.

    Reads the candidate table (``geometry`` plus the columns in ``CONTEXT_COLUMNS``).

    Output columns: ``layers_a``, ``layers_b`` (non-empty layers), ``taper_a``,
    ``taper_b`` (facing mask area / largest mask area of the cell), ``height_ratio``
    (z-extent of A∪B including the gap / the typical cell's z-extent, ``ref_layers``),
    ``height_a_ratio``, ``height_b_ratio``, ``volume_ratio`` ((voxels A + voxels B) /
    ``ref_voxels``) and ``size_balance`` (smaller / larger voxel count).

    ``X`` is a candidate table, not a numeric array (the estimator tags say
    ``two_d_array=False``). Nothing is learned but the table's columns.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the table seen in :meth:`fit`.
    feature_names_in_ : ndarray of str
        Column names of the table seen in :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_overseg import AxialGapScreener, CellContextFeatures
    >>> vol = np.zeros((7, 8, 8), dtype=np.uint16)
    >>> vol[1:3, 2:6, 2:6] = 1
    >>> vol[0, 3:5, 3:5] = 1      # a tapered top
    >>> vol[4:, 3:7, 2:6] = 2     # shifted by one row, after a blank layer
    >>> table = AxialGapScreener().screen(vol)
    >>> context = CellContextFeatures().set_output(transform="pandas").fit_transform(table)
    >>> context[["layers_a", "height_ratio", "volume_ratio", "size_balance"]].round(3)
                 layers_a  height_ratio  volume_ratio  size_balance
    candidate
    0:1-2:axial       3.0         2.333          1.75          0.75
    """

    _parameter_constraints: ClassVar[dict] = {}

    def __sklearn_tags__(self):
        return _table_tags(super().__sklearn_tags__())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: pd.DataFrame, y: Any = None) -> CellContextFeatures:
        """Check the table; nothing is learned.

        Parameters
        ----------
        X : DataFrame
            Candidate table.
        y : ignored

        Returns
        -------
        self
        """
        _check_table(X, type(self).__name__)
        validate_data(self, X, skip_check_array=True, reset=True)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Compute the context features of every row.

        Parameters
        ----------
        X : DataFrame
            Candidate table.

        Returns
        -------
        features : ndarray of shape (n_rows, 9)
        """
        check_is_fitted(self)
        _check_table(X, type(self).__name__)
        validate_data(self, X, skip_check_array=True, reset=False)
        geoms = list(X["geometry"])
        out = np.empty((len(geoms), len(_NAMES)), dtype=float)
        if not geoms:
            return out
        for i, (row_id, geom) in enumerate(zip(X.index, geoms, strict=True)):
            keep_a, keep_b = _facing_layers(geom, row_id, type(self).__name__)
            areas_a = np.count_nonzero(geom.a, axis=(1, 2))
            areas_b = np.count_nonzero(geom.b, axis=(1, 2))
            out[i, 0] = keep_a.size
            out[i, 1] = keep_b.size
            out[i, 2] = areas_a[keep_a[-1]] / areas_a.max()
            out[i, 3] = areas_b[keep_b[0]] / areas_b.max()
        col = {c: X[c].to_numpy(dtype=float) for c in CONTEXT_COLUMNS}
        ref_layers = np.maximum(col["ref_layers"], 1.0)
        ref_voxels = np.maximum(col["ref_voxels"], 1.0)
        top = np.minimum(col["z_a_first"], col["z_b_first"])
        bottom = np.maximum(col["z_a_last"], col["z_b_last"])
        out[:, 4] = (bottom - top + 1) / ref_layers
        out[:, 5] = (col["z_a_last"] - col["z_a_first"] + 1) / ref_layers
        out[:, 6] = (col["z_b_last"] - col["z_b_first"] + 1) / ref_layers
        out[:, 7] = (col["voxels_a"] + col["voxels_b"]) / ref_voxels
        small = np.minimum(col["voxels_a"], col["voxels_b"])
        large = np.maximum(np.maximum(col["voxels_a"], col["voxels_b"]), 1.0)
        out[:, 8] = small / large
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str, optional
            Must equal ``feature_names_in_`` when given.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self)
        _check_input_features(self, input_features)
        return np.asarray(_NAMES, dtype=object)

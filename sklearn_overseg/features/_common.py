"""What the feature transformers of a candidate table share.

The checks of the table's ``geometry`` column, the facing layers of a pair, the
``input_features`` check of ``get_feature_names_out`` and the tags of an estimator whose
``X`` is a candidate table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..screening.candidates import PairGeometry


def _geometries(X: Any, owner: str) -> list[PairGeometry]:
    """The ``geometry`` column of a candidate table, checked row by row."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{owner} expects the candidate table (a pandas DataFrame with a 'geometry' "
            f"column), got {type(X).__name__}."
        )
    if "geometry" not in X.columns:
        raise ValueError(
            f"{owner} needs a 'geometry' column of PairGeometry objects; the table has "
            f"columns {list(X.columns)}."
        )
    geoms = list(X["geometry"])
    for row_id, geom in zip(X.index, geoms, strict=True):
        if not isinstance(geom, PairGeometry):
            raise TypeError(
                f"{owner}: row {row_id!r} of column 'geometry' holds a "
                f"{type(geom).__name__}, expected a PairGeometry."
            )
    return geoms


def _table_tags(tags):
    """Tags of an estimator whose ``X`` is a candidate table, not a 2D numeric array."""
    tags.input_tags.two_d_array = False
    return tags


def _nonempty(stack: np.ndarray) -> np.ndarray:
    return np.flatnonzero(stack.any(axis=(1, 2)))


def _facing_layers(geom: PairGeometry, row_id: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """A's last and B's first non-empty layers; a side without any pixel is an error."""
    keep_a, keep_b = _nonempty(geom.a), _nonempty(geom.b)
    for side, keep in (("A", keep_a), ("B", keep_b)):
        if keep.size == 0:
            raise ValueError(f"{owner}: row {row_id!r} has no pixel in cell {side}.")
    return keep_a, keep_b


def _check_input_features(est: BaseEstimator, input_features: Any) -> None:
    if input_features is None:
        return
    expected = getattr(est, "feature_names_in_", None)
    given = np.asarray(input_features, dtype=object)
    if expected is not None and not np.array_equal(given, expected):
        raise ValueError(
            f"input_features {list(given)} do not match feature_names_in_ {list(expected)}."
        )

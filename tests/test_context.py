"""Tests of the cell-context features (sklearn_overseg.features.context)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from sklearn_overseg.features.context import CONTEXT_COLUMNS, CellContextFeatures
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.candidates import PairGeometry

NAMES = [
    "layers_a",
    "layers_b",
    "taper_a",
    "taper_b",
    "height_ratio",
    "height_a_ratio",
    "height_b_ratio",
    "volume_ratio",
    "size_balance",
]


def squares(sides, frame=8) -> np.ndarray:
    """A stack of top-left squares of the given sides (0 = an empty layer)."""
    stack = np.zeros((len(sides), frame, frame), dtype=bool)
    for i, s in enumerate(sides):
        stack[i, :s, :s] = True
    stack.setflags(write=False)
    return stack


def context_table() -> pd.DataFrame:
    geoms = [
        # A: areas 4, 16, 9 and an empty facing layer; B: 25, 36.
        PairGeometry(a=squares([2, 4, 3, 0]), b=squares([5, 6]), gap=1),
        # One layer each; the reference sizes are 0 and floored to 1.
        PairGeometry(a=squares([2]), b=squares([2]), gap=0),
        # B's extent reaches above A's (a contact-like pair): the height is the union.
        PairGeometry(a=squares([1, 3]), b=squares([3, 3, 2]), gap=0),
    ]
    frame = pd.DataFrame(
        {
            "volume": ["v", "v", "v"],
            "cell_a": [1, 3, 5],
            "cell_b": [2, 4, 6],
            "kind": ["axial", "axial", "contact"],
            "gap": [1, 0, 0],
            "z_a_first": [2, 0, 5],
            "z_a_last": [5, 0, 9],
            "z_b_first": [7, 1, 1],
            "z_b_last": [8, 1, 6],
            "voxels_a": [29, 5, 40],
            "voxels_b": [61, 5, 10],
            "ref_layers": [4.0, 0.0, 3.0],
            "ref_voxels": [50.0, 0.0, 100.0],
        },
        index=["v:1-2:axial", "v:3-4:axial", "v:5-6:contact"],
    )
    frame["geometry"] = pd.Series(geoms, index=frame.index, dtype=object)
    return frame


EXPECTED = np.array(
    [
        [3, 2, 9 / 16, 25 / 36, 7 / 4, 4 / 4, 2 / 4, 90 / 50, 29 / 61],
        [1, 1, 1.0, 1.0, 2 / 1, 1 / 1, 1 / 1, 10 / 1, 1.0],
        [2, 3, 1.0, 1.0, 9 / 3, 5 / 3, 6 / 3, 50 / 100, 10 / 40],
    ]
)


def test_hand_computed_values():
    X = context_table()
    out = CellContextFeatures().fit_transform(X)
    assert out.shape == (3, 9) and out.dtype == float
    np.testing.assert_allclose(out, EXPECTED)


def test_feature_names_and_pandas_output_keep_the_index():
    X = context_table()
    est = CellContextFeatures().fit(X)
    assert list(est.get_feature_names_out()) == NAMES
    assert est.n_features_in_ == X.shape[1]
    assert list(est.feature_names_in_) == list(X.columns)
    frame = CellContextFeatures().set_output(transform="pandas").fit_transform(X)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == NAMES
    assert list(frame.index) == list(X.index)
    np.testing.assert_allclose(frame.to_numpy(), EXPECTED)
    # Rows are independent: a subset gives the same rows.
    sub = est.transform(X.iloc[[2, 0]])
    np.testing.assert_allclose(sub, EXPECTED[[2, 0]])


def test_empty_table():
    X = context_table()
    est = CellContextFeatures().fit(X)
    out = est.transform(X.iloc[:0])
    assert out.shape == (0, 9)


def test_missing_columns_raise_value_error_naming_them():
    X = context_table()
    with pytest.raises(ValueError, match=r"\['ref_layers', 'ref_voxels'\]"):
        CellContextFeatures().fit(X.drop(columns=["ref_layers", "ref_voxels"]))
    est = CellContextFeatures().fit(X)
    with pytest.raises(ValueError, match="voxels_b"):
        est.transform(X.drop(columns=["voxels_b"]))
    with pytest.raises(ValueError, match="geometry"):
        CellContextFeatures().fit(X.drop(columns=["geometry"]))


def test_bad_tables_raise_clear_errors():
    X = context_table()
    with pytest.raises(TypeError, match="DataFrame"):
        CellContextFeatures().fit(X.to_numpy())
    bad = X.copy()
    bad["geometry"] = pd.Series(["not a geometry"] * 3, index=X.index, dtype=object)
    with pytest.raises(TypeError, match="PairGeometry"):
        CellContextFeatures().fit(bad)
    empty_a = X.copy()
    geoms = list(X["geometry"])
    geoms[1] = PairGeometry(a=squares([0, 0]), b=squares([2]), gap=0)
    empty_a["geometry"] = pd.Series(geoms, index=X.index, dtype=object)
    est = CellContextFeatures().fit(X)
    with pytest.raises(ValueError, match=r"'v:3-4:axial' has no pixel in cell A"):
        est.transform(empty_a)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(X.rename(columns={"kind": "type"}))


def test_not_fitted_errors():
    X = context_table()
    with pytest.raises(NotFittedError):
        CellContextFeatures().transform(X)
    with pytest.raises(NotFittedError):
        CellContextFeatures().get_feature_names_out()


def test_sklearn_api():
    est = CellContextFeatures()
    name = type(est).__name__
    check_no_attributes_set_in_init(name, est)
    check_parameters_default_constructible(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    assert est.get_params() == {}
    fitted = clone(est).fit(context_table())
    assert not hasattr(clone(fitted), "n_features_in_")
    with pytest.raises(ValueError, match="input_features"):
        fitted.get_feature_names_out(["nope"])
    assert list(fitted.get_feature_names_out(fitted.feature_names_in_)) == NAMES


def test_reads_the_screeners_columns():
    # One cell split twice (5 | blank | 5 | blank | 6 layers) and two stacked cells (9 + 9),
    # all with a 6×6 footprint.
    vol = np.zeros((18, 12, 24), dtype=np.uint16)
    vol[0:5, 3:9, 3:9] = 1
    vol[6:11, 3:9, 3:9] = 2
    vol[12:18, 3:9, 3:9] = 3
    vol[0:9, 3:9, 15:21] = 4
    vol[9:18, 3:9, 15:21] = 5
    table = AxialGapScreener().screen(vol)
    assert set(CONTEXT_COLUMNS) <= set(table.columns)
    out = CellContextFeatures().set_output(transform="pandas").fit_transform(table)
    rows = out.set_axis(pd.MultiIndex.from_arrays([table["cell_a"], table["cell_b"]]))
    # The typical cell is the one the median voxel lies in: the stacked cells (9 layers,
    # 9 * 36 = 324 voxels) hold 648 of the 1224 voxels, and the plain median label (6
    # layers) is not the scale.
    assert table["ref_layers"].eq(9.0).all() and table["ref_voxels"].eq(324.0).all()
    assert rows.loc[(1, 2), "height_ratio"] == pytest.approx(11 / 9)
    assert rows.loc[(4, 5), "height_ratio"] == pytest.approx(18 / 9)
    assert rows.loc[(1, 2), "volume_ratio"] == pytest.approx(360 / 324)
    assert rows.loc[(4, 5), "volume_ratio"] == pytest.approx(648 / 324)
    assert rows.loc[(2, 3), "size_balance"] == pytest.approx(180 / 216)
    # Untapered columns: the facing masks are as large as the largest.
    assert (rows[["taper_a", "taper_b"]] == 1.0).all().all()
    assert rows.loc[(2, 3), "layers_a"] == 5 and rows.loc[(2, 3), "layers_b"] == 6

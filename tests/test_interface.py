"""InterfaceFeatures: overlap of the facing masks of candidate pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_overseg import AxialGapScreener, InterfaceFeatures, make_tissue
from sklearn_overseg.classification.pipeline import make_default_pipeline, make_features
from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched


def _pair(shift: int, *, b_rows: slice = slice(2, 6), gap: int = 1) -> pd.DataFrame:
    vol = np.zeros((4 + gap, 10, 12), dtype=np.uint16)
    vol[:2, 2:6, 2:6] = 1
    vol[2 + gap :, b_rows, 2 + shift : 6 + shift] = 2
    return AxialGapScreener(max_gap=max(gap, 1)).screen(vol)


def test_values_of_shifted_and_shrunk_facing_masks():
    out = InterfaceFeatures().fit_transform(_pair(0))
    np.testing.assert_allclose(out, [[1.0, 1.0, 1.0, 1.0]])
    out = InterfaceFeatures().fit_transform(_pair(1))  # 12 of 16 px shared
    np.testing.assert_allclose(out, [[0.75, 0.75, 0.6, 1.0]])
    out = InterfaceFeatures().fit_transform(_pair(0, b_rows=slice(2, 4), gap=0))
    # B's first mask: 8 px, all inside A's 16.
    np.testing.assert_allclose(out, [[0.5, 1.0, 0.5, 0.5]])


def test_finite_in_unit_range_on_stitched_tissue_with_one_layer_pieces():
    truth = make_tissue((24, 64, 64), cell_size=(8, 16, 16), random_state=0)
    labels = synthesize_stitched(truth, random_state=0).labels
    table = AxialGapScreener(max_gap=3).screen(labels)
    heights = np.minimum(
        table["z_a_last"] - table["z_a_first"], table["z_b_last"] - table["z_b_first"]
    )
    assert (heights == 0).any()  # one-layer pieces are in the table
    frame = InterfaceFeatures().set_output(transform="pandas").fit_transform(table)
    assert list(frame.columns) == list(InterfaceFeatures().fit(table).get_feature_names_out())
    assert frame.index.equals(table.index)
    values = frame.to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    # Screened pairs overlap by construction: no row has an empty interface.
    assert (frame["iface_iou"] > 0).all()


def test_bad_input_and_unfitted():
    table = _pair(0)
    with pytest.raises(NotFittedError):
        InterfaceFeatures().transform(table)
    with pytest.raises(TypeError, match="candidate table"):
        InterfaceFeatures().fit(table.drop(columns="geometry").to_numpy())
    with pytest.raises(ValueError, match="'geometry' column"):
        InterfaceFeatures().fit(table.drop(columns="geometry"))
    est = InterfaceFeatures().fit(table)
    with pytest.raises(ValueError, match="do not match feature_names_in_"):
        est.get_feature_names_out(["x"])


def test_the_block_is_opt_in_in_the_default_pipeline():
    table = _pair(1)
    names = make_features(interface=True).fit(table).get_feature_names_out()
    assert list(names[-5:]) == [*InterfaceFeatures().fit(table).get_feature_names_out(), "gap"]
    dropped = make_features().fit(table).get_feature_names_out()  # opt-in
    assert len(names) - len(dropped) == 4 and "iface_iou" not in dropped
    pipe = make_default_pipeline().set_params(features__interface=InterfaceFeatures())
    assert "iface_iou" in pipe[0].fit(table).get_feature_names_out()

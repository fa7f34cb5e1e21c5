"""Property-based tests of ``SegmentationCorrector.correct`` on generated label volumes.

Hypothesis draws volumes of every integer dtype, with ids near the dtype's limits, empty
layers, disconnected ids, single cells, one-voxel cells and 1-layer stacks. Whatever it
draws, ``correct`` either refuses with a ValueError/TypeError or returns a volume of the
same shape and dtype in which every label is a union of input labels (merges only relabel
whole cells to an id they already had, and fills touch background voxels only); the
input is never modified and the decision table agrees with the volume.

A small deterministic stub judges the candidates, so that merges happen without the
cost of the shipped model; both ways the corrector drives a classifier are covered (a
feature ``Pipeline`` judged block by block, and a plain classifier judging whole tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_overseg.correction.corrector import DECISION_COLUMNS, SegmentationCorrector
from sklearn_overseg.screening.axial import AxialGapScreener

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]


def _coin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A probability per pair from its two ids: deterministic, spread over [0, 1]."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    b = np.abs(np.asarray(b, dtype=np.float64))
    # Two pairs in three merged; a few exactly at the threshold (not merged).
    votes = (np.floor(a % 7.0) + np.floor(b % 5.0)) % 6
    return np.choose(votes.astype(int), [0.1, 0.5, 0.7, 0.8, 0.95, 1.0])


class _CoinClassifier(ClassifierMixin, BaseEstimator):
    """Judges candidate tables (or ``[cell_a, cell_b]`` feature rows) by :func:`_coin`."""

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        if isinstance(X, pd.DataFrame):
            a, b = X["cell_a"].to_numpy(), X["cell_b"].to_numpy()
        else:
            a, b = np.asarray(X)[:, 0], np.asarray(X)[:, 1]
        p = _coin(a, b)
        return np.column_stack([1.0 - p, p])


def _pair_columns(table: pd.DataFrame) -> np.ndarray:
    return table[["cell_a", "cell_b"]].to_numpy(dtype=np.float64)


def _corrector(kind: str, interpolation: str) -> SegmentationCorrector:
    """A corrector in its fitted state, without training."""
    if kind == "pipeline":
        classifier = Pipeline(
            [("pairs", FunctionTransformer(_pair_columns)), ("coin", _CoinClassifier())]
        )
        classifier.fit(pd.DataFrame({"cell_a": [1, 2], "cell_b": [3, 4]}))
    else:
        classifier = _CoinClassifier().fit(None)
    corrector = SegmentationCorrector(threshold=0.5, interpolation=interpolation)
    corrector.screener_ = AxialGapScreener(max_gap=2)
    corrector.classifier_ = classifier
    corrector.spacing_ = (1.0, 1.0, 1.0)
    return corrector


# ----------------------------------------------------------------------------- strategies
def _id_values(dtype: np.dtype) -> st.SearchStrategy[int]:
    """Ids a volume of ``dtype`` may hold: small, near the top, and anything between."""
    info = np.iinfo(dtype)
    top = int(info.max)
    return st.one_of(
        st.integers(1, min(top, 20)),
        st.integers(max(1, top - 20), top),
        st.integers(1, top),
    )


@st.composite
def label_volumes(draw) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (
        draw(st.integers(1, 6)),  # 1-layer stacks included
        draw(st.integers(1, 10)),
        draw(st.integers(1, 10)),
    )
    stacked = not draw(st.booleans())
    n_ids = draw(st.integers(2 if stacked else 1, 6))  # 1: a single cell
    ids = draw(st.lists(_id_values(dtype), min_size=n_ids, max_size=n_ids, unique=True))
    if stacked:
        # Stacked boxes in columns, split along z: real axial candidates (and merges).
        n_cols = draw(st.integers(1, min(3, shape[2])))
        edges = np.linspace(0, shape[2], n_cols + 1).astype(int)
        base = np.zeros(shape, dtype=np.int64)
        for c in range(n_cols):
            cut = draw(st.integers(min(1, shape[0] - 1), shape[0] - 1))
            base[:cut, :, edges[c] : edges[c + 1]] = 1 + (2 * c) % n_ids
            base[cut:, :, edges[c] : edges[c + 1]] = 1 + (2 * c + 1) % n_ids
    else:
        # Noise: disconnected ids and one-voxel cells.
        base = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, n_ids)))
    for z in draw(st.lists(st.integers(0, shape[0] - 1), max_size=shape[0])):
        base[z] = 0  # empty layers: gaps between the pieces of a split cell
    lut = np.array([0, *ids], dtype=object)
    volume = np.asarray(lut[base].astype(np.uint64 if dtype.kind == "u" else np.int64))
    volume = volume.astype(dtype)
    if dtype.kind == "i" and draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()):
        volume.flat[draw(st.integers(0, volume.size - 1))] = -1  # must be refused
    return volume


# ----------------------------------------------------------------------------- properties
def _check_correction(volume: np.ndarray, corrected: np.ndarray, decisions: pd.DataFrame):
    assert corrected.shape == volume.shape and corrected.dtype == volume.dtype
    labelled = volume != 0
    # Each input label maps to exactly one output label, which is one of the input labels.
    pairs = np.unique(np.stack([volume[labelled], corrected[labelled]], axis=1), axis=0)
    sources, targets = pairs[:, 0], pairs[:, 1]
    assert len(np.unique(sources)) == len(sources), "an input cell was split or erased"
    mapping = dict(zip(sources.tolist(), targets.tolist(), strict=True))
    inputs = set(mapping)
    outputs = set(mapping.values())
    assert outputs <= inputs
    # Background voxels stay background or join a merged cell (only_background fills).
    filled = ~labelled & (corrected != 0)
    assert set(np.unique(corrected[filled]).tolist()) <= outputs

    assert list(decisions.columns) == list(DECISION_COLUMNS)
    proba = decisions["probability"].to_numpy(dtype=float)
    assert np.all((proba >= 0) & (proba <= 1))
    merged = decisions["merged"].to_numpy(dtype=bool)
    for row in decisions.itertuples():
        assert int(row.cell_a) in inputs and int(row.cell_b) in inputs
        if row.merged:
            assert mapping[int(row.cell_a)] == mapping[int(row.cell_b)] == int(row.merged_into)
            assert row.probability > 0.5 or row.probability_rejudged > 0.5
        else:
            assert row.filled_voxels == 0
        if row.reason == "below threshold":
            assert row.probability <= 0.5
    # Every merge joins two groups: one label fewer per merged row.
    assert len(outputs) == len(inputs) - int(merged.sum())
    assert int(decisions["filled_voxels"].sum()) == int(filled.sum())


def _run(volume: np.ndarray, corrector: SegmentationCorrector):
    original = volume.copy()
    try:
        corrected, decisions = corrector.correct(volume)
    except (ValueError, TypeError):
        np.testing.assert_array_equal(volume, original)
        return None
    np.testing.assert_array_equal(volume, original)
    _check_correction(volume, corrected, decisions)
    return decisions


@pytest.mark.parametrize(
    ("kind", "interpolation"), [("pipeline", "ot"), ("whole_table", "sdf"), ("pipeline", "none")]
)
@SETTINGS
@given(volume=label_volumes())
def test_correct_returns_unions_of_input_labels_or_refuses(kind, interpolation, volume):
    _run(volume, _corrector(kind, interpolation))


@SETTINGS
@given(volume=label_volumes())
def test_read_only_input_is_corrected_like_a_writable_one(volume):
    corrector = _corrector("pipeline", "ot")
    frozen = volume.copy()
    frozen.setflags(write=False)
    first = _run(volume, corrector)
    second = _run(frozen, corrector)
    assert (first is None) == (second is None)
    if first is not None:
        pd.testing.assert_frame_equal(first, second)


def test_the_generator_reaches_merges_and_refusals():
    """The properties above would hold vacuously if no example merged or was refused."""
    outcomes = {"merged": 0, "refused": 0}

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(volume=label_volumes())
    def collect(volume):
        decisions = _run(volume, _corrector("pipeline", "ot"))
        if decisions is None:
            outcomes["refused"] += 1
        elif decisions["merged"].any():
            outcomes["merged"] += 1

    collect()
    assert outcomes["merged"] > 0 and outcomes["refused"] > 0, outcomes


# ----------------------------------------------------------------------------- integrity
class _NaNClassifier(_CoinClassifier):
    def predict_proba(self, X):
        proba = super().predict_proba(X)
        proba[:, 1] = np.nan
        return proba


def test_non_finite_probabilities_are_an_error():
    volume = np.zeros((5, 4, 4), np.uint16)
    volume[:2] = 1
    volume[3:] = 2
    corrector = _corrector("whole_table", "ot")
    corrector.classifier_ = _NaNClassifier().fit(None)
    with pytest.raises(ValueError, match="NaN, infinite or outside"):
        corrector.correct(volume)

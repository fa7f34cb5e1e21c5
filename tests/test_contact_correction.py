"""End to end: cells cut by tilted planes are merged back through the contact screener.

The judges here are fixed rules, so that the tests check the screening, routing and
merging machinery exactly (output equal to the ground truth up to ids) without depending
on what a small model happens to learn:

- contact judge: a plane through a cell's middle shares the cell's largest cross-section,
  so ``contact_px / min(voxels_a, voxels_b) ** (2/3)`` is larger for a cut than for the
  face between two neighbours (3.1 for the cut below, at most 2.45 for the 196 genuinely
  different touching pairs of this tissue);
- axial judge: dense tissue has no background between stacked cells, so a pair across a
  missing layer (``gap >= 1``) is a blanked split and a pair with ``gap == 0`` is two
  stacked cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from sklearn_overseg.classification.dispatch import KindClassifier
from sklearn_overseg.correction.corrector import SegmentationCorrector
from sklearn_overseg.screening.contact import CombinedScreener, ContactScreener
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import cut_cells_tilted, split_cells_axial


class _RuleJudge(ClassifierMixin, BaseEstimator):
    """Probability 1 when a rule on the candidate table holds, else 0; learns nothing."""

    def __init__(self, rule: str = "contact", cutoff: float = 2.8) -> None:
        self.rule = rule
        self.cutoff = cutoff

    def fit(self, table, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        if self.rule == "contact":
            smaller = np.minimum(table["voxels_a"], table["voxels_b"]).to_numpy(float)
            ratio = table["contact_px"].to_numpy(float) / smaller ** (2 / 3)
            p = (ratio > self.cutoff).astype(float)
        else:
            p = (table["gap"].to_numpy() >= 1).astype(float)
        return np.column_stack([1 - p, p])


def _same_up_to_ids(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two label volumes are one relabelling of each other (0 kept)."""
    if ((a == 0) != (b == 0)).any():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    return make_tissue((32, 64, 64), cell_size=(20, 20, 20), random_state=0)


@pytest.fixture(scope="module")
def tilted(tissue):
    flawed = cut_cells_tilted(tissue, fraction=0.03, random_state=0)
    assert flawed.merges[["cell_a", "cell_b"]].to_numpy().tolist() == [[31, 44]]
    return flawed


def test_rule_judges_are_honest_on_this_tissue(tissue, tilted):
    """Guard the premise of the fixed judge: the cut stands out, no neighbour pair does."""
    table = ContactScreener(min_size=50).screen(tilted.labels)
    judged = _RuleJudge().fit(None, [0, 1]).predict_proba(table)[:, 1]
    cut = (table["cell_a"] == 31) & (table["cell_b"] == 44) | (
        (table["cell_a"] == 44) & (table["cell_b"] == 31)
    )
    assert cut.sum() == 1
    assert judged[cut.to_numpy()].tolist() == [1.0]
    assert judged[~cut.to_numpy()].sum() == 0
    assert (~cut).sum() >= 150  # the genuinely different touching pairs


def test_contact_corrector_merges_the_cut_and_nothing_else(tissue, tilted):
    labels = tilted.labels.copy()
    labels.setflags(write=False)
    corrector = SegmentationCorrector(
        screener=ContactScreener(min_size=50, max_layers=4), classifier=_RuleJudge()
    ).fit([labels], [tissue])
    assert corrector.training_balance_[1] == 1
    corrected, decisions = corrector.correct(labels)
    assert _same_up_to_ids(corrected, tissue)
    assert not _same_up_to_ids(labels, tissue)
    merged = decisions[decisions["merged"]]
    assert {tuple(sorted(p)) for p in zip(merged.cell_a, merged.cell_b, strict=True)} == {(31, 44)}
    assert (merged["kind"] == "contact").all()
    assert (decisions["filled_voxels"] == 0).all()  # a cut has no missing layer
    # Cell 44 became 31, every other id is untouched.
    assert not (corrected == 44).any()
    assert np.array_equal(corrected[labels == 44], np.full((labels == 44).sum(), 31))
    keep = labels != 44
    assert np.array_equal(corrected[keep], labels[keep])


def test_kind_classifier_with_combined_screener_fixes_both_flaws(tissue):
    axial = split_cells_axial(tissue, fraction=0.03, random_state=0)
    ((a_ax, b_ax),) = axial.merges[["cell_a", "cell_b"]].to_numpy().tolist()
    both = cut_cells_tilted(axial.labels, fraction=0.03, random_state=0, exclude=[a_ax, b_ax])
    ((a_ti, b_ti),) = both.merges[["cell_a", "cell_b"]].to_numpy().tolist()
    labels = both.labels
    corrector = SegmentationCorrector(
        screener=CombinedScreener(contact=ContactScreener(min_size=50, max_layers=4)),
        classifier=KindClassifier(axial=_RuleJudge("axial"), contact=_RuleJudge("contact")),
    ).fit([labels], [tissue])
    assert sorted(corrector.classifier_.estimators_) == ["axial", "contact"]
    corrected, decisions = corrector.correct(labels)
    merged = decisions[decisions["merged"]]
    got = {
        (tuple(sorted(p)), k)
        for p, k in zip(zip(merged.cell_a, merged.cell_b, strict=True), merged.kind, strict=True)
    }
    assert got == {(tuple(sorted((a_ax, b_ax))), "axial"), (tuple(sorted((a_ti, b_ti))), "contact")}
    # Outside the blanked layer the result is exactly the truth; inside, interpolation
    # fills part of it (the cell tapers from 31 pixels above to 228 below) and only it.
    blanked = (labels == 0) & (tissue != 0)
    assert blanked.sum() == 204
    assert _same_up_to_ids(np.where(blanked, 0, corrected), np.where(blanked, 0, tissue))
    filled = (labels == 0) & (corrected != 0)
    assert not (filled & ~blanked).any()
    assert set(np.unique(corrected[filled])) == {a_ax}
    axial_row = merged[merged["kind"] == "axial"].iloc[0]
    assert axial_row["filled_voxels"] == filled.sum() > 50

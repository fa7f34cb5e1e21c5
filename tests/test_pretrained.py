import numpy as np
import pytest

from sklearn_overseg.classification.dispatch import KindClassifier
from sklearn_overseg.evaluation.metrics import pair_scores
from sklearn_overseg.pretrained import CONTACT_DIR, PRETRAINED_DIR, load_pretrained
from sklearn_overseg.screening.axial import AxialGapScreener
from sklearn_overseg.screening.contact import CombinedScreener, ContactScreener
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.flaws import synthesize_flaws

pytestmark = pytest.mark.skipif(
    not (PRETRAINED_DIR / "config.json").exists() or not (CONTACT_DIR / "config.json").exists(),
    reason="shipped models missing",
)


@pytest.fixture(scope="module")
def flawed():
    gt = make_tissue((40, 96, 96), cell_size=(30, 30, 30), random_state=5)
    return gt, synthesize_flaws(
        gt, split_fraction=0.3, tilted_fraction=0.2, hard_negatives=True, random_state=0
    )


def _pairs(decisions):
    merged = decisions[decisions.merged]
    return list(zip(merged.cell_a, merged.cell_b, strict=True))


def test_kinds_have_their_screeners():
    default = load_pretrained()
    # The default model screens what per-slice segmentation stitched in z leaves: axial
    # gaps of up to 3 layers and pieces side by side in a layer, each judged by its model.
    assert isinstance(default.screener_, CombinedScreener)
    assert isinstance(default.screener_.axial, AxialGapScreener)
    assert default.screener_.axial.max_gap >= 3
    assert default.screener_.contact == "drop"
    assert sorted(default.classifier_.estimators_) == ["axial", "lateral"]
    assert isinstance(load_pretrained(kind="contact").screener_, ContactScreener)
    both = load_pretrained(kind="both")
    assert isinstance(both.screener_, CombinedScreener)
    assert isinstance(both.classifier_, KindClassifier)
    assert sorted(both.classifier_.estimators_) == ["axial", "contact", "lateral"]


def test_both_finds_axial_and_tilted_splits(flawed):
    _, fl = flawed
    truth = list(zip(fl.merges.cell_a, fl.merges.cell_b, strict=True))
    axial_truth = [p for p, f in zip(truth, fl.merges.flaw, strict=True) if f != "tilted"]
    _, axial = load_pretrained().correct(fl.labels)
    corrected, both = load_pretrained(kind="both").correct(fl.labels)
    assert {"axial", "contact"} <= set(both.kind) <= {"axial", "contact", "lateral"}
    # The axial model alone repairs the blanked splits and nothing else (measured:
    # 11 of 11 axial splits, P 1.0); joined with the contact model, tilted cuts too
    # (measured: recall 1.0, precision 0.84 on this volume).
    assert pair_scores(_pairs(axial), axial_truth)["recall"] >= 0.9
    scores = pair_scores(_pairs(both), truth)
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.7
    assert len(np.unique(corrected)) < len(np.unique(fl.labels))


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        load_pretrained(kind="tilted")
    with pytest.raises(ValueError, match="not both"):
        load_pretrained(PRETRAINED_DIR, kind="contact")
    with pytest.raises(FileNotFoundError, match="no model directory"):
        load_pretrained("/nonexistent/model")


def test_both_keeps_each_models_threshold():
    axial, contact = load_pretrained(), load_pretrained(kind="contact")
    both = load_pretrained(kind="both")
    assert both.threshold == {**axial.threshold, "contact": contact.threshold}
    # The contact threshold was chosen by cross-validation on the training tables.
    assert 0.5 < contact.threshold < 1.0


def test_default_model_joins_a_chain_of_pieces_through_fragments():
    """A cell in four pieces — a missing layer, two one-layer fragments — becomes one label.

    What IoU stitching of per-slice masks leaves: the chain is joined piece by piece, top
    to bottom, each pair re-judged on the grown upper group; no other cell is touched.
    """
    from scipy import ndimage

    from sklearn_overseg import make_tissue

    gt = make_tissue((40, 96, 96), cell_size=(20, 24, 24), random_state=3)
    boxes = ndimage.find_objects(gt)
    height, tall = max(
        (box[0].stop - box[0].start, i + 1) for i, box in enumerate(boxes) if box is not None
    )
    assert height >= 12
    z0, z1 = boxes[tall - 1][0].start, boxes[tall - 1][0].stop
    cell = gt == tall
    mid = (z0 + z1) // 2
    new = int(gt.max()) + 1
    flawed = gt.copy()
    flawed[mid - 2][cell[mid - 2]] = 0  # a missed mask: the gap of the first link
    flawed[mid - 1][cell[mid - 1]] = new  # one-layer fragment
    flawed[mid][cell[mid]] = new + 1  # another
    flawed[mid + 1 :][cell[mid + 1 :]] = new + 2  # the rest of the cell
    corrected, decisions = load_pretrained().correct(flawed)
    (label,) = np.unique(corrected[cell & (flawed > 0)])
    chain = {tall, new, new + 1, new + 2}
    merged = decisions[decisions["merged"]]
    joined = merged[merged["cell_a"].isin(chain) | merged["cell_b"].isin(chain)]
    assert len(joined) == 3 and set(joined["cell_a"]) | set(joined["cell_b"]) == chain
    # No voxel of another cell joins the chain's label.
    assert not np.any(corrected[~cell & (gt > 0)] == label)

"""Review logic of the napari plugin (pure NumPy: runs without napari)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklearn_overseg.napari import apply_decisions, review_order


def _decisions(rows: list[dict]) -> pd.DataFrame:
    base = {
        "kind": "axial",
        "gap": 1,
        "probability": 0.9,
        "probability_rejudged": np.nan,
        "reason": "merged",
        "merged": True,
    }
    table = pd.DataFrame([{**base, **r} for r in rows]).set_index("candidate")
    return table


@pytest.fixture
def chain():
    """Cells 1 | gap | 2 | gap | 3 stacked in z; the corrector merged all into 1."""
    original = np.zeros((5, 4, 4), dtype=np.uint16)
    original[0, 1:3, 1:3] = 1
    original[2, 1:3, 1:3] = 2
    original[4, 1:3, 1:3] = 3
    original[:, 0, 0] = 9  # an unrelated cell that no decision touches
    corrected = original.copy()
    corrected[original == 2] = 1
    corrected[original == 3] = 1
    corrected[1, 1:3, 1:3] = 1
    corrected[3, 1:3, 2] = 1  # the interpolation may fill less than the faces
    decisions = _decisions(
        [
            dict(candidate="ab", cell_a=1, cell_b=2, z_a_last=0, z_b_first=2,
                 merged_into=1, filled_voxels=4),
            dict(candidate="bc", cell_a=2, cell_b=3, z_a_last=2, z_b_first=4,
                 merged_into=1, filled_voxels=2),
            dict(candidate="no", cell_a=9, cell_b=3, z_a_last=4, z_b_first=4, gap=0,
                 probability=0.1, merged=False, reason="below threshold",
                 merged_into=0, filled_voxels=0),
        ]
    )  # fmt: skip
    return original, corrected, decisions


def test_accept_all_gives_corrected_and_none_gives_original(chain):
    original, corrected, decisions = chain
    full = apply_decisions(original, corrected, decisions, ["ab", "bc"])
    np.testing.assert_array_equal(full, corrected)
    assert full.dtype == np.uint16
    np.testing.assert_array_equal(apply_decisions(original, corrected, decisions, []), original)


def test_rejecting_the_upper_link_keeps_the_lower_merge(chain):
    original, corrected, decisions = chain
    out = apply_decisions(original, corrected, decisions, {"bc"})
    expected = original.copy()
    expected[original == 3] = 2  # C joins B, which is now its group's root
    expected[3, 1:3, 2] = 2  # B–C's fill, relabelled to the new root
    np.testing.assert_array_equal(out, expected)
    assert np.count_nonzero(out[1]) == 1  # A–B's fill is gone; only cell 9 remains there


def test_rejecting_the_lower_link_restores_the_lower_cell(chain):
    original, corrected, decisions = chain
    out = apply_decisions(original, corrected, decisions, ["ab"])
    expected = original.copy()
    expected[original == 2] = 1
    expected[1, 1:3, 1:3] = 1
    np.testing.assert_array_equal(out, expected)
    assert np.count_nonzero(out == 3) == 4


def test_inputs_are_not_modified(chain):
    original, corrected, decisions = chain
    before = original.copy(), corrected.copy(), decisions.copy()
    original.setflags(write=False)
    corrected.setflags(write=False)
    out = apply_decisions(original, corrected, decisions, ["bc"])
    assert out.flags.writeable
    np.testing.assert_array_equal(original, before[0])
    np.testing.assert_array_equal(corrected, before[1])
    pd.testing.assert_frame_equal(decisions, before[2])


def test_huge_label_ids_are_relabelled_without_a_dense_table():
    original = np.zeros((3, 2, 2), dtype=np.uint64)
    big = np.uint64(2**62)
    original[0] = big
    original[2] = big + np.uint64(1)
    corrected = np.full_like(original, big)
    decisions = _decisions(
        [dict(candidate="x", cell_a=int(big), cell_b=int(big) + 1, z_a_last=0, z_b_first=2,
              merged_into=int(big), filled_voxels=4)]
    )  # fmt: skip
    np.testing.assert_array_equal(apply_decisions(original, corrected, decisions, ["x"]), corrected)
    np.testing.assert_array_equal(apply_decisions(original, corrected, decisions, []), original)


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (["zz"], ValueError, r"not in decisions: \['zz'\]"),
        (["no"], ValueError, r"did not merge: \['no'\]"),
        ("ab", TypeError, "collection of candidate ids"),
        (3, TypeError, "got int 3"),
    ],
)
def test_bad_accepted_ids(chain, ids, error, match):
    original, corrected, decisions = chain
    with pytest.raises(error, match=match):
        apply_decisions(original, corrected, decisions, ids)


def test_bad_volumes_and_tables(chain):
    original, corrected, decisions = chain
    with pytest.raises(ValueError, match=r"original has shape \(5, 4, 4\) but corrected has"):
        apply_decisions(original, corrected[:4], decisions, [])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['filled_voxels'\]"):
        apply_decisions(original, corrected, decisions.drop(columns="filled_voxels"), [])
    with pytest.raises(TypeError, match="got dict"):
        apply_decisions(original, corrected, decisions.to_dict(), [])
    with pytest.raises(TypeError, match="integer"):
        apply_decisions(original.astype(float), corrected, decisions, [])


def test_review_order_puts_uncertain_first():
    decisions = pd.DataFrame(
        {
            "probability": [0.9, 0.45, 0.2, 0.6, 0.99],
            # The last pair was judged again after merging above it: 0.52 decides.
            "probability_rejudged": [np.nan, np.nan, np.nan, np.nan, 0.52],
        },
        index=pd.Index(["a", "b", "c", "d", "e"], name="candidate"),
    )
    # |p - 0.5| = 0.4, 0.05, 0.3, 0.1, 0.02
    assert list(review_order(decisions)) == ["e", "b", "d", "c", "a"]
    with pytest.raises(ValueError, match="'probability' column"):
        review_order(decisions.drop(columns="probability"))


def test_round_trip_with_a_real_corrector():
    from sklearn.linear_model import LogisticRegression

    from sklearn_overseg.classification.pipeline import make_default_pipeline
    from sklearn_overseg.correction.corrector import SegmentationCorrector
    from sklearn_overseg.synthesis.datasets import make_tissue
    from sklearn_overseg.synthesis.flaws import synthesize_flaws

    gt = make_tissue((24, 64, 64), cell_size=(16, 16, 16), random_state=0)
    flawed = synthesize_flaws(gt, random_state=1).labels
    train = make_tissue((24, 64, 64), cell_size=(16, 16, 16), random_state=5)
    corrector = SegmentationCorrector(
        classifier=make_default_pipeline(classifier=LogisticRegression(max_iter=1000)),
        n_repeats=1,
        random_state=0,
    ).fit([train])
    corrected, decisions = corrector.correct(flawed)
    merged = decisions.index[decisions["merged"]]
    assert len(merged) >= 3
    assert decisions.loc[merged, "filled_voxels"].gt(0).all()

    np.testing.assert_array_equal(apply_decisions(flawed, corrected, decisions, merged), corrected)
    np.testing.assert_array_equal(apply_decisions(flawed, corrected, decisions, []), flawed)

    rejected = merged[0]
    row = decisions.loc[rejected]
    out = apply_decisions(flawed, corrected, decisions, merged.drop(rejected))
    was_b = flawed == row.cell_b
    np.testing.assert_array_equal(out[was_b], row.cell_b)  # cell B is back
    changed = out != corrected
    # Exactly cell B and the voxels filled into its gap differ from the corrected volume.
    assert np.count_nonzero(changed) == np.count_nonzero(was_b) + row.filled_voxels
    np.testing.assert_array_equal(out[changed & ~was_b], 0)
    gap_z = np.nonzero(changed & ~was_b)[0]
    assert row.z_a_last < gap_z.min() and gap_z.max() < row.z_b_first

"""Accuracy of the contact-mode corrector on held-out dense tissue cut by tilted planes.

The held-out volume is the bottom half (y >= 163) of ``plant_tissue_a`` at native
anisotropy, which ``scripts/train_contact.py`` leaves out. Flaws: 20 % of the eligible
cells cut in two by a random plane tilted up to 60° from z
(``synthesize_flaws(split_fraction=0, tilted_fraction=0.2, hard_negatives=False)``),
seeds 0, 1, 2. Every touching pair that is not a cut is a genuinely different pair of
cells: merging it is a false merge.

Reported per method, summed or averaged over the seeds: pair precision / recall / F1 of
the merges (:func:`sklearn_overseg.evaluation.metrics.pair_scores`), the number of genuinely
different touching pairs merged, and the mAP of the merged volume. Methods:

- **model**: the trained contact corrector (``SegmentationCorrector.correct``, its
  threshold 0.5);
- **model, prior-corrected**: the same probabilities with the threshold
  ``n_neg / (n_neg + n_pos)`` of the training pairs. The MLPs are trained with balanced
  class weights, which inflate the odds of a positive by ``n_neg / n_pos`` (about 30 in
  dense tissue); this threshold undoes that. It comes from the training counts only,
  not from the held-out volume;
- **contact area > t**: merge every candidate pair whose contact area (``contact_px``,
  shared voxel faces) exceeds ``t``; ``t`` maximises the pair F1 on the training
  volumes' tables (the same flaw draws as the model's training, screened for adjacency
  only);
- **merge every touching pair**: all candidates.

Times: the adjacency pass (:func:`~sklearn_overseg.screening.contact.contact_pairs`), adjacency +
re-slicing (the model's ``ContactScreener.screen``) and the whole ``correct`` call.
Issue targets: precision >= 0.95, recall >= 0.85.

Run from the repository root::

    python benchmarks/accuracy_contact.py [--model FOLDER] \
        [--data FOLDER] [--write docs/accuracy_contact.md [--overwrite]]

``--model`` defaults to the shipped contact model (``sklearn_overseg/models/contact``).

The real data is found through ``OVERSEG_DATA_DIR`` or ``shared/data`` beside the checkout
unless ``--data`` names it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from _data import add_data_option, data_folder  # noqa: E402
from train_contact import TILTED_FRACTION, TISSUE_SPLIT_Y, training_volumes  # noqa: E402

from sklearn_overseg.evaluation.metrics import mean_average_precision, pair_scores  # noqa: E402
from sklearn_overseg.io.persistence import load_estimator, load_metadata  # noqa: E402
from sklearn_overseg.pretrained import CONTACT_DIR  # noqa: E402
from sklearn_overseg.screening.cells import CellIndex  # noqa: E402
from sklearn_overseg.screening.contact import contact_pairs  # noqa: E402
from sklearn_overseg.synthesis.flaws import synthesize_flaws  # noqa: E402
from sklearn_overseg.synthesis.training import make_training_table  # noqa: E402

SEEDS = (0, 1, 2)
TARGET_PRECISION = 0.95
TARGET_RECALL = 0.85


class _AdjacencyScreener:
    """Touching pairs and their contact areas only: all the area baseline needs."""

    def __init__(self, min_size: int, min_contact: int) -> None:
        self.min_size = min_size
        self.min_contact = min_contact

    def screen(self, volume, *, volume_id: str = "0", spacing=None) -> pd.DataFrame:
        index = CellIndex.from_volume(np.asarray(volume))
        pairs = contact_pairs(index)
        sizes = index.voxel_counts
        p, q = pairs["pos_p"].to_numpy(), pairs["pos_q"].to_numpy()
        keep = (pairs["contact_px"].to_numpy() >= self.min_contact) & (
            np.minimum(sizes[p], sizes[q]) >= self.min_size
        )
        a, b = index.labels[p[keep]], index.labels[q[keep]]
        return pd.DataFrame(
            {
                "volume": volume_id,
                "cell_a": a,
                "cell_b": b,
                "contact_px": pairs["contact_px"].to_numpy()[keep],
            },
            index=[f"{volume_id}:{x}-{y}" for x, y in zip(a, b, strict=True)],
        )


def tune_area_threshold(corrector, data: Path, n_repeats: int) -> tuple[int, float, int]:
    """Contact area threshold of best pair F1 on the training tables (same flaw draws)."""
    screener = corrector.screener_
    table, y = make_training_table(
        training_volumes(data),
        screener=_AdjacencyScreener(screener.min_size, screener.min_contact),
        split_fraction=corrector.split_fraction,
        tilted_fraction=corrector.tilted_fraction,
        n_repeats=n_repeats,
        z_subsample=tuple(corrector.z_subsample),
        relabel_fraction=corrector.relabel_fraction,
        random_state=corrector.random_state,
    )
    area = table["contact_px"].to_numpy()
    y = y.to_numpy()
    # Merging "area > t" for every distinct t: cumulative counts from the largest area.
    order = np.argsort(-area, kind="stable")
    tp = np.cumsum(y[order])
    n_pred = np.arange(1, len(y) + 1)
    f1 = 2 * tp / (n_pred + y.sum())
    # Only cut points between distinct areas are realisable thresholds.
    last = np.r_[area[order][1:] != area[order][:-1], True]
    best = int(np.argmax(np.where(last, f1, -1.0)))
    threshold = int(area[order][best + 1]) if best + 1 < len(area) else 0
    return threshold, float(f1[best]), len(y)


def apply_merges(labels: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Relabel every merged pair (transitively) to one id, through a lookup table."""
    parent = np.arange(int(labels.max()) + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    lut = np.array([find(i) for i in range(len(parent))])
    return lut[labels]


def prior_corrected_threshold(corrector) -> float:
    """Probability threshold at which balanced-weight odds equal real-prior odds of 1."""
    balance = corrector.training_balance_
    return balance[0] / (balance[0] + balance[1])


def evaluate(corrector, threshold: int, ground_truth: np.ndarray, seed: int) -> list[dict]:
    flawed = synthesize_flaws(
        ground_truth,
        split_fraction=0.0,
        tilted_fraction=TILTED_FRACTION,
        hard_negatives=False,
        random_state=seed,
    )
    labels = flawed.labels
    prior_threshold = prior_corrected_threshold(corrector)
    truth = list(zip(flawed.merges.cell_a, flawed.merges.cell_b, strict=True))
    t0 = time.perf_counter()
    contact_pairs(CellIndex.from_volume(labels))
    t_adjacency = time.perf_counter() - t0
    t0 = time.perf_counter()
    screened = corrector.screener_.screen(labels)
    t_screen = time.perf_counter() - t0
    t0 = time.perf_counter()
    corrected, decisions = corrector.correct(labels)
    t_correct = time.perf_counter() - t0
    candidates = list(zip(decisions.cell_a, decisions.cell_b, strict=True))
    true_set = {tuple(sorted(map(int, p))) for p in truth}
    found = sum(tuple(sorted(map(int, p))) in true_set for p in candidates)
    negatives = len(candidates) - found
    methods = {
        "model": (
            list(
                zip(
                    decisions.cell_a[decisions.merged],
                    decisions.cell_b[decisions.merged],
                    strict=True,
                )
            ),
            corrected,
        ),
        # The MLPs are trained with balanced class weights, which multiply the odds of a
        # positive by n_neg / n_pos; this threshold undoes that (from training counts only).
        f"model, p > {prior_threshold:.3f} (prior-corrected)": (
            [
                p
                for p, prob in zip(candidates, decisions.probability, strict=True)
                if prob > prior_threshold
            ],
            None,
        ),
        f"contact area > {threshold}": (
            [
                p
                for p, area in zip(
                    candidates, screened["contact_px"].reindex(decisions.index), strict=True
                )
                if area > threshold
            ],
            None,
        ),
        "merge every touching pair": (candidates, None),
    }
    rows = []
    for name, (merged, volume) in methods.items():
        scores = pair_scores(merged, truth)
        if volume is None:
            volume = apply_merges(labels, merged)
        rows.append(
            {
                "method": name,
                "seed": seed,
                "cuts": len(truth),
                "cuts screened": found,
                "touching negatives": negatives,
                "precision": scores["precision"],
                "recall": scores["recall"],
                "f1": scores["f1"],
                "merged": scores["tp"] + scores["fp"],
                "wrong merges": scores["fp"],
                "map": mean_average_precision(volume, ground_truth),
                "map flawed": mean_average_precision(labels, ground_truth),
                "adjacency s": t_adjacency,
                "adjacency + reslice s": t_screen,
                "correct s": t_correct,
                "screened pairs": len(screened),
            }
        )
    return rows


def to_markdown(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|---" * len(frame.columns) + "|"]
    # Column by column: iterrows would upcast integer columns to float in mixed rows.
    columns = [[formats.get(c, "{}").format(v) for v in frame[c].tolist()] for c in frame]
    for cells in zip(*columns, strict=True):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame(rows)
    by = frame.groupby("method", sort=False)
    accuracy = by.agg(
        runs=("seed", "size"),
        cuts=("cuts", "sum"),
        negatives=("touching negatives", "sum"),
        P=("precision", "mean"),
        R=("recall", "mean"),
        F1=("f1", "mean"),
        merged=("merged", "sum"),
        wrong=("wrong merges", "sum"),
        map_flawed=("map flawed", "mean"),
        map=("map", "mean"),
    ).reset_index()
    accuracy.columns = [
        "method",
        "runs",
        "tilted cuts",
        "touching negatives",
        "P",
        "R",
        "F1",
        "pairs merged",
        "different cells merged",
        "mAP flawed",
        "mAP after",
    ]
    model = frame[frame["method"] == "model"]
    timing = pd.DataFrame(
        {
            "seed": model["seed"],
            "touching pairs": model["screened pairs"],
            "adjacency (s)": model["adjacency s"],
            "adjacency + re-slicing (s)": model["adjacency + reslice s"],
            "whole correct (s)": model["correct s"],
        }
    )
    return accuracy, timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_option(parser)
    parser.add_argument(
        "--model", type=Path, default=CONTACT_DIR, help="model directory (default: shipped)"
    )
    parser.add_argument("--write", type=Path, default=None, help="write the tables (Markdown)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.write and args.write.exists() and not args.overwrite:
        parser.error(f"{args.write} exists; pass --overwrite")
    args.data = data_folder(parser, args.data)

    corrector = load_estimator(args.model)
    meta = load_metadata(args.model) or {}
    n_repeats = int(meta.get("n_repeats", corrector.n_repeats))
    t0 = time.perf_counter()
    threshold, train_f1, n_train = tune_area_threshold(corrector, args.data, n_repeats)
    print(
        f"contact-area threshold {threshold} (training F1 {train_f1:.3f} on {n_train} pairs, "
        f"{time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    tissue = tifffile.imread(args.data / "plant_tissue_a" / "labels_gt.tif")
    held_out = tissue[:, TISSUE_SPLIT_Y:]
    rows = []
    for seed in SEEDS:
        rows += evaluate(corrector, threshold, held_out, seed)
        print(pd.DataFrame(rows[-3:]).drop(columns=["seed"]).to_string(), flush=True)
    accuracy, timing = summarise(rows)
    fmt = {c: "{:.3f}" for c in ("P", "R", "F1", "mAP flawed", "mAP after")}
    fmt.update({c: "{:.1f}" for c in timing.columns if c.endswith("(s)")})
    report = "\n".join(
        [
            f"## Tilted cuts, held-out `plant_tissue_a[:, {TISSUE_SPLIT_Y}:]` "
            f"({'×'.join(map(str, held_out.shape))}, native anisotropy)",
            "",
            f"20 % of the cells cut by random planes (up to 60° from z), seeds {list(SEEDS)}; "
            f"model `{args.model.name}` ({meta.get('training_pairs', '?')} training pairs). "
            f"Contact-area threshold tuned on the training tables: {threshold} voxel faces. "
            f"P, R, F1, mAP: mean over seeds; counts: sums. Targets: P >= {TARGET_PRECISION}, "
            f"R >= {TARGET_RECALL}.",
            "",
            to_markdown(accuracy, fmt),
            "",
            "Timings (model's `ContactScreener`, one core):",
            "",
            to_markdown(timing, fmt),
            "",
        ]
    )
    print(report)
    if args.write:
        args.write.write_text(report + "\n")


if __name__ == "__main__":
    main()

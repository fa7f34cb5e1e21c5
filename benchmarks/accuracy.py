"""Accuracy of the corrector on volumes it was not trained on; prints a Markdown table.

Two evaluations:

1. **Held out** (the shipped model): the bottom half (y >= 163) of ``plant_tissue_a`` and
   the right half (x >= 64) of ``plant_ovule``, which ``scripts/train_pretrained.py``
   leaves out, at native anisotropy and at z/4 (every 4th layer, all four phases).
2. **Leave the volume out** (the bar of the paper's public scripts): a model trained with
   the same recipe *without any of* ``plant_tissue_a`` corrects the whole
   ``plant_tissue_a[::4]`` (38×326×283, 4:1:1).

Flaws: 30 % of the tall cells split by a blanked layer plus every blankable stacked-cell
interface blanked as a hard negative (``synthesize_flaws``), three seeds each. Reported:
pair precision / recall / F1 of the merges, mAP before and after, the time of the whole
correction, next to "merge every candidate" (threshold 0) and "merge none".

Run from the repository root::

    python benchmarks/accuracy.py [--data FOLDER] [--write docs/accuracy.md]

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

from sklearn_overseg.classification.pipeline import make_default_pipeline
from sklearn_overseg.correction.corrector import SegmentationCorrector
from sklearn_overseg.evaluation.metrics import mean_average_precision, pair_scores
from sklearn_overseg.pretrained import load_pretrained
from sklearn_overseg.synthesis.flaws import synthesize_flaws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _data import add_data_option, data_folder
from train_pretrained import OVULE_SPLIT_X, TISSUE_SPLIT_Y, training_volumes

SEEDS = (0, 1, 2)


def evaluate(corrector, ground_truth: np.ndarray, seed: int) -> dict:
    """Flaw a ground truth, correct it three ways, and score the merges."""
    flawed = synthesize_flaws(
        ground_truth, split_fraction=0.3, hard_negatives=True, random_state=seed
    )
    truth = list(zip(flawed.merges.cell_a, flawed.merges.cell_b, strict=True))
    t0 = time.perf_counter()
    corrected, decisions = corrector.correct(flawed.labels)
    seconds = time.perf_counter() - t0
    merged = decisions[decisions.merged]
    model = pair_scores(list(zip(merged.cell_a, merged.cell_b, strict=True)), truth)
    every = pair_scores(list(zip(decisions.cell_a, decisions.cell_b, strict=True)), truth)
    threshold = corrector.threshold
    corrector.set_params(threshold=0.0)
    merged_all, _ = corrector.correct(flawed.labels)
    corrector.set_params(threshold=threshold)
    return {
        "splits": len(truth),
        "hard_negatives": len(flawed.hard_negatives),
        "candidates": len(decisions),
        "precision": model["precision"],
        "recall": model["recall"],
        "f1": model["f1"],
        "all_precision": every["precision"],
        "all_f1": every["f1"],
        "map_flawed": mean_average_precision(flawed.labels, ground_truth),
        "map_corrected": mean_average_precision(corrected, ground_truth),
        "map_merge_all": mean_average_precision(merged_all, ground_truth),
        "seconds": seconds,
    }


def variants(name: str, volume: np.ndarray):
    yield f"{name}, native", [volume]
    yield f"{name}, z/4", [volume[phase::4] for phase in range(4)]


def run(corrector, cases) -> pd.DataFrame:
    rows = []
    for label, volumes in cases:
        results = [evaluate(corrector, v, seed) for v in volumes for seed in SEEDS]
        summary = pd.DataFrame(results).agg(
            {
                "splits": "sum",
                "hard_negatives": "sum",
                "candidates": "sum",
                "precision": "mean",
                "recall": "mean",
                "f1": "mean",
                "all_precision": "mean",
                "all_f1": "mean",
                "map_flawed": "mean",
                "map_corrected": "mean",
                "map_merge_all": "mean",
                "seconds": "mean",
            }
        )
        summary = summary.to_frame().T.assign(case=label, runs=len(results))
        rows.append(summary)
        print(summary.to_string(), flush=True)
    return pd.concat(rows).set_index("case")


def to_markdown(table: pd.DataFrame) -> str:
    cols = {
        "runs": "runs",
        "splits": "splits",
        "hard_negatives": "hard neg.",
        "candidates": "candidates",
        "precision": "P",
        "recall": "R",
        "f1": "F1",
        "all_precision": "P (merge all)",
        "all_f1": "F1 (merge all)",
        "map_flawed": "mAP flawed (= merge none)",
        "map_corrected": "mAP corrected",
        "map_merge_all": "mAP merge all",
        "seconds": "s / volume",
    }
    shown = table[list(cols)].rename(columns=cols)
    lines = [
        "| case | " + " | ".join(shown.columns) + " |",
        "|---" * (len(shown.columns) + 1) + "|",
    ]
    for case, row in shown.iterrows():
        cells = [
            f"{v:.0f}"
            if k in ("runs", "splits", "hard neg.", "candidates")
            else f"{v:.3f}"
            if k != "s / volume"
            else f"{v:.2f}"
            for k, v in row.items()
        ]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Accuracy on held-out volumes.")
    add_data_option(parser)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--skip-leave-out", action="store_true")
    parser.add_argument("--write", type=Path, default=None, help="write the tables (Markdown)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.write and args.write.exists() and not args.overwrite:
        parser.error(f"{args.write} exists; pass --overwrite")
    args.data = data_folder(parser, args.data)

    tissue = tifffile.imread(args.data / "plant_tissue_a" / "labels_gt.tif")
    ovule = tifffile.imread(args.data / "plant_ovule" / "labels_gt.tif")
    shipped = load_pretrained(args.model)
    held_out = run(
        shipped,
        [
            *variants("plant_tissue_a bottom half", tissue[:, TISSUE_SPLIT_Y:]),
            *variants("plant_ovule right half", ovule[:, :, OVULE_SPLIT_X:]),
        ],
    )
    text = ["## Held-out halves, shipped model", "", to_markdown(held_out), ""]

    if not args.skip_leave_out:
        volumes = {
            k: v
            for k, v in training_volumes(args.data).items()
            if not k.startswith("plant_tissue_a")
        }
        t0 = time.perf_counter()
        leave_out = SegmentationCorrector(
            classifier=make_default_pipeline(n_ensemble=5, random_state=0),
            z_subsample=(1, 4),
            n_repeats=3,
            random_state=0,
        ).fit(volumes)
        print(f"leave-out model trained in {time.perf_counter() - t0:.0f} s", flush=True)
        whole = run(
            leave_out,
            [
                ("plant_tissue_a whole, z/4 (38×326×283)", [tissue[::4]]),
                ("plant_tissue_a whole, native", [tissue]),
            ],
        )
        text += ["## Whole plant_tissue_a, model trained without it", "", to_markdown(whole), ""]

    report = "\n".join(text)
    print(report)
    if args.write:
        from sklearn_overseg.io.volumes import atomic_output

        # The report is regenerated on purpose: an existing page is replaced, except for
        # the stitched-volume section that accuracy_stitched.py keeps on the same page.
        kept = ""
        if args.write.is_file():
            old = args.write.read_text(encoding="utf-8")
            start = old.find("<!-- accuracy_stitched: start")
            kept = "\n" + old[start:] if start != -1 else ""
        with atomic_output(args.write, overwrite=True) as tmp:
            tmp.write_text(report + "\n" + kept, encoding="utf-8")


if __name__ == "__main__":
    main()

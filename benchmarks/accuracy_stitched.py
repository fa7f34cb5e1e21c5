"""Repair of stitched 2D→3D segmentations on held-out volumes; prints a Markdown table.

What a per-slice 2D segmenter followed by IoU stitching makes of a ground truth is
synthesised by :func:`sklearn_overseg.synthesis.stitched_flaws.synthesize_stitched`: masks below a
minimum area lost, a share of masks missed, boundaries eroded or dilated by a pixel
(30 % of the masks), cross-sections cut in two (2 %), then linked layer to layer by
:func:`sklearn_overseg.stitch.stitch_slices` at an IoU threshold. The corrector repairs the
result and :func:`sklearn_overseg.evaluation.metrics.repair_scores` scores it against the ground
truth alone (no list of synthetic merges): the **owner** of a stitched label is the true
cell holding most of its voxels.

* split links: per true cell, the labels it owns minus one, summed;
* repaired: split links closed by the correction (count and share of split links);
* false joins: distinct owners joined into one corrected label, minus one, summed (count
  and share of split links);
* mAP (IoU 0.25/0.5/0.75, TP counted once) of the stitched volume, the corrected volume
  and the merge-only ceiling (every label relabelled to its owner).

Volumes the shipped model never saw (``scripts/train_pretrained.py`` trains on
``plant_tissue_a`` y < 163, ``plant_ovule`` x < 64, ``plant_patch`` and synthetic tissue):
the bottom half of ``plant_tissue_a`` (y >= 163) at native z and at z/4, the right half of
``plant_ovule`` (x >= 64) and ``ovule_nuclei`` crops, each under a grid of fault settings
(:data:`GRID`, fixed seeds) covering miss rates 0–10 %, minimum areas 10–60 px and IoU
thresholds 0.1–0.5. Totals rows sum the counts (shares are of the summed split links) and
average the mAPs, over the whole grid and per z-sampling. Targets (issue 11): >= 90 % of
split links repaired, false joins <= 1 % of split links, corrected mAP within 0.05 of the
ceiling.

The data folder is ``--data``, else the one
:func:`~sklearn_overseg.synthesis.datasets.find_data_dir` finds (``$OVERSEG_DATA_DIR``, else
``shared/data`` beside the checkout). Volumes not found there are skipped (and listed); with none at
all, a synthetic tissue from :func:`~sklearn_overseg.synthesis.datasets.make_tissue` stands in, so
the script also runs on a fresh clone.

Run from the repository root::

    python benchmarks/accuracy_stitched.py                      # shipped model, full grid
    python benchmarks/accuracy_stitched.py --quick              # smoke run: one setting, crops
    python benchmarks/accuracy_stitched.py --model DIR --screen both --max-gap 3
    python benchmarks/accuracy_stitched.py --write /tmp/stitched.md [--overwrite]
    python benchmarks/accuracy_stitched.py --update-section docs/accuracy.md

``--model`` takes a model directory (``save_estimator`` / ``overseg train -o``);
``--screen`` and ``--max-gap`` take the values of ``overseg correct`` and build the
corrector exactly as that command does. ``--update-section`` replaces only the block
between this script's markers in an existing page (appending it when absent).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from train_pretrained import OVULE_SPLIT_X, TISSUE_SPLIT_Y  # noqa: E402

from sklearn_overseg.evaluation.metrics import repair_scores  # noqa: E402
from sklearn_overseg.synthesis.stitched_flaws import synthesize_stitched  # noqa: E402

TARGET_REPAIRED = 0.90
TARGET_FALSE_JOINS = 0.01
TARGET_MAP_GAP = 0.05
#: The nuclei crops evaluated (of the five in ``ovule_nuclei``).
NUCLEI_CROPS = ("1135", "1170")
#: Largest crop (z, y, x) of every volume in ``--quick`` mode.
QUICK_CROP = (32, 96, 96)
SECTION_START = "<!-- accuracy_stitched: start (benchmarks/accuracy_stitched.py) -->"
SECTION_END = "<!-- accuracy_stitched: end -->"


@dataclass(frozen=True)
class Faults:
    """One setting of the 2D segmenter's faults and of the stitching."""

    name: str
    miss_rate: float
    min_area: int
    iou_threshold: float
    boundary_rate: float = 0.3
    cut_rate: float = 0.02

    def describe(self) -> str:
        return (
            f"{self.name}: miss {self.miss_rate:.0%}, min area {self.min_area} px, "
            f"IoU {self.iou_threshold:g}"
        )


#: The fault grid; setting ``i`` is drawn with seed ``i`` on every volume.
GRID = (
    Faults("no misses", miss_rate=0.0, min_area=10, iou_threshold=0.25),
    Faults("typical", miss_rate=0.03, min_area=30, iou_threshold=0.25),
    Faults("strict link", miss_rate=0.05, min_area=20, iou_threshold=0.5),
    Faults("poor", miss_rate=0.10, min_area=60, iou_threshold=0.1),
)
QUICK_GRID = (GRID[1],)


@dataclass(frozen=True)
class Case:
    """A held-out ground truth and the z-subsampling its stitched copies are made at."""

    name: str
    ground_truth: np.ndarray
    z_subsample: int = 1


def default_data_dir() -> Path | None:
    """The data folder :func:`~sklearn_overseg.synthesis.datasets.find_data_dir` finds, or None."""
    from sklearn_overseg.synthesis.datasets import find_data_dir

    return find_data_dir()


def held_out_cases(data: Path, *, quick: bool = False) -> tuple[list[Case], list[str]]:
    """The held-out volumes found under ``data``, and a note for each one missing."""
    import tifffile

    cases: list[Case] = []
    skipped: list[str] = []

    def read(relative: str):
        path = data / relative
        if not path.is_file():
            skipped.append(f"{relative} (not found in {data})")
            return None
        return tifffile.imread(path)

    tissue = read("plant_tissue_a/labels_gt.tif")
    if tissue is not None:
        bottom = tissue[:, TISSUE_SPLIT_Y:]
        cases.append(Case(f"plant_tissue_a y≥{TISSUE_SPLIT_Y}, native z", bottom, 1))
        cases.append(Case(f"plant_tissue_a y≥{TISSUE_SPLIT_Y}, z/4", bottom, 4))
    ovule = read("plant_ovule/labels_gt.tif")
    if ovule is not None:
        cases.append(Case(f"plant_ovule x≥{OVULE_SPLIT_X}, native z", ovule[:, :, OVULE_SPLIT_X:]))
    for crop in NUCLEI_CROPS:
        nuclei = read(f"ovule_nuclei/{crop}_labels_gt.tif")
        if nuclei is not None:
            cases.append(Case(f"ovule_nuclei {crop}, native z", nuclei))
    if quick:
        # A z/4 case keeps 4x the layers of its crop, so that it still has QUICK_CROP[0].
        cases = [
            Case(
                c.name,
                c.ground_truth[: QUICK_CROP[0] * c.z_subsample, : QUICK_CROP[1], : QUICK_CROP[2]],
                c.z_subsample,
            )
            for c in cases
        ]
    return cases, skipped


def synthetic_case(*, quick: bool = False) -> Case:
    """Stand-in tissue when no shared volume is found (a seed no shipped model trained on)."""
    from sklearn_overseg.synthesis.datasets import make_tissue

    shape, size = ((16, 64, 64), (12, 24, 24)) if quick else ((48, 160, 160), (16, 32, 32))
    volume = make_tissue(shape, cell_size=size, random_state=7)
    return Case("synthetic tissue (make_tissue, seed 7), native z", volume)


def screen_choices() -> list[str]:
    """The values of ``overseg correct --screen``, so both stay in step."""
    from sklearn_overseg.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in commands.choices["correct"]._actions if "--screen" in a.option_strings)
    return list(action.choices)


def make_corrector(
    model: Path | None, screen: str, max_gap: int | None, threshold: float | None = None
):
    """The corrector ``overseg correct [--model M] --screen S [--max-gap G]`` would use."""
    from sklearn.base import clone

    from sklearn_overseg.cli._commands import _load_model, _screener, _with_max_gap

    corrector = _load_model(model, screen)
    if model is not None and screen != "axial":
        # A user's model judges whatever screening is asked for.
        corrector.screener_ = clone(_screener(screen, max_gap))
    elif max_gap is not None:
        corrector.screener_ = _with_max_gap(corrector.screener_, max_gap)
    # Unset, the model keeps the thresholds it was tuned with (one per kind).
    return corrector if threshold is None else corrector.set_params(threshold=threshold)


#: Kinds of split link, by how the two consecutive pieces of one true cell lie in z.
LINK_KINDS = ("shared layer", "gap 0", "gap 1", "gap ≥ 2")
ONE_LAYER = "one-layer piece (any gap)"


def link_kinds(flawed: np.ndarray, corrected: np.ndarray, ground_truth: np.ndarray) -> dict:
    """Split links by kind, and how many of each the correction closed.

    The pieces (stitched labels) a true cell owns are ordered by first layer; each pair of
    consecutive pieces is one link, of kind "shared layer" when their z-ranges overlap,
    else "gap g" with ``g`` missing layers between them. A link is closed when both
    pieces end in one corrected label. Links with a piece one layer tall are counted
    again under :data:`ONE_LAYER`.
    """
    from scipy import ndimage

    from sklearn_overseg.synthesis.training import majority_labels

    owner = majority_labels(flawed, ground_truth)
    after = majority_labels(flawed, corrected)
    boxes = ndimage.find_objects(flawed)
    pieces: dict[int, list[tuple[int, int, int]]] = {}
    for label, cell in owner.items():
        if cell != 0:
            box = boxes[label - 1]
            pieces.setdefault(cell, []).append((box[0].start, box[0].stop - 1, label))
    counts = {kind: [0, 0] for kind in (*LINK_KINDS, ONE_LAYER)}
    for chain in pieces.values():
        chain.sort()
        for (top_a, bottom_a, a), (top_b, bottom_b, b) in pairwise(chain):
            gap = top_b - bottom_a - 1
            kind = "shared layer" if gap < 0 else f"gap {gap}" if gap < 2 else "gap ≥ 2"
            closed = int(after[a] == after[b])
            kinds = [kind] + ([ONE_LAYER] if top_a == bottom_a or top_b == bottom_b else [])
            for k in kinds:
                counts[k][0] += 1
                counts[k][1] += closed
    return {
        f"{k} {what}": v[i] for k, v in counts.items() for i, what in enumerate(("links", "closed"))
    }


def describe_model(model: Path | None, screen: str) -> str:
    """Which model judged the candidates: its directory and its number of training pairs."""
    from sklearn_overseg.io.persistence import load_metadata
    from sklearn_overseg.pretrained import PRETRAINED_DIR

    path = Path(model) if model is not None else PRETRAINED_DIR
    try:
        pairs = (load_metadata(path) or {}).get("training_pairs", "?")
    except (OSError, ValueError):
        pairs = "?"
    if model is not None:
        return f"`{path}` ({pairs} training pairs)"
    if screen != "axial":
        return f"shipped, `load_pretrained(kind={screen!r})`"
    return f"shipped `sklearn_overseg/models/{path.name}` ({pairs} training pairs)"


def evaluate(corrector, case: Case, faults: Faults, seed: int) -> dict:
    """Stitch a flawed copy of one ground truth, correct it and score the repair."""
    stitched = synthesize_stitched(
        case.ground_truth,
        min_area=faults.min_area,
        miss_rate=faults.miss_rate,
        boundary_rate=faults.boundary_rate,
        cut_rate=faults.cut_rate,
        iou_threshold=faults.iou_threshold,
        z_subsample=case.z_subsample,
        random_state=seed,
    )
    t0 = time.perf_counter()
    corrected, decisions = corrector.correct(stitched.labels)
    seconds = time.perf_counter() - t0
    scores = repair_scores(stitched.labels, corrected, stitched.ground_truth)
    kinds = link_kinds(stitched.labels, corrected, stitched.ground_truth)
    return {
        "volume": case.name,
        "z": case.z_subsample,
        **{k: v for k, v in asdict(faults).items()},
        "seed": seed,
        "phase": stitched.settings["phase"],
        "layers": stitched.labels.shape[0],
        "labels": int(np.count_nonzero(np.unique(stitched.labels))),
        "candidates": len(decisions),
        "merged": int(decisions["merged"].sum()) if len(decisions) else 0,
        **scores,
        "seconds": seconds,
        **kinds,
    }


def run(corrector, cases: Sequence[Case], grid: Sequence[Faults] = GRID) -> pd.DataFrame:
    """Every case under every fault setting (setting ``i`` with seed ``i``), one row each."""
    rows = []
    for case in cases:
        for seed, faults in enumerate(grid):
            row = evaluate(corrector, case, faults, seed)
            rows.append(row)
            print(
                f"{case.name} | {faults.describe()} | split links {row['split_links']}, "
                f"repaired {row['repaired']}, false joins {row['false_joins']}, mAP "
                f"{row['mAP_input']:.3f} -> {row['mAP_corrected']:.3f} -> "
                f"{row['mAP_ceiling']:.3f} ({row['seconds']:.1f} s)",
                flush=True,
            )
    return pd.DataFrame(rows)


def totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Summed counts and mean mAPs over the whole grid, then per z-sampling present."""
    groups = [("all", frame)]
    if frame["z"].nunique() > 1:
        groups += [
            ("native z" if z == 1 else f"z/{z}", part) for z, part in frame.groupby("z", sort=True)
        ]
    rows = []
    for name, part in groups:
        links = int(part["split_links"].sum())
        repaired = int(part["repaired"].sum())
        joins = int(part["false_joins"].sum())
        row = {
            "total": name,
            "runs": len(part),
            "labels": int(part["labels"].sum()),
            "candidates": int(part["candidates"].sum()),
            "split_links": links,
            "repaired": repaired,
            "false_joins": joins,
            "repaired_fraction": repaired / links if links else 0.0,
            "false_join_fraction": joins / links if links else 0.0,
            "mAP_input": part["mAP_input"].mean(),
            "mAP_corrected": part["mAP_corrected"].mean(),
            "mAP_ceiling": part["mAP_ceiling"].mean(),
            "seconds": part["seconds"].mean(),
        }
        row["targets_met"] = bool(
            row["repaired_fraction"] >= TARGET_REPAIRED
            and row["false_join_fraction"] <= TARGET_FALSE_JOINS
            and row["mAP_ceiling"] - row["mAP_corrected"] <= TARGET_MAP_GAP
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _counts(row) -> list[str]:
    return [
        f"{row['split_links']}",
        f"{row['repaired']} ({row['repaired_fraction']:.0%})",
        f"{row['false_joins']} ({row['false_join_fraction']:.1%})",
        f"{row['mAP_input']:.3f} → {row['mAP_corrected']:.3f} → {row['mAP_ceiling']:.3f}",
    ]


def kinds_markdown(frame: pd.DataFrame) -> str:
    """Split links and closed links by kind, summed per z-sampling."""
    parts = [("native z" if z == 1 else f"z/{z}", part) for z, part in frame.groupby("z")]
    head = "| kind of split link | " + " | ".join(f"{name}: closed / links" for name, _ in parts)
    lines = [head + " |", "|---" * (len(parts) + 1) + "|"]
    for kind in (*LINK_KINDS, ONE_LAYER):
        cells = []
        for _, part in parts:
            links, closed = int(part[f"{kind} links"].sum()), int(part[f"{kind} closed"].sum())
            share = f" ({closed / links:.0%})" if links else ""
            cells.append(f"{closed} / {links}{share}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The per-run table and the totals table, as GitHub Markdown."""
    head = (
        "| volume | faults | layers | labels | candidates | split links | repaired "
        "| false joins | mAP stitched → corrected → ceiling | s |"
    )
    lines = [head, "|---" * 10 + "|"]
    for _, row in frame.iterrows():
        faults = (
            f"{row['name']}: miss {row['miss_rate']:.0%}, min area {row['min_area']}, "
            f"IoU {row['iou_threshold']:g}"
        )
        cells = [row["volume"], faults, f"{row['layers']}", f"{row['labels']}"]
        cells += [f"{row['candidates']}", *_counts(row), f"{row['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| total | runs | labels | candidates | split links | repaired | false joins "
        "| mean mAP stitched → corrected → ceiling | targets met |",
        "|---" * 9 + "|",
    ]
    for _, row in summary.iterrows():
        cells = [f"**{row['total']}**", f"{row['runs']}", f"{row['labels']}"]
        cells += [f"{row['candidates']}", *_counts(row), "yes" if row["targets_met"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_section(page: str, section: str) -> str:
    """``page`` with the block between this script's markers replaced (appended if absent)."""
    block = f"{SECTION_START}\n{section.strip()}\n{SECTION_END}"
    start, end = page.find(SECTION_START), page.find(SECTION_END)
    if start == -1 and end == -1:
        return page.rstrip("\n") + "\n\n" + block + "\n"
    if start == -1 or end < start:
        raise ValueError(f"unbalanced markers {SECTION_START!r} / {SECTION_END!r} in the page.")
    return page[:start] + block + page[end + len(SECTION_END) :]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="real-data folder (default: $OVERSEG_DATA_DIR, else shared/data beside the checkout)",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="model directory (default: shipped)"
    )
    parser.add_argument("--screen", choices=screen_choices(), default="axial")
    parser.add_argument("--max-gap", type=int, default=None, help="most missing layers (axial)")
    parser.add_argument(
        "--threshold", type=float, default=None, help="default: the model's own (per kind)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one setting, crops")
    parser.add_argument("--note", default=None, help="a line under the title (--update-section)")
    parser.add_argument("--write", type=Path, default=None, help="write the tables (Markdown)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --write")
    parser.add_argument(
        "--update-section",
        type=Path,
        default=None,
        metavar="PAGE",
        help="replace this script's section of an existing Markdown page",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.write and args.write.exists() and not args.overwrite:
        parser.error(f"{args.write} exists; pass --overwrite")
    if args.update_section and not args.update_section.is_file():
        parser.error(f"--update-section: {args.update_section} is not an existing page")
    if args.screen == "contact" and args.max_gap is not None:
        parser.error("--max-gap bounds the axial screening; --screen contact has no gap")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must be between 0 and 1, got {args.threshold}")

    data = args.data if args.data is not None else default_data_dir()
    if data is None:
        cases, skipped = [], ["no real-data folder (set OVERSEG_DATA_DIR or pass --data)"]
    else:
        cases, skipped = held_out_cases(data, quick=args.quick)
    for note in skipped:
        print(f"skipped: {note}", flush=True)
    if not cases:
        print("no shared volume found: synthetic tissue stands in", flush=True)
        cases = [synthetic_case(quick=args.quick)]
    corrector = make_corrector(args.model, args.screen, args.max_gap, args.threshold)
    grid = QUICK_GRID if args.quick else GRID
    frame = run(corrector, cases, grid)
    summary = totals(frame)

    model = describe_model(args.model, args.screen)
    gap = "" if args.max_gap is None else f", max gap {args.max_gap}"
    command = ["python benchmarks/accuracy_stitched.py"] + (["--quick"] if args.quick else [])
    if args.model is not None:
        command += ["--model", str(args.model)]
    if args.screen != "axial":
        command += ["--screen", args.screen]
    if args.max_gap is not None:
        command += ["--max-gap", str(args.max_gap)]
    if args.threshold is not None:
        command += ["--threshold", f"{args.threshold:g}"]
    header = [
        f"Produced by `{' '.join(command)}` on {time.strftime('%Y-%m-%d')} "
        f"({os.cpu_count()} cores): model {model}, "
        f"screening `{args.screen}`{gap}, threshold "
        f"{corrector.threshold if args.threshold is None else f'{args.threshold:g}'}. "
        f"Faults: boundaries of 30 % of the masks eroded or dilated by a pixel, 2 % of the "
        f"cross-sections cut in two, plus the miss rate and minimum area of each setting; "
        f"stitched at the setting's IoU threshold; setting i drawn with seed i. Targets: "
        f"repaired >= {TARGET_REPAIRED:.0%}, false joins <= {TARGET_FALSE_JOINS:.0%} of the "
        f"split links, corrected mAP within {TARGET_MAP_GAP} of the ceiling.",
    ]
    if skipped:
        header.append("Skipped (not found): " + "; ".join(skipped) + ".")
    kinds_note = (
        "Split links by kind (consecutive pieces of one true cell, ordered by first layer; "
        "closed = both pieces in one corrected label):"
    )
    report = "\n\n".join([*header, to_markdown(frame, summary), kinds_note, kinds_markdown(frame)])
    print()
    print(report)
    if args.write:
        from sklearn_overseg.io.volumes import atomic_output

        with atomic_output(args.write, overwrite=args.overwrite) as tmp:
            tmp.write_text(report + "\n", encoding="utf-8")
    if args.update_section:
        from sklearn_overseg.io.volumes import atomic_output

        page = args.update_section.read_text(encoding="utf-8")
        section = "\n\n".join(filter(None, ["## Stitched 2D→3D segmentations", args.note, report]))
        # Only this script's block changes; the page is replaced on purpose.
        with atomic_output(args.update_section, overwrite=True) as tmp:
            tmp.write_text(replace_section(page, section), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

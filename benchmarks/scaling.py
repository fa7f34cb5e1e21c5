"""How correction time grows with the volume: index, screening, features, full correction.

Run from the repository root::

    python benchmarks/scaling.py                          # n_z = 250, 500, 1000, 2000
    python benchmarks/scaling.py --quick                  # n_z = 100, 200, 300, 400
    python benchmarks/scaling.py --write docs/scaling.md [--overwrite]

Each size is a :func:`_volumes.paper_medium_volume` (224 x 224 in-plane, z:y:x 4:1:1)
corrected stage by stage in this process. The table is printed; it is written as Markdown
only with ``--write``, and an existing file is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stages import (
    StageLog,
    merged_pairs,
    prepare_model,
    print_table,
    staged_correct,
    temp_workdir,
)
from _volumes import SPACING, count_cells, paper_medium_volume, source_name

DEFAULT_SIZES = (250, 500, 1000, 2000)
QUICK_SIZES = (100, 200, 300, 400)
CORRECT_STAGES = (
    "index",
    "screen",
    "features",
    "classify",
    "features+classify",
    "merge+interpolate",
    "correct (unsplit)",
)


def measure(n_z: int, size: int, seed: int, corrector, n_jobs: int | None) -> dict:
    """Build one volume and correct it stage by stage."""
    from sklearn_overseg.evaluation.metrics import pair_scores

    flawed, _, merges = paper_medium_volume(n_z, size, seed)
    log = StageLog()
    _, decisions, n_candidates = staged_correct(flawed, corrector, None, log, n_jobs=n_jobs)
    seconds = {s.name: s.seconds for s in log.stages}
    peak_extra = max(s.rss_peak - s.rss_start for s in log.stages)
    predicted = [tuple(p) for p in merged_pairs(decisions)]
    truth = [tuple(p) for p in merges[["cell_a", "cell_b"]].to_numpy(dtype=np.int64)]
    return {
        "n_z": n_z,
        "voxels": flawed.size,
        "nbytes": flawed.nbytes,
        "cells": count_cells(flawed),
        "candidates": n_candidates,
        "index": seconds.get("index", float("nan")),
        "screen": seconds.get("screen", float("nan")),
        "features": seconds.get("features", seconds.get("features+classify", float("nan"))),
        "merge": seconds.get("merge+interpolate", float("nan")),
        "correct": sum(seconds.get(name, 0.0) for name in CORRECT_STAGES),
        "peak_extra": peak_extra,
        "f1": pair_scores(predicted, truth)["f1"],
    }


def exponent(x: list[float], y: list[float]) -> float:
    """Slope of log(y) against log(x): time grows as x**slope."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    good = (x_arr > 0) & (y_arr > 0) & np.isfinite(y_arr)
    if good.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x_arr[good]), np.log(y_arr[good]), 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help=f"n_z values (default {DEFAULT_SIZES})"
    )
    parser.add_argument("--quick", action="store_true", help=f"n_z = {QUICK_SIZES}")
    parser.add_argument("--size", type=int, default=224, help="in-plane size (default 224)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None, help="joblib n_jobs (default 1)")
    parser.add_argument("--write", type=Path, metavar="PATH", help="also write Markdown here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --write")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if len(sizes) < 2:
        parser.error("give at least two sizes to measure a trend.")
    if args.write is not None and args.write.exists() and not args.overwrite:
        parser.error(f"{args.write} exists; pass --overwrite to replace it.")

    from sklearn_overseg.pretrained import load_pretrained

    with temp_workdir() as tmp:
        model_dir, model_what, _ = prepare_model(Path(tmp), SPACING)
        corrector = load_pretrained(model_dir)
    print(f"model: {model_what}", flush=True)

    # First calls pay for lazy imports and torch start-up; keep them out of the table.
    measure(min(20, min(sizes)), args.size, args.seed, corrector, args.n_jobs)
    results = []
    for n_z in sorted(sizes):
        start = time.perf_counter()
        results.append(measure(n_z, args.size, args.seed, corrector, args.n_jobs))
        r = results[-1]
        print(
            f"n_z={n_z}: {r['candidates']} candidates, correct {r['correct']:.1f} s "
            f"({time.perf_counter() - start:.0f} s with volume build)",
            flush=True,
        )

    rows = [
        (
            f"{r['n_z']:,}",
            f"{r['voxels'] / 1e6:,.1f} M",
            f"{r['cells']:,}",
            f"{r['candidates']:,}",
            f"{r['index']:.2f}",
            f"{r['screen']:.2f}",
            f"{r['features']:.1f}",
            f"{r['merge']:.1f}",
            f"{r['correct']:.1f}",
            f"{1e9 * (r['index'] + r['screen']) / r['voxels']:.1f}",
            f"{1e3 * r['features'] / max(r['candidates'], 1):.1f}",
            f"{r['peak_extra'] / r['nbytes']:.1f}x",
            f"{r['f1']:.3f}",
        )
        for r in results
    ]
    headers = (
        "n_z",
        "voxels",
        "cells",
        "candidates",
        "index s",
        "screen s",
        "features s",
        "merge s",
        "correct s",
        "index+screen ns/voxel",
        "features ms/cand.",
        "peak RSS rise / volume",
        "pair F1",
    )
    print()
    table = print_table(rows, headers)
    voxels = [r["voxels"] for r in results]
    cands = [r["candidates"] for r in results]
    growth = (
        f"Growth exponents (time ~ size^k): index vs voxels "
        f"{exponent(voxels, [r['index'] for r in results]):.2f}, screening vs voxels "
        f"{exponent(voxels, [r['screen'] for r in results]):.2f}, features vs candidates "
        f"{exponent(cands, [r['features'] for r in results]):.2f}, full correction vs voxels "
        f"{exponent(voxels, [r['correct'] for r in results]):.2f}."
    )
    print()
    print(growth)

    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/scaling.py " + " ".join(argv or sys.argv[1:])
        text = "\n".join(
            [
                "# Benchmarks: scaling of the correction",
                "",
                f"Generated by `{command.strip()}` on {dt.date.today().isoformat()}.",
                "",
                f"- Volumes: {source_name()}, {args.size} x {args.size} in-plane, "
                f"spacing z,y,x = {SPACING}, seed {args.seed}; synthesised splits "
                "(`synthesize_flaws`, split_fraction 0.3).",
                f"- Model: {model_what}.",
                f"- Machine: {platform.platform()}, Python {platform.python_version()}, "
                f"{os.cpu_count()} CPU(s), n_jobs={args.n_jobs}.",
                "- Times in seconds, `time.perf_counter`; one run per size. 'correct' is "
                "index + screen + features + classify + merge/interpolate; "
                "'peak RSS rise' is the largest rise of RSS within one stage.",
                "",
                table,
                "",
                growth,
                "",
            ]
        )
        if args.write.exists() and not args.overwrite:
            parser.error(f"{args.write} appeared meanwhile; pass --overwrite to replace it.")
        from sklearn_overseg.io.volumes import atomic_output

        # Written beside the target and renamed: a crash never leaves half a page.
        with atomic_output(args.write, overwrite=args.overwrite) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark at the scale of the paper's medium stacks (~2000 x 224 x 224, z:y:x 4:1:1).

Run from the repository root::

    python benchmarks/paper_medium.py            # full size, a few minutes on 2 cores
    python benchmarks/paper_medium.py --quick    # n_z=400 smoke run
    python benchmarks/paper_medium.py --profile features   # cProfile one stage

The correction itself runs in a fresh Python process that reads the volume from a TIFF
file, as the command line tool would: its peak RSS then measures correction, not the
building of the benchmark volume. Each stage there reports its own peak RSS (Linux
``VmHWM``, reset between stages). The parent process then measures tracemalloc peaks of
the main stages and the contact screener. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stages import (
    StageLog,
    current_rss,
    fmt_bytes,
    fmt_seconds,
    merged_pairs,
    prepare_model,
    print_table,
    staged_correct,
    temp_workdir,
)
from _volumes import SPACING, count_cells, paper_medium_volume, source_name

QUICK_N_Z = 400
#: Candidates whose features are computed under tracemalloc (it slows them ~3x).
TRACE_FEATURE_ROWS = 300

TARGETS = {
    "screen_x_find_objects": 5.0,
    "screen_plus_features_s": 60.0,
    "correct_s": 60.0,
    "rss_x_volume": 4.0,
    "contact_s": 60.0,
}


# ----------------------------------------------------------------------------- child


def run_child(config_path: Path) -> None:
    """Load the volume and the model from disk, correct stage by stage, write results."""
    config = json.loads(config_path.read_text())
    from scipy import ndimage as ndi

    # The package loads torch and the features lazily; load them now so that the import
    # baseline includes them and the stages measure only their own memory.
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    import sklearn_overseg.classification.classifier
    import sklearn_overseg.classification.pipeline  # noqa: F401
    from sklearn_overseg.io.volumes import load_volume, save_volume
    from sklearn_overseg.pretrained import load_pretrained
    from sklearn_overseg.screening.axial import AxialGapScreener, screen_axial_pairs

    baseline = current_rss()
    spacing = tuple(config["spacing"])
    log = StageLog(profile=config["profile"])
    with log.stage("load"):
        volume = load_volume(config["input"])
    with log.stage("model load"):
        corrector = load_pretrained(config["model"])
    with log.stage("find_objects"):
        ndi.find_objects(volume)
    screener = corrector.screener_
    if isinstance(screener, AxialGapScreener):
        from sklearn_overseg.screening.cells import CellIndex

        index = CellIndex.from_volume(volume)
        params = screener.pair_search_params()
        with log.stage("pair search only", note="diagnostic: screen without geometry"):
            screen_axial_pairs(index, **params)
        del index
    corrected, decisions, n_candidates = staged_correct(
        volume, corrector, None, log, n_jobs=config["n_jobs"]
    )
    with log.stage("write"):
        save_volume(config["output"], corrected, spacing=spacing, overwrite=True)
    verified = None
    if config["verify"]:
        reference, _ = corrector.correct(volume)
        verified = bool(np.array_equal(reference, corrected))
    # Read before anything else allocates: the peak belongs to the stages above.
    overall_peak = log.overall_peak()
    np.save(config["pairs"], merged_pairs(decisions))
    result = {
        "baseline_rss": baseline,
        "lifetime_peak_rss": overall_peak,
        "per_stage_peaks": log.per_stage_peaks,
        "stages": log.as_dicts(),
        "n_candidates": n_candidates,
        "n_merged": int(decisions["merged"].sum()) if len(decisions) else 0,
        "volume_nbytes": int(volume.nbytes),
        "profile": log.profile_text,
        "verified": verified,
    }
    Path(config["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- parent


def traced_peaks(volume: np.ndarray, n_jobs: int | None) -> dict[str, tuple[int, float]]:
    """tracemalloc peak (bytes) and candidate count for index, screening and features."""
    from sklearn_overseg.classification.pipeline import make_features
    from sklearn_overseg.screening.axial import AxialGapScreener
    from sklearn_overseg.screening.cells import CellIndex

    peaks: dict[str, tuple[int, float]] = {}
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        index = CellIndex.from_volume(volume)
        peaks["index"] = (tracemalloc.get_traced_memory()[1], len(index))
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        table = AxialGapScreener(n_jobs=n_jobs).screen(volume, index=index, spacing=SPACING)
        peaks["screen"] = (tracemalloc.get_traced_memory()[1] - base, len(table))
        # The table's pair masks stay alive after screening: that is its resident cost.
        peaks["candidate table (held)"] = (tracemalloc.get_traced_memory()[0] - base, len(table))
        part = table.iloc[:TRACE_FEATURE_ROWS]
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        make_features(random_state=0, n_jobs=n_jobs).fit_transform(part)
        peaks["features"] = (tracemalloc.get_traced_memory()[1] - base, len(part))
    finally:
        tracemalloc.stop()
    return peaks


def contact_stages(volume: np.ndarray, n_jobs: int | None, log: StageLog) -> int:
    """Adjacency alone, then the whole contact screening (adjacency + re-slicing)."""
    import warnings

    from sklearn_overseg.screening.cells import CellIndex
    from sklearn_overseg.screening.contact import ContactScreener, contact_pairs

    index = CellIndex.from_volume(volume)
    with log.stage("contact adjacency"):
        contact_pairs(index)
    with log.stage("contact screen", note="adjacency + re-slicing, max_layers=8"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = ContactScreener(max_layers=8, n_jobs=n_jobs).screen(
                volume, index=index, spacing=SPACING
            )
    return len(table)


def ok(measured: float, target: float, strict: bool = False) -> str:
    if measured != measured:
        return "n/a"
    passed = measured < target if strict else measured <= target
    return "ok" if passed else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-z", type=int, default=2000, help="z layers (default 2000)")
    parser.add_argument("--size", type=int, default=224, help="in-plane size (default 224)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None, help="joblib n_jobs (default 1)")
    parser.add_argument("--skip-contact", action="store_true", help="skip contact screening")
    parser.add_argument("--quick", action="store_true", help=f"smoke run, n_z={QUICK_N_Z}")
    parser.add_argument(
        "--profile",
        metavar="STAGE",
        help="cProfile one stage (load, index, screen, features, classify, "
        "merge+interpolate, write, contact screen) and print the top 15 by cumtime",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run corrector.correct() in one piece and check it matches the stages",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip tracemalloc pass")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        run_child(args.child)
        return 0
    n_z = QUICK_N_Z if args.quick else args.n_z

    import subprocess

    from sklearn_overseg.evaluation.metrics import pair_scores
    from sklearn_overseg.io.volumes import save_volume

    print(f"paper_medium benchmark: n_z={n_z}, size={args.size}, n_jobs={args.n_jobs}", flush=True)
    start = time.perf_counter()
    flawed, truth, merges = paper_medium_volume(n_z, args.size, args.seed)
    build_s = time.perf_counter() - start
    del truth
    print(f"built volume {flawed.shape} {flawed.dtype} in {build_s:.1f} s", flush=True)

    with temp_workdir() as tmp:
        work = Path(tmp)
        model_dir, model_what, _ = prepare_model(work, SPACING)
        print(f"model: {model_what}", flush=True)
        source = save_volume(work / "flawed.tif", flawed, spacing=SPACING)
        config = {
            "input": str(source),
            "output": str(work / "corrected.tif"),
            "model": str(model_dir),
            "spacing": list(SPACING),
            "n_jobs": args.n_jobs,
            "profile": args.profile,
            "verify": args.verify,
            "pairs": str(work / "pairs.npy"),
            "result": str(work / "result.json"),
        }
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config))
        print("correcting in a fresh process ...", flush=True)
        subprocess.run([sys.executable, __file__, "--child", str(config_path)], check=True)
        child = json.loads(Path(config["result"]).read_text())
        predicted = np.load(config["pairs"])
        file_bytes = source.stat().st_size

    stages = {s["name"]: s for s in child["stages"]}

    def sec(name: str) -> float:
        return stages[name]["seconds"] if name in stages else float("nan")

    traced: dict[str, tuple[int, float]] = {}
    if not args.no_tracemalloc:
        print("tracemalloc pass ...", flush=True)
        traced = traced_peaks(flawed, args.n_jobs)
    contact_log = StageLog(profile=args.profile)
    n_contact = None
    if not args.skip_contact:
        print("contact screening ...", flush=True)
        n_contact = contact_stages(flawed, args.n_jobs, contact_log)

    true_pairs = merges[["cell_a", "cell_b"]].to_numpy(dtype=np.int64)
    scores = pair_scores([tuple(p) for p in predicted], [tuple(p) for p in true_pairs])

    # ------------------------------------------------------------------ report
    nbytes = child["volume_nbytes"]
    n_cand = child["n_candidates"]
    correct_names = ["index", "screen", "features", "classify", "features+classify"]
    correct_names += ["merge+interpolate", "correct (unsplit)"]
    correct_s = sum(sec(n) for n in correct_names if n in stages)
    feat_s = sec("features") if "features" in stages else sec("features+classify")
    screen_feat_s = sec("screen") + feat_s
    ratio = sec("screen") / sec("find_objects")
    peak = child["lifetime_peak_rss"]
    above = peak - child["baseline_rss"]

    print()
    print(f"Volume: {source_name()}, spacing z,y,x = {SPACING}")
    print(f"Model: {model_what}")
    if child["verified"] is not None:
        print(f"Stages reproduce corrector.correct(): {child['verified']}")
    print()
    rows = [
        ("volume shape / dtype", f"{flawed.shape} {flawed.dtype}", "", ""),
        (
            "volume bytes (in memory / .tif zlib)",
            f"{fmt_bytes(nbytes)} / {fmt_bytes(file_bytes)}",
            "",
            "",
        ),
        (
            "cells / true merges / axial candidates",
            f"{count_cells(flawed):,} / {len(merges):,} / {n_cand:,}",
            "",
            "",
        ),
        ("build benchmark volume (not timed below)", fmt_seconds(build_s), "", ""),
        ("find_objects pass (reference)", fmt_seconds(sec("find_objects")), "", ""),
        ("CellIndex build", fmt_seconds(sec("index")), "", ""),
        ("axial screening (pairs + geometry)", fmt_seconds(sec("screen")), "", ""),
        ("  of which pair search only", fmt_seconds(sec("pair search only")), "", ""),
        (
            "axial screening / find_objects",
            f"{ratio:.1f}x",
            f"<= {TARGETS['screen_x_find_objects']:.0f}x",
            ok(ratio, TARGETS["screen_x_find_objects"]),
        ),
        ("features (fitted make_features block)", fmt_seconds(feat_s), "", ""),
        ("features throughput", f"{n_cand / feat_s:,.0f} candidates/s" if feat_s else "", "", ""),
        (
            "screening + features",
            fmt_seconds(screen_feat_s),
            f"< {TARGETS['screen_plus_features_s']:.0f} s",
            ok(screen_feat_s, TARGETS["screen_plus_features_s"], strict=True),
        ),
        ("classifier predict_proba", fmt_seconds(sec("classify")), "", ""),
        ("merge + interpolate", fmt_seconds(sec("merge+interpolate")), "", ""),
        (
            "full correct (index..merge)",
            fmt_seconds(correct_s),
            f"<= {TARGETS['correct_s']:.0f} s",
            ok(correct_s, TARGETS["correct_s"]),
        ),
        (
            "load .tif / write .tif",
            f"{fmt_seconds(sec('load'))} / {fmt_seconds(sec('write'))}",
            "",
            "",
        ),
        ("load + correct + write", fmt_seconds(correct_s + sec("load") + sec("write")), "", ""),
        ("model load", fmt_seconds(sec("model load")), "", ""),
        (
            "peak RSS of correcting process",
            f"{fmt_bytes(peak)} = {peak / nbytes:.1f}x volume",
            f"<= {TARGETS['rss_x_volume']:.0f}x",
            ok(peak / nbytes, TARGETS["rss_x_volume"]),
        ),
        (
            f"  above import baseline ({fmt_bytes(child['baseline_rss'])})",
            f"{fmt_bytes(above)} = {above / nbytes:.1f}x volume",
            f"<= {TARGETS['rss_x_volume']:.0f}x",
            ok(above / nbytes, TARGETS["rss_x_volume"]),
        ),
    ]
    if n_contact is not None:
        adj = contact_log.seconds("contact adjacency")
        full = contact_log.seconds("contact screen")
        rows += [
            ("contact pairs (max_layers=8)", f"{n_contact:,}", "", ""),
            ("contact adjacency", fmt_seconds(adj), "", ""),
            (
                "contact adjacency + re-slicing",
                fmt_seconds(full),
                f"< {TARGETS['contact_s']:.0f} s",
                ok(full, TARGETS["contact_s"], strict=True),
            ),
        ]
    rows += [
        ("merges applied", f"{child['n_merged']:,}", "", ""),
        (
            "pair precision / recall / F1",
            f"{scores['precision']:.3f} / {scores['recall']:.3f} / {scores['f1']:.3f}",
            "",
            "",
        ),
        ("pair tp / fp / fn", f"{scores['tp']} / {scores['fp']} / {scores['fn']}", "", ""),
    ]
    print_table(rows, ("measure", "value", "target", "status"))

    print()
    print(
        "Per stage (correcting process; RSS peak is the stage's own high-water mark"
        + ("" if child["per_stage_peaks"] else ", here the lifetime ru_maxrss")
        + ")"
    )
    stage_rows = []
    for s in [*child["stages"], *contact_log.as_dicts()]:
        trace = traced.get(s["name"])
        stage_rows.append(
            (
                s["name"],
                fmt_seconds(s["seconds"]),
                fmt_bytes(s["rss_start"]),
                fmt_bytes(s["rss_peak"]),
                fmt_bytes(max(0, s["rss_peak"] - s["rss_start"])),
                (
                    f"{fmt_bytes(trace[0])} ({trace[1]:,} cand.)"
                    if trace and s["name"] == "features"
                    else (fmt_bytes(trace[0]) if trace else "")
                ),
                s["note"],
            )
        )
    if "candidate table (held)" in traced:
        held = traced["candidate table (held)"]
        stage_rows.append(
            (
                "candidate table (held)",
                "",
                "",
                "",
                "",
                fmt_bytes(held[0]),
                f"{held[0] / max(held[1], 1) / 1024:.0f} KiB per candidate",
            )
        )
    print_table(
        stage_rows,
        ("stage", "time", "RSS at start", "RSS peak", "peak - start", "tracemalloc peak", "note"),
    )
    if child["profile"] or contact_log.profile_text:
        print()
        print(child["profile"] or contact_log.profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark at the scale of the paper's large stacks (~300 x 2008 x 2008), out of core.

Run from the repository root::

    python benchmarks/paper_large.py                 # 300 x 2008 x 2008, ~5 GB as uint32
    python benchmarks/paper_large.py --quick         # 76 x 652 x 566 smoke run
    python benchmarks/paper_large.py --in-memory     # also np.asarray + correct, to compare

The volume is built once as chunked Zarr (``_large.build_paper_large``) in ``--workdir``
and reused by later runs. The shipped model then corrects it in a fresh Python process,
reading the flawed Zarr array slab by slab and writing the corrected one
(``corrector.correct(src, out=out, slab_layers=...)``). The parent samples the resident
memory of that process and of all its descendants (joblib/loky or dask workers) every
0.2 s and reports the largest sum, next to the process's own ``VmHWM``.

The crop check corrects a crop that fits in memory both out of core (small slabs) and in
memory, and reports whether the corrected volumes and the decision tables are identical.
See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _large import build_paper_large, disk_bytes, read_merges
from _stages import (
    current_rss,
    fmt_bytes,
    fmt_seconds,
    merged_pairs,
    peak_rss,
    prepare_model,
    print_table,
)
from _volumes import SPACING, source_name

DEFAULT_SHAPE = (300, 2008, 2008)
QUICK_SHAPE = (76, 652, 566)
CROP_SHAPE = (76, 652, 566)
CROP_SLAB_LAYERS = 16
TARGET_SECONDS = 15 * 60
TARGET_RSS = 6e9  # bytes ("6 GB")
SAMPLE_SECONDS = 0.2
#: Stages of ``correct`` timed as phases when they exist (module, attribute, phase).
PHASES = (
    ("sklearn_overseg.correction.blockwise", "index_volume", "index"),
    ("sklearn_overseg.correction.blockwise", "screen_blockwise", "screen"),
    ("sklearn_overseg.correction.blockwise", "featurize_blockwise", "features"),
    ("sklearn_overseg.correction.blockwise", "make_canvas", "canvas setup"),
    (
        "sklearn_overseg.correction.corrector",
        "SegmentationCorrector._decide_and_merge",
        "decide + merge",
    ),
    ("sklearn_overseg.correction.blockwise", "prefill", "interpolate (prefill)"),
    ("sklearn_overseg.correction.canvas", "LazyCanvas.write", "write (relabel slabs)"),
)


# ----------------------------------------------------------------------------- child


def _out_of_core_api(corrector) -> bool:
    params = inspect.signature(corrector.correct).parameters
    return "out" in params and "slab_layers" in params


def _timed_phases() -> dict[str, float]:
    """Wrap the stages of ``correct`` with timers; returns the dict their times add up in.

    Times are exclusive: a phase called inside another (``prefill`` within the merge) is
    subtracted from the outer one, so the phases add up to the time they cover. Only
    timing is added: the wrapped functions are called unchanged. Functions are patched on
    their module (``correct`` imports them at call time) and in every module of the
    package that holds a reference to them; names that do not exist are skipped.
    """
    import importlib

    times: dict[str, float] = {}
    stack: list[list[float]] = []  # [start, time spent in nested phases]
    packages = [m for name, m in sys.modules.items() if name.startswith("sklearn_overseg")]
    for module_name, attr, phase in PHASES:
        try:
            owner = importlib.import_module(module_name)
            *classes, name = attr.split(".")
            for cls in classes:
                owner = getattr(owner, cls)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            continue

        @functools.wraps(original)
        def wrapper(*args, _original=original, _phase=phase, **kwargs):
            stack.append([time.perf_counter(), 0.0])
            try:
                return _original(*args, **kwargs)
            finally:
                start, nested = stack.pop()
                elapsed = time.perf_counter() - start
                times[_phase] = times.get(_phase, 0.0) + elapsed - nested
                if stack:
                    stack[-1][1] += elapsed

        setattr(owner, name, wrapper)
        if not classes:
            for module in packages:
                if getattr(module, name, None) is original:
                    setattr(module, name, wrapper)
    return times


def _create_like(path: str, src):
    import zarr

    return zarr.create_array(
        store=path, shape=src.shape, dtype=src.dtype, chunks=src.chunks, overwrite=True
    )


def _correct(corrector, src, out_path: str, mode: str, slab_layers: int):
    """Correct ``src`` (a Zarr array); returns decisions and the time of each step."""
    steps: dict[str, float] = {}
    if mode == "out_of_core":
        out = _create_like(out_path, src)
        start = time.perf_counter()
        corrected, decisions = corrector.correct(src, out=out, slab_layers=slab_layers)
        steps["correct (read + correct + write)"] = time.perf_counter() - start
        if corrected is not out:
            raise RuntimeError("correct(out=...) did not return `out`.")
        return decisions, steps
    start = time.perf_counter()
    volume = np.asarray(src[...])
    steps["read into memory"] = time.perf_counter() - start
    start = time.perf_counter()
    corrected, decisions = corrector.correct(volume)
    steps["correct (in memory)"] = time.perf_counter() - start
    del volume
    start = time.perf_counter()
    _create_like(out_path, src)[...] = corrected
    steps["write"] = time.perf_counter() - start
    return decisions, steps


def _compare_decisions(a, b) -> dict:
    """Whether two decision tables are equal, as they are and up to row order."""
    exact = bool(a.shape == b.shape and list(a.columns) == list(b.columns) and a.equals(b))
    result = {"rows": [len(a), len(b)], "exact": exact, "same_pairs_merged": False}
    if {"cell_a", "cell_b"} <= set(a.columns) & set(b.columns):
        keys = ["cell_a", "cell_b"]
        sa = a.sort_values(keys).reset_index(drop=True)
        sb = b.sort_values(keys).reset_index(drop=True)
        result["sorted"] = bool(sa.shape == sb.shape and sa.equals(sb))
        pa = {tuple(p) for p in merged_pairs(a)}
        pb = {tuple(p) for p in merged_pairs(b)}
        result["same_pairs_merged"] = pa == pb
        if not result["sorted"] and sa.shape == sb.shape:
            result["differing_columns"] = [
                c for c in sa.columns if c in sb.columns and not sa[c].equals(sb[c])
            ]
    return result


def run_child(config_path: Path) -> None:
    """Load the model, correct as configured, write a JSON result (and merged pairs)."""
    config = json.loads(config_path.read_text())
    # The package loads torch and the features lazily: load them now so that the baseline
    # includes them and the peak measures the correction.
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    import zarr

    import sklearn_overseg.classification.classifier
    import sklearn_overseg.classification.pipeline  # noqa: F401
    from sklearn_overseg.pretrained import load_pretrained

    baseline = current_rss()
    result: dict = {"baseline_rss": baseline, "steps": {}}
    start = time.perf_counter()
    corrector = load_pretrained(config["model"])
    corrector.set_params(n_jobs=config["n_jobs"])
    result["steps"]["model load"] = time.perf_counter() - start
    # Both corrections of the crop check would add up in one dict: phases only for a run.
    phases = _timed_phases() if config["phases"] and config["mode"] != "crop" else {}
    result["api"] = _out_of_core_api(corrector)
    src = zarr.open_array(config["input"], mode="r")
    if config["mode"] == "crop":
        outputs = {}
        decisions = {}
        for mode in ("out_of_core", "in_memory"):
            if mode == "out_of_core" and not result["api"]:
                continue
            path = config["output"] + f".{mode}.zarr"
            decisions[mode], steps = _correct(corrector, src, path, mode, config["slab_layers"])
            result["steps"].update({f"{mode}: {k}": v for k, v in steps.items()})
            outputs[mode] = zarr.open_array(path, mode="r")[...]
        if len(outputs) == 2:
            result["identical"] = bool(np.array_equal(outputs["out_of_core"], outputs["in_memory"]))
            result["differing_voxels"] = int(
                np.count_nonzero(outputs["out_of_core"] != outputs["in_memory"])
            )
            result["decisions"] = _compare_decisions(
                decisions["out_of_core"], decisions["in_memory"]
            )
        result["n_candidates"] = {m: len(d) for m, d in decisions.items()}
        result["n_merged"] = {m: int(d["merged"].sum()) for m, d in decisions.items()}
    elif config["mode"] == "out_of_core" and not result["api"]:
        result["error"] = (
            "SegmentationCorrector.correct has no out=/slab_layers= parameters yet: "
            "the out-of-core path is not available in this checkout."
        )
    else:
        decisions, steps = _correct(
            corrector, src, config["output"], config["mode"], config["slab_layers"]
        )
        result["steps"].update(steps)
        result["n_candidates"] = len(decisions)
        result["n_merged"] = int(decisions["merged"].sum()) if len(decisions) else 0
        np.save(config["pairs"], merged_pairs(decisions))
    result["phases"] = phases
    result["vm_hwm"] = peak_rss()
    Path(config["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- parent


class TreeSampler:
    """Largest summed RSS (and PSS) of a process and all its descendants, sampled.

    RSS counts pages shared between processes (forked or memory-mapped) once per process,
    so the RSS sum is an upper bound; PSS splits shared pages between their users and is
    sampled every fifth tick (reading it costs more).
    """

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_root = 0
        self.peak_worker = 0
        self.max_processes = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        tick = 0
        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                break
            rss = pss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    if tick % 5 == 0:
                        full = p.memory_full_info()
                        one = full.rss
                        pss += getattr(full, "pss", full.rss)
                    else:
                        one = p.memory_info().rss
                    rss += one
                    if p is self._root:
                        self.peak_root = max(self.peak_root, one)
                    else:
                        self.peak_worker = max(self.peak_worker, one)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.max_processes = max(self.max_processes, len(procs))
            self.samples += 1
            tick += 1
            self._stop.wait(self._interval)


def run_in_child(work: Path, name: str, config: dict) -> dict:
    """Run :func:`run_child` in a fresh interpreter; returns its result and memory peaks."""
    config = {**config, "result": str(work / f"{name}.result.json")}
    config_path = work / f"{name}.config.json"
    config_path.write_text(json.dumps(config))
    Path(config["result"]).unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(config_path)])
    with TreeSampler(proc.pid) as sampler:
        code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"the {name} child process failed with exit code {code}")
    result = json.loads(Path(config["result"]).read_text())
    result.update(
        wall=wall,
        tree_peak_rss=sampler.peak_rss,
        tree_peak_pss=sampler.peak_pss,
        root_peak_rss=sampler.peak_root,
        worker_peak_rss=sampler.peak_worker,
        max_processes=sampler.max_processes,
        samples=sampler.samples,
    )
    return result


def write_crop(src_path: Path, dest: Path, crop: tuple[int, int, int]) -> None:
    """Copy the corner ``crop`` of a Zarr array into its own Zarr array."""
    import zarr

    src = zarr.open_array(str(src_path), mode="r")
    box = tuple(slice(0, min(c, s)) for c, s in zip(crop, src.shape, strict=True))
    data = src[box]
    out = zarr.create_array(
        store=str(dest), shape=data.shape, dtype=data.dtype, chunks=src.chunks, overwrite=True
    )
    out[...] = data


def compare_zarr(path_a: Path, path_b: Path, slab: int) -> tuple[bool, int]:
    """Whether two Zarr arrays are equal (read slab by slab) and how many voxels differ."""
    import zarr

    a = zarr.open_array(str(path_a), mode="r")
    b = zarr.open_array(str(path_b), mode="r")
    if a.shape != b.shape:
        return False, -1
    differ = 0
    for z0 in range(0, a.shape[0], slab):
        differ += int(np.count_nonzero(a[z0 : z0 + slab] != b[z0 : z0 + slab]))
    return differ == 0, differ


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB ({fmt_bytes(n)})"


def status(measured: float, target: float) -> str:
    return "ok" if measured <= target else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=DEFAULT_SHAPE, metavar=("Z", "Y", "X")
    )
    parser.add_argument(
        "--chunks", type=int, nargs=3, default=(16, 256, 256), metavar=("Z", "Y", "X")
    )
    parser.add_argument(
        "--slab-layers", type=int, default=None, help="z layers per slab (default: automatic)"
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/overseg_paper_large"),
        help="volumes and outputs; the built volume is reused between runs",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run at {'x'.join(map(str, QUICK_SHAPE))}"
    )
    parser.add_argument(
        "--crop-check", action=argparse.BooleanOptionalAction, default=True,
        help="correct a crop out of core and in memory and compare (default on)",
    )  # fmt: skip
    parser.add_argument(
        "--in-memory", action="store_true",
        help="also correct the whole volume in memory (np.asarray) and compare",
    )  # fmt: skip
    parser.add_argument(
        "--no-phases", action="store_true",
        help="do not wrap the block-wise stages with timers (total time only)",
    )  # fmt: skip
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        run_child(args.child)
        return 0
    shape = QUICK_SHAPE if args.quick else tuple(args.shape)
    chunks = tuple(args.chunks)

    tag = "x".join(map(str, shape)) + "_c" + "x".join(map(str, chunks)) + f"_seed{args.seed}"
    volume_dir = args.workdir / f"volume_{tag}"
    work = args.workdir / f"run_{tag}"
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"paper_large benchmark: shape={shape}, chunks={chunks}, slab_layers={args.slab_layers}, "
        f"n_jobs={args.n_jobs}, workdir={args.workdir}",
        flush=True,
    )
    info = build_paper_large(volume_dir, shape, chunks, seed=args.seed)
    verb = "reused" if info["reused"] else "built"
    print(f"{verb} volume {volume_dir} (build took {info['build_seconds']:.1f} s)", flush=True)
    model_dir, model_what, _ = prepare_model(work, SPACING)
    print(f"model: {model_what}", flush=True)
    base = {
        "input": info["flawed"],
        "model": str(model_dir),
        "n_jobs": args.n_jobs,
        "slab_layers": args.slab_layers,
        "phases": not args.no_phases,
    }

    runs: dict[str, dict] = {}
    modes = ["out_of_core"] + (["in_memory"] if args.in_memory else [])
    for mode in modes:
        print(f"correcting ({mode.replace('_', ' ')}) in a fresh process ...", flush=True)
        config = {
            **base,
            "mode": mode,
            "output": str(work / f"corrected_{mode}.zarr"),
            "pairs": str(work / f"pairs_{mode}.npy"),
        }
        runs[mode] = run_in_child(work, mode, config)
        runs[mode]["config"] = config
        if "error" in runs[mode]:
            print(f"  skipped: {runs[mode]['error']}", flush=True)

    crop = None
    if args.crop_check:
        crop_shape = tuple(min(c, s) for c, s in zip(CROP_SHAPE, shape, strict=True))
        print(f"crop check on {crop_shape} (slab_layers={CROP_SLAB_LAYERS}) ...", flush=True)
        crop_path = work / "crop_flawed.zarr"
        write_crop(Path(info["flawed"]), crop_path, crop_shape)
        crop = run_in_child(
            work,
            "crop",
            {
                **base,
                "input": str(crop_path),
                "mode": "crop",
                "slab_layers": CROP_SLAB_LAYERS,
                "output": str(work / "crop_corrected"),
            },
        )
        crop["shape"] = crop_shape

    # ------------------------------------------------------------------ report
    print()
    print(f"Volume: {source_name()}, tiles of {info['tile_shape']}, spacing z,y,x = {SPACING}")
    print(f"Model: {model_what}")
    print()
    rows = volume_rows(info, shape, chunks, verb)
    true_pairs = read_merges(info)[["cell_a", "cell_b"]].to_numpy(dtype=np.int64)
    for mode, run in runs.items():
        rows += run_rows("out of core" if mode == "out_of_core" else "in memory", run, true_pairs)
    if all(m in runs and "error" not in runs[m] for m in ("out_of_core", "in_memory")):
        same, differ = compare_zarr(
            Path(runs["out_of_core"]["config"]["output"]),
            Path(runs["in_memory"]["config"]["output"]),
            args.slab_layers or 16,
        )
        rows.append(
            (
                "whole volume: out of core == in memory",
                f"{same} ({differ:,} voxels differ)",
                "True",
                "ok" if same else "MISSED",
            )
        )
    if crop is not None:
        rows += crop_rows(crop)
    print_table(rows, ("measure", "value", "target", "status"))
    return 0


def volume_rows(info: dict, shape, chunks, verb: str) -> list[tuple[str, str, str, str]]:
    n = f"{info['n_cells']:,} / {info['n_true_cells']:,} / {info['n_merges']:,}"
    size = f"{fmt_bytes(info['nbytes'])} / {fmt_bytes(disk_bytes(info['flawed']))}"
    return [
        ("volume shape / dtype / chunks", f"{shape} {info['dtype']} / {chunks}", "", ""),
        ("volume bytes (in memory / Zarr on disk)", size, "", ""),
        ("cells / true cells / true merges", n, "", ""),
        (f"build volume ({verb}; not timed below)", fmt_seconds(info["build_seconds"]), "", ""),
    ]


def run_rows(label: str, run: dict, true_pairs: np.ndarray) -> list[tuple[str, str, str, str]]:
    from sklearn_overseg.evaluation.metrics import pair_scores

    def row(name: str, value: str, target: str = "", state: str = "") -> tuple[str, ...]:
        return (f"[{label}] {name}", value, target, state)

    if "error" in run:
        return [row("correction", "not run: out-of-core API missing")]
    steps = dict(run["steps"])
    model_load = steps.pop("model load")
    total = sum(steps.values())
    predicted = np.load(run["config"]["pairs"])
    scores = pair_scores(predicted, true_pairs)
    rows = [
        row("candidates / merges applied", f"{run['n_candidates']:,} / {run['n_merged']:,}"),
        row("model load", fmt_seconds(model_load)),
    ]
    rows += [row(f"  {name}", fmt_seconds(sec)) for name, sec in steps.items()]
    phases = run["phases"]
    if phases:
        rows += [row(f"    of which {name}", fmt_seconds(sec)) for name, sec in phases.items()]
        rest = total - sum(phases.values())
        rows.append(row("    of which the rest (classify, I/O outside phases)", fmt_seconds(rest)))
    tree, pss = run["tree_peak_rss"], run["tree_peak_pss"]
    rows += [
        row(
            "total wall time (excl. model load)",
            fmt_seconds(total),
            f"<= {TARGET_SECONDS / 60:.0f} min",
            status(total, TARGET_SECONDS),
        ),
        row("child process wall time (start to exit)", fmt_seconds(run["wall"])),
        row("peak RSS, process tree (sum)", gb(tree), f"<= {TARGET_RSS / 1e9:.0f} GB",
            status(tree, TARGET_RSS)),
        row("peak PSS, process tree (sum)", gb(pss)),
        row("VmHWM of the correcting process", gb(run["vm_hwm"])),
        row("peak RSS of the correcting process / of one worker (sampled)",
            f"{fmt_bytes(run['root_peak_rss'])} / {fmt_bytes(run['worker_peak_rss'])}"),
        row("import baseline RSS", fmt_bytes(run["baseline_rss"])),
        row("processes seen / memory samples", f"{run['max_processes']} / {run['samples']}"),
        row("pair precision / recall / F1",
            f"{scores['precision']:.3f} / {scores['recall']:.3f} / {scores['f1']:.3f}"),
        row("pair tp / fp / fn", f"{scores['tp']} / {scores['fp']} / {scores['fn']}"),
    ]  # fmt: skip
    return rows


def crop_rows(crop: dict) -> list[tuple[str, str, str, str]]:
    label = "crop " + "x".join(map(str, crop["shape"]))

    def row(name: str, value: str, target: str = "", state: str = "") -> tuple[str, ...]:
        return (f"[{label}] {name}", value, target, state)

    if "identical" not in crop:
        return [row("check", "not run: out-of-core API missing")]
    dec = crop["decisions"]
    identical = f"{crop['identical']} ({crop['differing_voxels']:,} voxels differ)"
    rows = [
        row(f"out of core (slab {CROP_SLAB_LAYERS}) == in memory", identical, "True",
            "ok" if crop["identical"] else "MISSED"),
        row("decisions equal (exact / up to row order)", f"{dec['exact']} / {dec.get('sorted')}",
            "True", "ok" if dec["exact"] else "MISSED"),
        row("same merged pairs", str(dec["same_pairs_merged"])),
        row("candidates (out of core / in memory)",
            " / ".join(str(crop["n_candidates"][m]) for m in ("out_of_core", "in_memory"))),
        row("merged (out of core / in memory)",
            " / ".join(str(crop["n_merged"][m]) for m in ("out_of_core", "in_memory"))),
    ]  # fmt: skip
    rows += [row(f"time {k}", fmt_seconds(v)) for k, v in crop["steps"].items()]
    if dec.get("differing_columns"):
        rows.append(row("differing columns", ", ".join(dec["differing_columns"])))
    return rows


if __name__ == "__main__":
    sys.exit(main())

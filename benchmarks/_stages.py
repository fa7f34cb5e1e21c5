"""Shared measurement helpers: stage timers with per-stage peak RSS, the corrector to
benchmark, and a stage-by-stage replica of ``SegmentationCorrector.correct``.

Peak RSS per stage comes from Linux's ``VmHWM``, which ``/proc/self/clear_refs`` can reset
(write ``5``): each stage then reports its own high-water mark rather than the process's
lifetime maximum. Elsewhere the lifetime ``ru_maxrss`` is reported instead.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MIB = 1 << 20

# --------------------------------------------------------------------------- memory


def _status_kib(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def current_rss() -> int:
    """Resident set size now, in bytes (0 where unknown)."""
    kib = _status_kib("VmRSS")
    return 0 if kib is None else kib * 1024


def lifetime_peak_rss() -> int:
    """``ru_maxrss`` of this process, in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """High-water RSS since the last reset (or process start), in bytes."""
    kib = _status_kib("VmHWM")
    return lifetime_peak_rss() if kib is None else kib * 1024


# --------------------------------------------------------------------------- stages


@dataclass
class Stage:
    name: str
    seconds: float
    rss_start: int
    rss_peak: int
    note: str = ""


@dataclass
class StageLog:
    """Times stages; optionally profiles one of them with cProfile."""

    profile: str | None = None
    stages: list[Stage] = field(default_factory=list)
    profile_text: str = ""
    per_stage_peaks: bool = True
    _earlier_peak: int = 0

    def overall_peak(self) -> int:
        """Peak RSS of the process so far, across the resets of the stage peaks.

        Resetting ``VmHWM`` also resets what ``ru_maxrss`` reports, so the peaks seen
        before each reset are kept here. ``ru_maxrss`` is used only where ``VmHWM`` is
        missing: Linux carries it over ``exec`` from the forking parent, so a process
        started by a parent holding a large volume would report the parent's peak.
        """
        if _status_kib("VmHWM") is None:
            return max(self._earlier_peak, lifetime_peak_rss())
        return max(self._earlier_peak, peak_rss())

    @contextmanager
    def stage(self, name: str, note: str = "") -> Iterator[None]:
        self._earlier_peak = self.overall_peak()
        self.per_stage_peaks = reset_peak_rss() and self.per_stage_peaks
        rss0 = current_rss()
        profiler = cProfile.Profile() if self.profile == name else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        try:
            yield
        finally:
            if profiler is not None:
                profiler.disable()
            elapsed = time.perf_counter() - start
            self.stages.append(Stage(name, elapsed, rss0, peak_rss(), note))
            if profiler is not None:
                self.profile_text = _profile_report(profiler, name)

    def seconds(self, name: str) -> float:
        for s in self.stages:
            if s.name == name:
                return s.seconds
        return float("nan")

    def as_dicts(self) -> list[dict]:
        return [s.__dict__.copy() for s in self.stages]


def _profile_report(profiler: cProfile.Profile, name: str) -> str:
    """Top 15 by cumulative time, then top 15 by own time (where the time really goes)."""
    text = []
    for key, label in (("cumulative", "cumtime"), ("tottime", "tottime")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(15)
        body = out.getvalue().split("\n")
        # Drop pstats' preamble up to the column header.
        start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
        text.append(f"cProfile of stage '{name}', top 15 by {label}")
        text.append("\n".join(body[start:]).rstrip())
    return "\n\n".join(text)


# ------------------------------------------------------------------------ corrector


def model_dir_or_none() -> Path | None:
    """The shipped model directory if it holds a saved model."""
    from sklearn_overseg.pretrained import PRETRAINED_DIR

    return PRETRAINED_DIR if (PRETRAINED_DIR / "config.json").exists() else None


def prepare_model(workdir: Path, spacing: tuple[float, float, float]) -> tuple[Path, str, float]:
    """The directory of the model to benchmark, a description and the fit time.

    The shipped model when it exists; otherwise a quick stand-in corrector fitted on a
    small ground truth and saved (without pickle) to ``workdir`` so that a fresh process
    loads it exactly as it would load the shipped one.
    """
    shipped = model_dir_or_none()
    if shipped is not None:
        return shipped, f"shipped pretrained model ({shipped})", 0.0
    from _volumes import training_volume

    from sklearn_overseg.correction.corrector import SegmentationCorrector
    from sklearn_overseg.io.persistence import save_estimator

    gt = training_volume()
    start = time.perf_counter()
    corrector = SegmentationCorrector(n_repeats=1, random_state=0).fit([gt], spacing=spacing)
    fit_seconds = time.perf_counter() - start
    path = save_estimator(corrector, workdir / "standin_model")
    what = (
        "STAND-IN model: sklearn_overseg/models/default/config.json is missing, so "
        f"SegmentationCorrector(n_repeats=1, random_state=0) was fitted on a {gt.shape} "
        f"ground truth of the same tissue in {fit_seconds:.1f} s "
        f"({corrector.n_training_pairs_} pairs); its scores are optimistic"
    )
    return Path(path), what, fit_seconds


def staged_correct(
    volume: np.ndarray,
    corrector,
    spacing: tuple[float, float, float],
    log: StageLog,
    n_jobs: int | None = None,
    slab_layers: int | None = None,
):
    """``corrector.correct(volume, spacing=spacing)`` split into timed stages.

    Mirrors :meth:`SegmentationCorrector.correct` step for step through the functions
    of :mod:`sklearn_overseg.correction.blockwise` (index, screen, features, classify, merge +
    interpolate, which includes the parallel prefill of interpolations). Should those
    disappear, or for a non-axial screener, ``correct`` is timed as one stage.

    Returns
    -------
    corrected, decisions, n_candidates
    """
    from joblib import parallel_config

    from sklearn_overseg._validation import check_spacing
    from sklearn_overseg.screening.axial import AxialGapScreener

    try:
        from sklearn_overseg.correction.blockwise import (
            check_volume_like,
            choose_slab_layers,
            featurize_blockwise,
            index_volume,
            make_canvas,
            screen_blockwise,
            split_classifier,
        )
    except ImportError:
        split = None
    else:
        split = True
    if split is None or type(corrector.screener_).screen is not AxialGapScreener.screen:
        with log.stage("correct (unsplit)"):
            corrector.set_params(n_jobs=n_jobs)
            corrected, decisions = corrector.correct(volume, spacing=spacing)
        return corrected, decisions, len(decisions)

    slab, block = choose_slab_layers(np.shape(volume), slab_layers)
    with parallel_config(n_jobs=n_jobs):
        with log.stage("index"):
            volume = check_volume_like(volume)
            # As correct(): the model's own units unless the caller insists.
            spacing = check_spacing(spacing if spacing is not None else corrector.spacing_)
            index = index_volume(volume, slab_layers=slab)
        with log.stage("screen"):
            table = screen_blockwise(
                corrector.screener_, index, volume_id="0", spacing=spacing, slab_layers=slab
            )
        split = split_classifier(corrector.classifier_, table["kind"].to_numpy())
        if len(table) == 0:
            proba = np.zeros(0)
        elif split is not None:
            featurizer, head = split
            with log.stage("features"):
                features = featurize_blockwise(
                    featurizer, table, index, spacing=spacing, slab_layers=block
                )
            with log.stage("classify"):
                proba = head(features)
        else:
            with log.stage("features+classify"):
                full = corrector.screener_.screen(volume, spacing=spacing)
                proba = corrector.predict_proba_table(full)
        with log.stage("merge+interpolate"):
            canvas, corrected = make_canvas(volume, None, False)
            decisions = corrector._decide_and_merge(table, proba, index, canvas, spacing, block)
    return corrected, decisions, len(table)


def temp_workdir() -> tempfile.TemporaryDirectory:
    """A scratch directory for volumes and models, removed on exit."""
    return tempfile.TemporaryDirectory(prefix="overseg_bench_")


def merged_pairs(decisions) -> np.ndarray:
    """``(cell_a, cell_b)`` of the merged decisions, shape (n, 2)."""
    if len(decisions) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    rows = decisions[decisions["merged"].to_numpy(dtype=bool)]
    return rows[["cell_a", "cell_b"]].to_numpy(dtype=np.int64)


def fmt_bytes(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def fmt_seconds(s: float) -> str:
    if s != s:  # NaN
        return "n/a"
    return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def print_table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    """A Markdown-style table; returns the text it printed."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = "\n".join(
        [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + [line(r) for r in rows]
    )
    print(text)
    return text

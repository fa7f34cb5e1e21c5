"""What the ``overseg`` commands do, once :mod:`~sklearn_overseg.cli._parser` checked the arguments.

Imported by :func:`sklearn_overseg.cli.main` only after those checks passed; each
command imports what it needs when it needs it, so that a run pays only for its own
imports.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .._progress import listen
from ._parser import UserError, check_output, out_of_core

__all__ = ["COMMANDS"]

#: The stages :meth:`SegmentationCorrector.correct` announces, in order.
_CORRECT_STAGES = ("index", "screen", "features", "merge")
#: Above this share of in-plane neighbour pairs (with a cell on either side) holding
#: different values, a volume is taken for an intensity image: label volumes are
#: piecewise constant, microscope images are not. Measured on the shared data: label
#: volumes 0.03-0.10, the raw images they were segmented from 0.65-0.99.
_MAX_NEIGHBOUR_CHANGE = 0.5
#: Layers sampled for that test (a central crop of two layers for a lazily read volume).
_SAMPLE_LAYERS = 16
_LAZY_SAMPLE_LAYERS = 2
_LAZY_SAMPLE_SIZE = 512
# io's messages speak of the ``key=`` argument; on the command line it is ``--key``.
_CLI_WORDS = (
    ("choose one with key=", "choose one with --key"),
    ("leave key=None", "leave out --key"),
)


def _on_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def _steps(args, command: str, names: list[str]) -> Iterator[Callable[[str], None]]:
    """A progress bar named after the running step; silent off a terminal or with -q.

    Yields ``step(name)``, called when a step starts; :func:`~sklearn_overseg._progress.listen`
    routes the library's own stages (index, screen, ...) to it.
    """
    if args.quiet or not _on_terminal():
        yield lambda name: None
        return
    from tqdm import tqdm

    bar = tqdm(
        total=len(names),
        desc=command,
        leave=False,
        bar_format="{desc} [step {n_fmt}/{total_fmt}, {elapsed}]",
    )

    def step(name: str) -> None:
        bar.n = names.index(name) + 1 if name in names else min(bar.n + 1, len(names))
        bar.set_description_str(f"{command}: {name}", refresh=True)

    try:
        yield step
    finally:
        bar.close()


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message)


def _read(reader, path: str, key: str | None, sparse: bool = False, **kwargs):
    """``(volume, spacing)`` from ``reader`` (load_volume/open_volume) in the CLI's words."""
    try:
        return reader(path, key=key, return_spacing=True, allow_missing_chunks=sparse, **kwargs)
    except (KeyError, ValueError) as exc:  # read errors name the API's arguments
        message = str(exc)
        for api, cli in _CLI_WORDS:
            message = message.replace(api, cli)
        raise UserError(message) from None


def _check_looks_like_labels(volume, path: str) -> None:
    """Refuse an intensity image: a label volume is piecewise constant, a raw image is not.

    The rule (the share of neighbouring in-plane voxels that differ, among pairs with a
    non-zero voxel) reads a few layers only; volumes that are not 3D integer arrays are
    left to the checks that follow.
    """
    if len(volume.shape) != 3 or np.dtype(volume.dtype).kind not in "iu":
        return
    n_z, n_y, n_x = volume.shape
    lazy = not isinstance(volume, np.ndarray)
    n_layers = _LAZY_SAMPLE_LAYERS if lazy else _SAMPLE_LAYERS
    layers = np.unique(np.linspace(0, n_z - 1, min(n_layers, n_z)).round().astype(int))
    if lazy:  # a central crop: reading whole planes of a huge store is not a check
        y0 = max(0, (n_y - _LAZY_SAMPLE_SIZE) // 2)
        x0 = max(0, (n_x - _LAZY_SAMPLE_SIZE) // 2)
        frame = (slice(y0, y0 + _LAZY_SAMPLE_SIZE), slice(x0, x0 + _LAZY_SAMPLE_SIZE))
    else:
        frame = (slice(None), slice(None))
    changed = pairs = 0
    for z in layers:
        layer = np.asarray(volume[(int(z), *frame)])
        for one, two in ((layer[:, 1:], layer[:, :-1]), (layer[1:], layer[:-1])):
            cell = (one != 0) | (two != 0)
            pairs += int(np.count_nonzero(cell))
            changed += int(np.count_nonzero(cell & (one != two)))
    if pairs and changed / pairs > _MAX_NEIGHBOUR_CHANGE:
        raise UserError(
            f"{path} looks like an intensity image, not a label volume: "
            f"{changed / pairs:.0%} of neighbouring voxels differ (a label volume, one "
            "integer id per cell, has under 10 % on its cell boundaries). Segment the "
            "image first and give overseg the labels."
        )


def _stitch(volume, args):
    from ..stitch import stitch_slices

    return stitch_slices(
        volume, iou_threshold=args.iou_threshold, relabel_layers=args.relabel_layers
    )


def _screener(kind: str, max_gap: int | None):
    """The screening of the shipped model of ``kind`` (``--screen``).

    "axial" is the default model's: axial gaps of up to ``max_gap`` (default 3) layers
    and pieces that share a layer, what per-slice segmentation stitched in z leaves.
    """
    from ..screening.contact import ContactScreener
    from ..synthesis.stitched_flaws import stitched_screener

    stitched = stitched_screener(3 if max_gap is None else max_gap)
    if kind == "axial":
        return stitched
    if kind == "contact":
        return ContactScreener(max_layers=8)
    return stitched.set_params(contact=ContactScreener(max_layers=8))


def _with_max_gap(screener, max_gap: int):
    """A copy of a trained screener with another ``max_gap``, its other settings kept."""
    from sklearn.base import clone

    from ..screening.contact import CombinedScreener

    key = "axial__max_gap" if isinstance(screener, CombinedScreener) else "max_gap"
    return clone(screener).set_params(**{key: max_gap})


def _load_model(path, kind: str = "axial"):
    from ..pretrained import load_pretrained

    if path is not None:
        return load_pretrained(path)
    return load_pretrained(kind=kind)


def _configured_model(args):
    """The model of ``--model``/``--screen`` with the options of the command line."""
    from sklearn.base import clone

    corrector = _load_model(args.model, args.screen)
    if args.model is not None and args.screen != "axial":
        # A user's model judges whatever screening is asked for.
        corrector.screener_ = clone(_screener(args.screen, args.max_gap))
    elif args.max_gap is not None:
        corrector.screener_ = _with_max_gap(corrector.screener_, args.max_gap)
    params = {"n_jobs": args.n_jobs, "interpolation": args.interpolation}
    if args.threshold is not None:
        # Unset, each model keeps the threshold it was tuned with (per kind for "both").
        params["threshold"] = args.threshold
    return corrector.set_params(**params)


def _write_csv(table, path, overwrite: bool) -> None:
    path = check_output(path, overwrite)  # again: the run may have taken a while
    from ..io.volumes import atomic_output

    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as handle:
        table.to_csv(handle)


# ------------------------------------------------------------------------------ correct
def cmd_correct(args) -> int:
    from ..io.volumes import load_volume, open_volume, save_volume

    out = Path(args.output)
    if args.plot:
        from ..evaluation.plotting import _check_path, plot_orthogonal_views

        _check_path(args.plot, args.overwrite)  # the figure format fails before any work
    streaming = out_of_core(args)
    names = ["read", *(["stitch"] if args.stitched_slices else [])]
    names += ["model", *_CORRECT_STAGES, "write"]
    timings: dict[str, float] = {}
    with _steps(args, "correct", names) as step, _scheduler(args):
        step("read")
        t0 = time.perf_counter()
        if streaming:
            volume, spacing = _read(open_volume, args.input, args.key, args.sparse)
        else:
            volume, spacing = _read(
                load_volume, args.input, args.key, args.sparse, validate=not args.stitched_slices
            )
        _check_looks_like_labels(volume, args.input)
        timings["open" if streaming else "load"] = time.perf_counter() - t0
        if args.stitched_slices:
            step("stitch")
            t0 = time.perf_counter()
            volume = _stitch(volume, args)
            timings["stitch"] = time.perf_counter() - t0
        step("model")
        t0 = time.perf_counter()
        corrector = _configured_model(args)
        timings["model"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # The file name names the volume, in this report as in ``overseg screen``'s.
        volume_id = Path(args.input).stem
        with listen(step):
            if streaming:
                corrected, decisions = _correct_to_zarr(
                    corrector, volume, out, spacing, args.slab_layers, args.overwrite, volume_id
                )
            else:
                corrected, decisions = corrector.correct(
                    volume, slab_layers=args.slab_layers, volume_id=volume_id
                )
        timings["correct"] = time.perf_counter() - t0
        step("write")
        t0 = time.perf_counter()
        if not streaming:
            save_volume(out, corrected, spacing=spacing, overwrite=args.overwrite)
        if args.report:
            _write_csv(decisions, args.report, args.overwrite)
        if args.plot:
            plot_orthogonal_views(
                volume,
                corrected,
                decisions=decisions,
                spacing=spacing,
                path=args.plot,
                overwrite=args.overwrite,
            )
        timings["write"] = time.perf_counter() - t0
    n_merged = int(decisions["merged"].sum()) if len(decisions) else 0
    filled = int(decisions["filled_voxels"].sum()) if len(decisions) else 0
    _say(
        args,
        f"{args.input}: {len(decisions)} candidates, {n_merged} merged, {filled} voxels filled "
        f"-> {out} ({sum(timings.values()):.1f} s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        + ")",
    )
    return 0


def _correct_to_zarr(corrector, volume, out: Path, spacing, slab_layers, overwrite, volume_id):
    """Correct into a new Zarr store chunk by chunk, moved into place once complete."""
    import zarr

    from ..io.volumes import atomic_output

    chunks = getattr(volume, "chunks", None)
    if not chunks or len(chunks) != 3:
        chunks = (min(volume.shape[0], 16), min(volume.shape[1], 256), min(volume.shape[2], 256))
    # Absolute, so that workers started elsewhere (a Dask cluster) write the same store.
    with atomic_output(out.resolve(), directory=True, overwrite=overwrite) as tmp:
        target = zarr.create_array(
            store=str(tmp),
            shape=volume.shape,
            dtype=volume.dtype,
            chunks=tuple(int(c) for c in chunks),
            attributes={} if spacing is None else {"spacing": list(spacing)},
            overwrite=True,  # the temporary directory exists already, empty
            # Every chunk written: a chunk missing later then means a lost file.
            config={"write_empty_chunks": True},
        )
        return corrector.correct(volume, out=target, slab_layers=slab_layers, volume_id=volume_id)


@contextlib.contextmanager
def _dask_backend(address: str | None, n_workers: int | None):
    """joblib's dask backend on a cluster (``--scheduler``) or a local one (``--dask``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(
            "--scheduler/--dask need dask.distributed: pip install 'sklearn-overseg[dask]'."
        ) from None
    from joblib import parallel_config

    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            # A local cluster's workers are processes of this machine: no more than cores.
            from .._validation import effective_n_jobs

            n = effective_n_jobs(n_workers if n_workers else -1)
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n, threads_per_worker=1, dashboard_address=None, processes=True
                )
            )
            client = Client(cluster)
        # Entered after the cluster, so closed before it.
        stack.enter_context(client)
        stack.enter_context(parallel_config(backend="dask"))
        yield client


def _scheduler(args):
    if args.scheduler or args.dask:
        return _dask_backend(args.scheduler, args.n_jobs)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------- stitch
def cmd_stitch(args) -> int:
    from ..io.volumes import load_volume, save_volume

    with _steps(args, "stitch", ["read", "stitch", "write"]) as step:
        step("read")
        # Unvalidated: stitch_slices says what is wrong with a stack in its own terms.
        stack, spacing = _read(load_volume, args.input, args.key, args.sparse, validate=False)
        _check_looks_like_labels(stack, args.input)
        step("stitch")
        volume = _stitch(stack, args)
        step("write")
        save_volume(args.output, volume, spacing=spacing, overwrite=args.overwrite)
    n_cells = int(volume.max())
    _say(args, f"{args.input}: {volume.shape[0]} layers -> {n_cells} cells -> {args.output}")
    return 0


# ------------------------------------------------------------------------------- screen
def cmd_screen(args) -> int:
    from ..io.volumes import load_volume

    with _steps(args, "screen", ["read", "screen", "write"]) as step:
        step("read")
        volume, spacing = _read(load_volume, args.input, args.key, args.sparse)
        _check_looks_like_labels(volume, args.input)
        step("screen")
        table = _screener(args.screen, args.max_gap).screen(
            volume, volume_id=Path(args.input).stem, spacing=spacing
        )
        step("write")
        _write_csv(table.drop(columns=["geometry"]), args.output, args.overwrite)
    _say(args, f"{args.input}: {len(table)} candidates -> {args.output}")
    return 0


# -------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from ..correction.corrector import SegmentationCorrector
    from ..io.persistence import save_estimator
    from ..io.volumes import load_volume

    out = Path(args.output)
    names = ["read", "training pairs", "features and classifier", "save"]
    with _steps(args, "train", names) as step:
        step("read")
        volumes = {}
        for i, path in enumerate(args.ground_truth):
            name = Path(path).stem
            volume, _ = _read(load_volume, path, args.key, args.sparse)
            _check_looks_like_labels(volume, path)
            volumes[name if name not in volumes else f"{name}#{i}"] = volume
        corrector = SegmentationCorrector(
            screener=_screener(args.screen, args.max_gap),
            split_fraction=args.split_fraction,
            n_repeats=args.repeats,
            z_subsample=tuple(args.z_subsample),
            n_jobs=args.n_jobs,
            random_state=args.seed,
        )
        t0 = time.perf_counter()
        with listen(step):
            corrector.fit(volumes)
        step("save")
        save_estimator(
            corrector,
            out,
            overwrite=args.overwrite,
            metadata={"trained_on": [str(p) for p in args.ground_truth]},
        )
    _say(
        args,
        f"trained on {corrector.n_training_pairs_} pairs {corrector.training_balance_} "
        f"in {time.perf_counter() - t0:.1f} s -> {out}",
    )
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from ..evaluation.metrics import segmentation_scores
    from ..io.volumes import load_volume

    with _steps(args, "evaluate", ["read", "score"]) as step:
        step("read")
        pred, _ = _read(load_volume, args.prediction, args.key, args.sparse)
        gt, _ = _read(load_volume, args.ground_truth, args.key, args.sparse)
        for volume, path in ((pred, args.prediction), (gt, args.ground_truth)):
            _check_looks_like_labels(volume, path)
        step("score")
        scores = segmentation_scores(pred, gt)
    for name, value in scores.items():
        print(f"{name}\t{value:.4f}" if isinstance(value, float) else f"{name}\t{value}")
    return 0


# --------------------------------------------------------------------------------- demo
_NEXT_STEPS = """\
next steps:
  overseg correct LABELS.tif -o corrected.tif --report decisions.csv    # your own volume
  overseg correct LABELS.tif -o corrected.tif --screen both             # tilted cuts too
  overseg stitch SLICES.tif -o labels.tif                               # 2D masks per layer into 3D
  overseg evaluate corrected.tif ground_truth.tif                       # mAP against a ground truth
  overseg demo -o demo.tif --report demo.csv                            # keep this demo's results
  overseg COMMAND --help                                                # options and defaults"""


def cmd_demo(args) -> int:
    from ..evaluation.metrics import mean_average_precision, pair_scores
    from ..synthesis.datasets import load_demo

    names = ["read", "model", *_CORRECT_STAGES, "score", "write"]
    with _steps(args, "demo", names) as step:
        step("read")
        demo = load_demo()
        step("model")
        corrector = _load_model(args.model)
        t0 = time.perf_counter()
        with listen(step):
            corrected, decisions = corrector.correct(demo.labels, volume_id="demo")
        elapsed = time.perf_counter() - t0
        step("score")
        merged = decisions[decisions["merged"]]
        truth = list(zip(demo.merges["cell_a"], demo.merges["cell_b"], strict=True))
        pairs = pair_scores(list(zip(merged["cell_a"], merged["cell_b"], strict=True)), truth)
        before = mean_average_precision(demo.labels, demo.ground_truth)
        after = mean_average_precision(corrected, demo.ground_truth)
        step("write")
        if args.output:
            from ..io.volumes import save_volume

            save_volume(args.output, corrected, overwrite=args.overwrite)
        if args.report:
            _write_csv(decisions, args.report, args.overwrite)
    if args.quiet:
        return 0
    columns = ["cell_a", "cell_b", "gap", "probability", "merged", "reason", "filled_voxels"]
    print(decisions[columns].to_string(max_rows=40))
    print(
        f"\ndemo: Arabidopsis ovule {demo.labels.shape} with {len(truth)} synthesised splits: "
        f"{len(decisions)} candidates, {len(merged)} merged in {elapsed:.1f} s; "
        f"pair precision {pairs['precision']:.2f} recall {pairs['recall']:.2f} "
        f"F1 {pairs['f1']:.2f}; mAP {before:.3f} -> {after:.3f}"
    )
    written = [
        f"{what} -> {path}"
        for what, path in (("volume", args.output), ("decisions", args.report))
        if path
    ]
    if written:
        print("wrote " + ", ".join(written))
    print("\n" + _NEXT_STEPS)
    return 0


COMMANDS = {
    "correct": cmd_correct,
    "stitch": cmd_stitch,
    "screen": cmd_screen,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
}

"""The ``overseg`` command.

User errors (bad files, bad volumes, bad options) end with exit code 2 and a one-line
message on stderr, never a traceback; outputs are written atomically, so a failed run
leaves no partial file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


class UserError(Exception):
    """A problem the user can fix; reported in one line with exit code 2."""


def _progress(quiet: bool, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False)


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message)


def _write_csv_atomic(table, path: Path, overwrite: bool) -> None:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    from .io import atomic_output

    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as handle:
        table.to_csv(handle)


def _screener(kind: str, max_gap: int | None):
    from .screening import AxialGapScreener

    max_gap = 1 if max_gap is None else max_gap
    if kind == "axial":
        return AxialGapScreener(max_gap=max_gap)
    from .contact import CombinedScreener, ContactScreener

    if kind == "contact":
        return ContactScreener(max_layers=8)
    return CombinedScreener(
        axial=AxialGapScreener(max_gap=max_gap), contact=ContactScreener(max_layers=8)
    )


def _load_model(path, kind: str = "axial"):
    from .pretrained import load_pretrained

    if path is not None:
        return load_pretrained(path)
    return load_pretrained(kind=kind)


def cmd_correct(args) -> int:
    from sklearn.base import clone

    from ._io_paths import check_output_paths
    from .io import load_volume, open_volume, save_volume, volume_format

    out = Path(args.output)
    volume_format(out)  # an unknown extension fails now, not after the work
    if args.slab_layers is not None and args.slab_layers < 1:
        raise UserError(f"--slab-layers must be a positive integer, got {args.slab_layers}.")
    outputs = {"-o": args.output, "--report": args.report, "--plot": args.plot}
    check_output_paths([args.input], outputs, overwrite=args.overwrite)
    if args.plot:
        try:
            from .plotting import _check_path, plot_orthogonal_views
        except ImportError as exc:
            raise UserError(f"--plot is not available: {exc}") from None
        _check_path(args.plot, args.overwrite)  # the figure format fails before any work
    out_of_core = _out_of_core(args, out)
    if out_of_core and args.plot:
        raise UserError(
            "--plot draws from whole volumes in memory; add --in-memory, or plot a crop of "
            "the corrected Zarr store later."
        )
    timings = {}
    with _progress(args.quiet, 4, "correct") as bar, _scheduler(args):
        t0 = time.perf_counter()
        read = open_volume if out_of_core else load_volume
        volume, spacing = read(
            args.input, key=args.key, return_spacing=True, allow_missing_chunks=args.sparse
        )
        timings["open" if out_of_core else "load"] = time.perf_counter() - t0
        bar.update()
        t0 = time.perf_counter()
        corrector = _load_model(args.model, args.screen)
        if args.model is not None and args.screen != "axial":
            # A user's model judges whatever screening is asked for.
            corrector.screener_ = clone(_screener(args.screen, args.max_gap))
        elif args.max_gap is not None:
            # Keep the trained screener's other settings (min_overlap, ...).
            key = "max_gap" if args.screen == "axial" else "axial__max_gap"
            corrector.screener_ = clone(corrector.screener_).set_params(**{key: args.max_gap})
        corrector.set_params(
            threshold=args.threshold, n_jobs=args.n_jobs, interpolation=args.interpolation
        )
        timings["model"] = time.perf_counter() - t0
        bar.update()
        t0 = time.perf_counter()
        if out_of_core:
            corrected, decisions = _correct_to_zarr(
                corrector, volume, out, spacing, args.slab_layers, args.overwrite
            )
        else:
            corrected, decisions = corrector.correct(volume, slab_layers=args.slab_layers)
        timings["correct"] = time.perf_counter() - t0
        bar.update()
        t0 = time.perf_counter()
        if not out_of_core:
            save_volume(out, corrected, spacing=spacing, overwrite=args.overwrite)
        if args.report:
            _write_csv_atomic(decisions, Path(args.report), args.overwrite)
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
        bar.update()
    n_merged = int(decisions["merged"].sum()) if len(decisions) else 0
    _say(
        args,
        f"{args.input}: {len(decisions)} candidates, {n_merged} merged, "
        f"{int(decisions['filled_voxels'].sum()) if len(decisions) else 0} voxels filled "
        f"-> {out} ({sum(timings.values()):.1f} s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        + ")",
    )
    return 0


def _out_of_core(args, out: Path) -> bool:
    """Whether to stream: Zarr/HDF5 in, Zarr out, unless --in-memory (or --out-of-core)."""
    from .io import volume_format

    streamable = volume_format(Path(args.input)) in ("zarr", "hdf5")
    zarr_out = volume_format(out) == "zarr"
    if args.out_of_core and not zarr_out:
        raise UserError(
            f"--out-of-core writes a Zarr store: give an output ending in .zarr, not {out.name}."
        )
    if args.out_of_core:
        return True
    return streamable and zarr_out and not args.in_memory


def _correct_to_zarr(corrector, volume, out: Path, spacing, slab_layers, overwrite: bool):
    """Correct into a new Zarr store chunk by chunk, moved into place once complete."""
    import zarr

    from .io import atomic_output

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
        return corrector.correct(volume, out=target, slab_layers=slab_layers)


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

    from ._validation import effective_n_jobs

    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            # A local cluster's workers are processes of this machine: no more than cores.
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


def cmd_screen(args) -> int:
    from ._io_paths import check_output_paths
    from .io import load_volume

    out = Path(args.output)
    check_output_paths([args.input], {"-o": out}, overwrite=args.overwrite)
    volume, spacing = load_volume(
        args.input, key=args.key, return_spacing=True, allow_missing_chunks=args.sparse
    )
    table = _screener(args.screen, args.max_gap).screen(
        volume, volume_id=Path(args.input).stem, spacing=spacing
    )
    _write_csv_atomic(table.drop(columns=["geometry"]), out, args.overwrite)
    _say(args, f"{args.input}: {len(table)} candidates -> {out}")
    return 0


def cmd_train(args) -> int:
    from ._io_paths import check_output_paths
    from .corrector import SegmentationCorrector
    from .io import load_volume
    from .persistence import save_estimator

    out = Path(args.output)
    check_output_paths(args.ground_truth, {"-o": out}, overwrite=args.overwrite)
    volumes = {}
    for i, path in enumerate(args.ground_truth):
        name = Path(path).stem
        volumes[name if name not in volumes else f"{name}#{i}"] = load_volume(
            path, key=args.key, allow_missing_chunks=args.sparse
        )
    corrector = SegmentationCorrector(
        screener=_screener(args.screen, args.max_gap),
        split_fraction=args.split_fraction,
        n_repeats=args.repeats,
        z_subsample=tuple(args.z_subsample),
        n_jobs=args.n_jobs,
        random_state=args.seed,
    )
    t0 = time.perf_counter()
    corrector.fit(volumes)
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


def cmd_evaluate(args) -> int:
    from .io import load_volume
    from .metrics import segmentation_scores

    pred = load_volume(args.prediction, key=args.key, allow_missing_chunks=args.sparse)
    gt = load_volume(args.ground_truth, key=args.key, allow_missing_chunks=args.sparse)
    scores = segmentation_scores(pred, gt)
    for name, value in scores.items():
        print(f"{name}\t{value:.4f}" if isinstance(value, float) else f"{name}\t{value}")
    return 0


def cmd_demo(args) -> int:
    from .datasets import load_demo
    from .metrics import mean_average_precision, pair_scores

    demo = load_demo()
    corrector = _load_model(args.model)
    t0 = time.perf_counter()
    corrected, decisions = corrector.correct(demo.labels)
    elapsed = time.perf_counter() - t0
    merged = decisions[decisions["merged"]]
    truth = list(zip(demo.merges["cell_a"], demo.merges["cell_b"], strict=True))
    pairs = pair_scores(list(zip(merged["cell_a"], merged["cell_b"], strict=True)), truth)
    columns = ["cell_a", "cell_b", "gap", "probability", "merged", "reason", "filled_voxels"]
    print(decisions[columns].to_string(max_rows=40))
    print(
        f"\ndemo: Arabidopsis ovule {demo.labels.shape} with {len(truth)} synthesised splits: "
        f"{len(decisions)} candidates, {len(merged)} merged in {elapsed:.1f} s; "
        f"pair precision {pairs['precision']:.2f} recall {pairs['recall']:.2f} "
        f"F1 {pairs['f1']:.2f}; mAP {mean_average_precision(demo.labels, demo.ground_truth):.3f}"
        f" -> {mean_average_precision(corrected, demo.ground_truth):.3f}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``overseg`` command."""
    parser = argparse.ArgumentParser(
        prog="overseg",
        description="Find and repair oversegmentation in 3D cell label volumes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, *, output=True):
        p.add_argument("--key", help="dataset key inside .h5/.zarr/.npz inputs")
        p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
        p.add_argument(
            "--sparse",
            action="store_true",
            help="accept Zarr inputs with chunk files missing (read as background)",
        )
        if output:
            p.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    def screening(p):
        p.add_argument(
            "--screen",
            choices=["axial", "contact", "both"],
            default="axial",
            help="candidate screening (default: axial)",
        )
        p.add_argument("--max-gap", type=int, default=None, help="most missing layers (axial)")

    p = sub.add_parser("correct", help="correct a label volume")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", help="model directory (default: the shipped model)")
    screening(p)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--interpolation", choices=["ot", "sdf", "none"], default="ot")
    p.add_argument("--report", help="write the decision table as CSV")
    p.add_argument("--plot", help="write an orthogonal-view figure (PNG)")
    p.add_argument("--n-jobs", type=int, default=None)
    p.add_argument(
        "--slab-layers",
        type=int,
        default=None,
        help="z layers per slab for indexing, screening, features and writing "
        "(default: slabs of about 32 million voxels, feature blocks of 64 layers)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--out-of-core",
        action="store_true",
        help="stream the input slab by slab into a Zarr output (default for Zarr/HDF5 "
        "input with Zarr output)",
    )
    where.add_argument(
        "--in-memory", action="store_true", help="load the whole input even from Zarr/HDF5"
    )
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the parallel stages on this Dask scheduler (tcp://host:8786)",
    )
    cluster.add_argument(
        "--dask",
        action="store_true",
        help="run the parallel stages on a local Dask cluster of --n-jobs workers",
    )
    common(p)
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("screen", help="write the candidate table as CSV")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    screening(p)
    common(p)
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("train", help="train a model from ground-truth volumes")
    p.add_argument("ground_truth", nargs="+")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    screening(p)
    p.add_argument("--z-subsample", type=int, nargs="+", default=[1])
    p.add_argument("--split-fraction", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=None)
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="mAP and Jaccard of a prediction against ground truth")
    p.add_argument("prediction")
    p.add_argument("ground_truth")
    common(p, output=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="correct the bundled demo volume and score it")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``overseg`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (
        getattr(args, "threshold", 0.5) is not None
        and not 0 <= args.__dict__.get("threshold", 0.5) <= 1
    ):
        parser.error(f"--threshold must be between 0 and 1, got {args.threshold}")
    if getattr(args, "screen", None) == "contact" and getattr(args, "max_gap", None) is not None:
        parser.error(
            "--max-gap bounds the axial screening; --screen contact has no gap "
            "(use --screen both to screen gaps too)"
        )
    try:
        return args.func(args)
    except (
        UserError,
        # Also VolumeReadError, ZarrChunkError (io), ModelFileError (persistence) and
        # OutputPathError (_io_paths): ValueError subclasses naming the file at fault.
        ValueError,
        TypeError,
        KeyError,
        OSError,
    ) as exc:
        if os.environ.get("OVERSEG_DEBUG"):
            raise  # the full traceback, to tell a bug from a user error
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        # One line, whatever the library put in its message.
        print(f"overseg: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("overseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

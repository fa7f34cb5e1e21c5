"""The ``overseg`` argument parser and the checks that need no data: standard library only.

``overseg --help``, ``--version`` and every refusal that can be decided from the command
line and the file system alone (an existing output, a missing folder, an unknown
extension, options that contradict each other) run from here, before numpy, scikit-learn
or the model are imported; :mod:`sklearn_overseg.cli._commands` does the work.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import textwrap
from pathlib import Path

from .. import __version__
from ..io._formats import KEYED_FORMATS, volume_format

__all__ = ["EXIT_CODES", "UserError", "build_parser", "check_arguments"]


class UserError(Exception):
    """A problem the user can fix; reported in one line with exit code 2."""


#: Exit status of ``overseg`` and what it means.
EXIT_CODES = {
    0: "success",
    1: "an unexpected error, a bug: the traceback is printed (please report it)",
    2: "a user error: a bad option, file or volume, or an output that exists; one line "
    "on stderr, nothing written",
    130: "interrupted (Ctrl-C)",
}


def _epilog() -> str:
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODES.items():
        first, *rest = textwrap.wrap(meaning, 66)
        lines += [f"  {code:<4} {first}", *(f"       {line}" for line in rest)]
    lines += [
        "",
        "OVERSEG_DEBUG=1 shows the traceback of a user error too. Progress bars appear",
        "on a terminal only, never in pipes or with --quiet. Documentation: docs/cli.md",
    ]
    return "\n".join(lines)


_EPILOG = _epilog()
_DEFAULT_IOU = 0.25  # stitch_slices' default (tests/test_cli_options.py checks)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks; help texts carry their default themselves."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _add(parser, *flags: str, default_text: str | None = None, **kwargs) -> argparse.Action:
    """``add_argument`` with ``(default: ...)`` (or ``(required)``) appended to the help.

    ``default_text`` names a default that is not a plain value ("the shipped model");
    otherwise the default itself is shown, and ``off`` for flags.
    """
    if kwargs.get("required"):
        kwargs["help"] = f"{kwargs['help']} (required)"
    elif flags[0].startswith("-"):
        if default_text is None:
            if kwargs.get("action") == "store_true":
                default_text = "off"
            else:
                default = kwargs.get("default")
                if isinstance(default, list):
                    default = " ".join(str(v) for v in default)
                default_text = str(default)
        kwargs["help"] = f"{kwargs['help']} (default: {default_text})"
    return parser.add_argument(*flags, **kwargs)


def _common(p, *, output: bool = True) -> None:
    _add(p, "--key", help="dataset key inside .h5/.zarr/.npz files", default_text="the only one")
    _add(p, "--quiet", "-q", action="store_true", help="print nothing on success")
    _add(
        p,
        "--sparse",
        action="store_true",
        help="accept Zarr inputs with chunk files missing (read as background)",
    )
    if output:
        _add(p, "--overwrite", action="store_true", help="replace existing outputs")


def _screening(p, max_gap_default: str) -> None:
    _add(
        p,
        "--screen",
        choices=["axial", "contact", "both"],
        default="axial",
        help="candidate screening: axial (splits along z across up to --max-gap missing "
        "layers, and pieces of one cell side by side in a layer), contact (cut by a "
        "tilted surface) or both, each judged by its own shipped model",
    )
    _add(
        p,
        "--max-gap",
        type=int,
        default=None,
        help="most missing layers between the two parts of an axial split",
        default_text=max_gap_default,
    )


def _n_jobs(p) -> None:
    _add(
        p,
        "--n-jobs",
        type=int,
        default=None,
        help="parallel worker processes for screening, features and filling; -1: all cores",
        default_text="1",
    )


def _stitching(p, *, prefix: str = "") -> None:
    _add(
        p,
        "--iou-threshold",
        type=float,
        default=_DEFAULT_IOU,
        help=f"{prefix}smallest IoU of two masks of consecutive layers that links them",
    )
    _add(
        p,
        "--relabel-layers",
        action="store_true",
        help=f"{prefix}accept a stack whose ids already run across layers and treat each "
        "layer's masks as independent",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``overseg`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="overseg",
        description="Find and repair oversegmentation in 3D cell label volumes.",
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"overseg (sklearn_overseg) {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=_EPILOG,
            formatter_class=_HelpFormatter,
        )

    p = command("correct", "correct a label volume")
    p.add_argument("input", help="the label volume to correct (.tif .h5 .zarr .npy .npz)")
    _add(
        p,
        "-o",
        "--output",
        required=True,
        help="the corrected volume; its extension sets the format",
    )
    _add(p, "--model", help="model directory from overseg train", default_text="the shipped model")
    _screening(p, "the model's own")
    _add(
        p,
        "--threshold",
        type=float,
        default=None,
        help="merge pairs whose probability exceeds this, in [0, 1], for every kind",
        default_text="the model's own, per kind",
    )
    _add(
        p,
        "--interpolation",
        choices=["ot", "sdf", "none"],
        default="ot",
        help="how the missing layers of a merged pair are filled",
    )
    _add(p, "--report", help="write the decision table as CSV", default_text="none")
    _add(
        p,
        "--plot",
        help="write an orthogonal-view figure (PNG); needs matplotlib",
        default_text="none",
    )
    _n_jobs(p)
    _add(
        p,
        "--slab-layers",
        type=int,
        default=None,
        help="z layers per slab for indexing, screening, features and writing",
        default_text="slabs of about 32 million voxels, feature blocks of 64 layers",
    )
    where = p.add_mutually_exclusive_group()
    _add(
        where,
        "--out-of-core",
        action="store_true",
        help="stream the input slab by slab into a Zarr output",
        default_text="on for Zarr/HDF5 input with Zarr output",
    )
    _add(where, "--in-memory", action="store_true", help="load the whole input even from Zarr/HDF5")
    cluster = p.add_mutually_exclusive_group()
    _add(
        cluster,
        "--scheduler",
        metavar="ADDRESS",
        help="run the parallel stages on this Dask scheduler (tcp://host:8786)",
        default_text="none: joblib on this machine",
    )
    _add(
        cluster,
        "--dask",
        action="store_true",
        help="run the parallel stages on a local Dask cluster of --n-jobs workers",
    )
    _add(
        p,
        "--stitched-slices",
        action="store_true",
        help="the input is a stack of 2D labels segmented layer by layer: stitch it "
        "(as overseg stitch) and correct the result",
    )
    _stitching(p, prefix="with --stitched-slices: ")
    _common(p)

    p = command("stitch", "link a stack of per-layer 2D labels into a 3D label volume")
    p.add_argument("input", help="a (Z, Y, X) stack, each layer labelled on its own")
    _add(p, "-o", "--output", required=True, help="the stitched 3D label volume")
    _stitching(p)
    _common(p)

    p = command("screen", "write the candidate table as CSV")
    p.add_argument("input", help="the label volume to screen")
    _add(p, "-o", "--output", required=True, help="the candidate table (CSV)")
    _screening(p, "3")
    _common(p)

    p = command("train", "train a model from ground-truth volumes")
    p.add_argument(
        "ground_truth", nargs="+", help="ground-truth label volumes (flaws are synthesised)"
    )
    _add(p, "-o", "--output", required=True, help="model directory to write")
    _screening(p, "3")
    _add(
        p,
        "--z-subsample",
        type=int,
        nargs="+",
        default=[1],
        help="also train on every k-th layer of each volume, for each k given",
    )
    _add(
        p,
        "--split-fraction",
        type=float,
        default=0.3,
        help="fraction of the tall cells split in each synthesised copy",
    )
    _add(p, "--repeats", type=int, default=2, help="synthesised flawed copies per volume")
    _add(p, "--seed", type=int, default=0, help="seeds the synthesis and the training")
    _n_jobs(p)
    _common(p)

    p = command("evaluate", "mAP and Jaccard of a prediction against ground truth")
    p.add_argument("prediction", help="the label volume to score")
    p.add_argument("ground_truth", help="the ground-truth label volume")
    _common(p, output=False)

    p = command("demo", "correct the bundled demo volume and score it")
    _add(p, "--model", help="model directory from overseg train", default_text="the shipped model")
    _add(p, "-o", "--output", help="write the corrected demo volume", default_text="none")
    _add(p, "--report", help="write the decision table as CSV", default_text="none")
    _add(p, "--quiet", "-q", action="store_true", help="print nothing on success")
    _add(p, "--overwrite", action="store_true", help="replace existing outputs")
    return parser


# ------------------------------------------------------------------------------- checks
def check_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an output that exists (without ``--overwrite``) or whose folder is missing."""
    out = Path(path)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    if not out.absolute().parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist.")
    return out


def _check_input(path: str, key: str | None) -> None:
    fmt = volume_format(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"Volume file not found: '{path}'.")
    if key is not None and fmt not in KEYED_FORMATS:
        raise UserError(
            f"--key {key} was given but '{Path(path).name}' is a {fmt} file, which holds a "
            "single array; --key is only used for .h5/.hdf5, .zarr and .npz files."
        )


def out_of_core(args) -> bool:
    """Whether ``correct`` streams: Zarr/HDF5 in, Zarr out, unless --in-memory."""
    zarr_out = volume_format(args.output) == "zarr"
    if args.out_of_core and not zarr_out:
        raise UserError(
            "--out-of-core writes a Zarr store: give an output ending in .zarr, not "
            f"{Path(args.output).name}."
        )
    if args.out_of_core:
        return True
    if args.stitched_slices:
        return False  # stitching needs the whole stack in memory
    streamable = volume_format(args.input) in ("zarr", "hdf5")
    return streamable and zarr_out and not args.in_memory


def _check_threshold(args) -> None:
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")


def _check_max_gap(args) -> None:
    if args.screen == "contact" and args.max_gap is not None:
        raise UserError(
            "--max-gap bounds the axial screening; --screen contact has no gap "
            "(use --screen both to screen gaps too)"
        )
    if args.max_gap is not None and args.max_gap < 0:
        raise UserError(f"--max-gap must be 0 or more, got {args.max_gap}.")


def _check_iou(args) -> None:
    if not 0 < args.iou_threshold <= 1:  # NaN fails too
        raise UserError(f"--iou-threshold must be in (0, 1], got {args.iou_threshold}.")


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'sklearn_overseg[plot]' (or pip install matplotlib)."
        )


def check_arguments(args) -> None:
    """Every refusal that needs neither the data nor the model, before heavy imports.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by :func:`build_parser`.

    Raises
    ------
    UserError, FileExistsError, FileNotFoundError, ValueError
        With the one-line message the user sees.
    """
    command = args.command
    if command in ("correct", "screen", "train"):
        _check_max_gap(args)
    if command == "correct":
        _check_threshold(args)
        _check_input(args.input, args.key)
        check_output(args.output, args.overwrite)
        volume_format(args.output)  # an unknown extension fails now, not after the work
        if args.slab_layers is not None and args.slab_layers < 1:
            raise UserError(f"--slab-layers must be a positive integer, got {args.slab_layers}.")
        if not args.stitched_slices and (args.relabel_layers or args.iou_threshold != _DEFAULT_IOU):
            raise UserError("--iou-threshold and --relabel-layers need --stitched-slices.")
        if args.stitched_slices:
            _check_iou(args)
            if args.out_of_core:
                raise UserError(
                    "--stitched-slices stitches the whole stack in memory; drop --out-of-core."
                )
        for path in (args.report, args.plot):
            if path:
                check_output(path, args.overwrite)
        if out_of_core(args) and args.plot:
            raise UserError(
                "--plot draws from whole volumes in memory; add --in-memory, or plot a crop "
                "of the corrected Zarr store later."
            )
        if args.plot:
            _require_matplotlib()
    elif command == "stitch":
        _check_iou(args)
        _check_input(args.input, args.key)
        check_output(args.output, args.overwrite)
        volume_format(args.output)
    elif command == "screen":
        _check_input(args.input, args.key)
        check_output(args.output, args.overwrite)
    elif command == "train":
        for path in args.ground_truth:
            _check_input(path, args.key)
        check_output(args.output, args.overwrite)
        if args.repeats < 1:
            raise UserError(
                f"--repeats (n_repeats) must be a positive integer, got {args.repeats}."
            )
        if min(args.z_subsample) < 1:
            raise UserError(
                f"--z-subsample (z_subsample) takes positive integers, got {args.z_subsample}."
            )
        if not 0 <= args.split_fraction <= 1:  # NaN fails too
            raise UserError(f"--split-fraction must be in [0, 1], got {args.split_fraction}.")
    elif command == "evaluate":
        _check_input(args.prediction, args.key)
        _check_input(args.ground_truth, args.key)
    elif command == "demo":
        if args.output:
            check_output(args.output, args.overwrite)
            volume_format(args.output)
        if args.report:
            check_output(args.report, args.overwrite)
    _check_path_identity(args)


def _check_path_identity(args) -> None:
    """No output may be, or hold, an input (by resolved path and samefile); all writable."""
    from ..io._paths import check_output_paths

    command = args.command
    if command == "correct":
        inputs = [args.input]
        outputs = {"-o": args.output, "--report": args.report, "--plot": args.plot}
    elif command in ("stitch", "screen"):
        inputs, outputs = [args.input], {"-o": args.output}
    elif command == "train":
        inputs, outputs = list(args.ground_truth), {"-o": args.output}
    elif command == "demo":
        inputs, outputs = [], {"-o": args.output, "--report": args.report}
    else:
        return
    check_output_paths(inputs, outputs, overwrite=args.overwrite)

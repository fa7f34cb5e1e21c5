"""The ``--data`` option of the scripts and benchmarks that read the real data."""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn_overseg.synthesis.datasets import DATA_ENV, find_data_dir


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--data FOLDER``, by default the folder :func:`find_data_dir` finds."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"real-data folder (default: ${DATA_ENV}, else shared/data beside the checkout)",
    )


def data_folder(parser: argparse.ArgumentParser, given: Path | None) -> Path:
    """``--data`` when given, else the folder found; a usage error naming both otherwise."""
    if given is not None:
        if not given.is_dir():
            parser.error(f"--data {given} is not a directory")
        return given
    try:
        return find_data_dir(required=True)
    except FileNotFoundError as exc:
        parser.error(f"{exc} Or pass --data.")

"""Whole-process times of the ``overseg`` command, next to a plain read/find_objects/write.

What a user waits for is the whole process: interpreter, imports, model loading, the
correction and the write. Each case runs as a fresh ``python -m sklearn_overseg.cli``
process (best and median of ``--repeats`` runs, wall clock):

- ``overseg --help`` and a refusal (``correct`` onto an existing output);
- ``overseg correct`` of a small volume (the shipped ovule demo, 32 x 128 x 128) and of a
  mid-size one (every 4th layer of ``plant_tissue_a`` with synthesised splits,
  38 x 326 x 283, 3.5 M voxels);
- for each volume, a plain Python process that reads the TIFF with tifffile, runs one
  ``scipy.ndimage.find_objects`` and writes it back (zlib): the floor of any tool that
  touches the file.

CPU time (user + system of the process and its children) is printed too: on a machine
shared with other work, wall-clock times stretch with the load, CPU times much less.

The runs read and write compiled bytecode in a cache of their own (``PYTHONPYCACHEPREFIX``
in the temporary folder, ``PYTHONDONTWRITEBYTECODE`` unset), and each case runs once
untimed first: an installed package has its bytecode compiled at install, while a checkout
in an environment that forbids writing bytecode would compile every module of the package
on every run (about 0.1 s of CPU for ``correct``), a cost users do not pay.

Run from the repository root::

    python benchmarks/startup.py                   # this checkout
    python benchmarks/startup.py --code /work/main # another checkout, for a before/after

Targets (issue 12): ``correct`` of the mid volume <= 2 s and <= 3x the plain process;
``--help`` and a refusal <= 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

TARGETS = {"help": 0.5, "refusal": 0.5, "correct_mid": 2.0, "ratio_mid": 3.0}

_PLAIN = """
import sys
import tifffile
from scipy import ndimage
volume = tifffile.imread(sys.argv[1])
ndimage.find_objects(volume)
tifffile.imwrite(sys.argv[2], volume, compression="zlib")
"""


def _volumes(folder: Path) -> dict[str, Path]:
    """The small and the mid-size volume as TIFFs in ``folder``."""
    import _volumes as bench_volumes

    from sklearn_overseg.io.volumes import save_volume
    from sklearn_overseg.synthesis.datasets import load_demo, make_tissue
    from sklearn_overseg.synthesis.flaws import synthesize_flaws

    paths = {"small": folder / "small.tif", "mid": folder / "mid.tif"}
    save_volume(paths["small"], load_demo().labels)
    if bench_volumes.tissue_file() is not None:
        truth = bench_volumes._load_tissue()[::4]
    else:  # the same shape from the synthetic fallback
        truth = make_tissue((38, 326, 283), cell_size=(10, 40, 40), random_state=0)
    save_volume(paths["mid"], synthesize_flaws(truth, random_state=0).labels)
    return paths


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(
    argv: list[str], env: dict[str, str], cwd: Path, repeats: int, expect: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system) seconds of each run of ``argv``.

    One untimed run first fills the bytecode and disk caches.
    """
    times, cpu = [], []
    for run in range(repeats + 1):
        start, start_cpu = time.perf_counter(), _cpu()
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed, elapsed_cpu = time.perf_counter() - start, _cpu() - start_cpu
        if proc.returncode != expect:
            raise RuntimeError(
                f"{' '.join(argv)} exited {proc.returncode} (expected {expect}):\n{proc.stderr}"
            )
        if run:
            times.append(elapsed)
            cpu.append(elapsed_cpu)
    return times, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (default: 3)")
    parser.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="checkout whose sklearn_overseg is timed (default: this one)",
    )
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(args.code.resolve())}
    # The command sets these itself; a run of older code should not get them for free.
    for name in list(env):
        if name.startswith("POT_BACKEND_DISABLE_"):
            del env[name]
    overseg = [sys.executable, "-m", "sklearn_overseg.cli"]
    with tempfile.TemporaryDirectory(prefix="overseg_startup_") as tmp:
        folder = Path(tmp)
        # Bytecode as an installed package has it (see the module docstring).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
        paths = _volumes(folder)
        shapes = {}
        import tifffile

        for name, path in paths.items():
            shapes[name] = tifffile.imread(path).shape
        existing = folder / "exists.tif"
        existing.write_bytes(b"not a volume")
        cases = [
            ("help", "overseg --help", [*overseg, "--help"], 0),
            (
                "refusal",
                "overseg correct small.tif -o exists.tif (exists)",
                [*overseg, "correct", str(paths["small"]), "-o", str(existing)],
                2,
            ),
        ]
        for name in ("small", "mid"):
            out = folder / f"out_{name}.tif"
            cases.append(
                (
                    f"plain_{name}",
                    f"plain read/find_objects/write, {name} {shapes[name]}",
                    [sys.executable, "-c", _PLAIN, str(paths[name]), str(out)],
                    0,
                )
            )
            cases.append(
                (
                    f"correct_{name}",
                    f"overseg correct {name} {shapes[name]}",
                    [*overseg, "correct", str(paths[name]), "-o", str(out), "--overwrite", "-q"],
                    0,
                )
            )
        results = {}
        for key, label, command, expect in cases:
            times, cpu = _time(command, env, folder, args.repeats, expect)
            results[key] = (label, min(times), statistics.median(times), min(cpu))
            print(f"  {label}: best {min(times):.2f} s", file=sys.stderr)
    print(f"\ncode: {args.code.resolve()}; best and median of {args.repeats} runs, wall clock")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| case | wall, best | wall, median | CPU, best | vs plain (wall / CPU) | target |")
    print("|---|---|---|---|---|---|")
    for key, (label, best, median, cpu) in results.items():
        ratio = target = ""
        if key.startswith("correct_"):
            plain = results["plain_" + key.split("_", 1)[1]]
            ratio = f"{best / plain[1]:.1f}x / {cpu / plain[3]:.1f}x"
        if key in TARGETS:
            target = f"<= {TARGETS[key]} s"
        if key == "correct_mid":
            target += f", <= {TARGETS['ratio_mid']:.0f}x plain"
        print(f"| {label} | {best:.2f} s | {median:.2f} s | {cpu:.2f} s | {ratio} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

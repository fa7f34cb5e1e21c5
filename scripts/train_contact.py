"""Train the contact-mode corrector: merge cells cut by tilted surfaces (paper §3.3).

Run from the repository root; the real data is found through ``OVERSEG_DATA_DIR`` or
``shared/data`` beside the checkout (or pass ``--data FOLDER``)::

    python scripts/train_contact.py -o /tmp/model_contact

The recipe:

- ground truths: the top half (y < 163) of ``plant_tissue_a``, the left half (x < 64) of
  ``plant_ovule``, ``plant_patch`` without its damaged layer 31, and one synthetic dense
  tissue (``make_tissue((96, 128, 128), cell_size=(28, 28, 28), random_state=0)``). The
  bottom half of ``plant_tissue_a`` is held out for ``benchmarks/accuracy_contact.py``;
- native anisotropy only (``z_subsample=(1,)``), each volume also upside down (a tilted
  cut has no preferred z direction either);
- flaws: 20 % of the eligible cells cut in two by a random plane tilted up to 60° from z
  (``tilted_fraction=0.2``), no axial split (``split_fraction=0``), one draw per volume
  and orientation (``n_repeats=1``; with the flip that is two draws per volume);
- candidates: every face-adjacent pair (``ContactScreener(max_layers=8, min_size=50)``:
  parts smaller than the synthetic cuts' 50-voxel minimum are never candidates). The
  negatives are all the genuinely different touching pairs, at their real ratio (about
  32 negatives per positive: 5462 / 170);
- features: the default pipeline (Geo-Wasserstein, overlap topology, cell context, gap)
  on the re-sliced layers; classifier: soft vote of three paper MLPs (seeds 0..2).

Budget (measured on the shared 2-core machine, load ~5): ``n_repeats=2`` took 475 s
(11,265 pairs), over the ~6-minute budget, so the recipe uses ``n_repeats=1``: 247 s for
5,632 pairs; screening ``plant_tissue_a`` top (1,023 pairs) 2.7-3.5 s, features
13-20 ms per pair. On the held-out half (``benchmarks/accuracy_contact.py``) the
one-repeat model was not worse: pair F1 0.939 against 0.890 at threshold 0.5 (6 against
16 wrong merges over three seeds; whether that gap is MLP seed noise was not checked).
Three MLPs instead of the axial model's five, also for time.

``make_training_table`` also blanks stacked-cell interfaces as hard negatives (its
default, which ``SegmentationCorrector`` does not expose): in contact mode those pairs
are just touching negatives with one layer less contact.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from sklearn_overseg.classification.pipeline import make_default_pipeline
from sklearn_overseg.correction.corrector import SegmentationCorrector
from sklearn_overseg.io.persistence import save_estimator
from sklearn_overseg.screening.contact import ContactScreener
from sklearn_overseg.synthesis.flaws import synthesize_flaws

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import add_data_option, data_folder
from train_pretrained import OVULE_SPLIT_X, TISSUE_SPLIT_Y  # noqa: F401
from train_pretrained import training_volumes as axial_training_volumes

#: Smallest cell of a candidate pair; synthetic cut parts have at least 50 voxels.
MIN_SIZE = 50
#: Re-sliced layers kept on each side of the contact plane.
MAX_LAYERS = 8
#: Fraction of cells cut by a tilted plane, per draw.
TILTED_FRACTION = 0.2


def training_volumes(data: Path) -> dict[str, np.ndarray]:
    """The ground truths of the contact model: those of the axial model, one synthetic less."""
    volumes = axial_training_volumes(data)
    del volumes["synthetic_36"]
    return volumes


def make_corrector(n_repeats: int = 1, n_ensemble: int = 3) -> SegmentationCorrector:
    """The unfitted contact-mode corrector of the recipe."""
    return SegmentationCorrector(
        screener=ContactScreener(max_layers=MAX_LAYERS, min_size=MIN_SIZE),
        classifier=make_default_pipeline(n_ensemble=n_ensemble, random_state=0),
        split_fraction=0.0,
        tilted_fraction=TILTED_FRACTION,
        z_subsample=(1,),
        n_repeats=n_repeats,
        random_state=0,
    )


def feature_seconds_per_pair(corrector: SegmentationCorrector, volume: np.ndarray) -> dict:
    """Time screening and the feature pass of the fitted corrector on one flawed volume."""
    flawed = synthesize_flaws(
        volume,
        split_fraction=0.0,
        tilted_fraction=TILTED_FRACTION,
        hard_negatives=False,
        random_state=123,
    )
    t0 = time.perf_counter()
    table = corrector.screener_.screen(flawed.labels)
    t1 = time.perf_counter()
    sample = table.iloc[:300]
    corrector.classifier_[:-1].transform(sample)
    t2 = time.perf_counter()
    return {
        "pairs": len(table),
        "screen_seconds": round(t1 - t0, 2),
        "feature_seconds_per_pair": round((t2 - t1) / max(len(sample), 1), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_option(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("/tmp/model_contact"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ensemble", type=int, default=3)
    args = parser.parse_args()
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite")
    volumes = training_volumes(data_folder(parser, args.data))
    corrector = make_corrector(args.repeats, args.ensemble)
    t0 = time.perf_counter()
    corrector.fit(volumes)
    elapsed = time.perf_counter() - t0
    timing = feature_seconds_per_pair(corrector, volumes["plant_tissue_a_top"])
    metadata = {
        "mode": "contact",
        "trained_on": {name: list(v.shape) for name, v in volumes.items()},
        "recipe": "scripts/train_contact.py",
        "n_repeats": args.repeats,
        "n_ensemble": args.ensemble,
        "training_pairs": corrector.n_training_pairs_,
        "training_balance": {str(k): v for k, v in corrector.training_balance_.items()},
        "training_seconds": round(elapsed, 1),
        "timing_plant_tissue_a_top": timing,
    }
    save_estimator(corrector, args.output, overwrite=args.overwrite, metadata=metadata)
    print(
        f"trained on {corrector.n_training_pairs_} pairs {corrector.training_balance_} "
        f"in {elapsed:.0f} s -> {args.output}\n"
        f"plant_tissue_a top: {timing['pairs']} pairs screened in {timing['screen_seconds']} s, "
        f"features {1000 * timing['feature_seconds_per_pair']:.1f} ms / pair"
    )


if __name__ == "__main__":
    main()

"""Train the pretrained corrector shipped in ``sklearn_overseg/models/default/``.

Run from the repository root; the real data is found through ``OVERSEG_DATA_DIR`` or
``shared/data`` beside the checkout (or pass ``--data FOLDER``)::

    python scripts/train_pretrained.py -o sklearn_overseg/models/default

The recipe (also in ``docs/model_card.md``):

- ground truths: the top half (y < 163) of ``plant_tissue_a``, the left half (x < 64) of
  ``plant_ovule``, ``plant_patch`` without its damaged layer 31, and two synthetic dense
  tissues (:func:`sklearn_overseg.synthesis.datasets.make_tissue`). The bottom half of
  ``plant_tissue_a`` and the right half of the ovule are held out for evaluation
  (``benchmarks/accuracy.py``);
- native anisotropy and every 4th layer (all four phases), each also upside down;
  three flaw draws per volume (one relabel without a blank layer, two blanked layers),
  hard negatives from blanked stacked-cell interfaces (the paper's flaw);
- ten stitched draws per volume at native z and at z/4: per-layer 2D masks with lost
  tips (10-60 px), missed masks (0-10 %), boundaries off by a pixel (0-50 %) and cut
  cross-sections (0-5 %), linked by IoU (0.1-0.5), candidates labelled by majority
  overlap (:func:`sklearn_overseg.synthesis.stitched_flaws.make_stitched_training_table`);
- screening: axial gaps of 0-3 layers and pieces that share a layer (lateral), touching
  or one pixel apart in-plane, or one in the other's footprint;
- axial features: Geo-Wasserstein (paper statistics), overlap topology, cell context,
  gap; lateral features: :class:`sklearn_overseg.features.lateral.LateralFeatures` and
  the cell context (``make_lateral_pipeline(context=True)``);
- classifiers: per kind, a soft vote of paper MLPs (128-64-32, dropout 0.3) with seeds
  0..n-1 (``--ensemble``), thresholds per kind (``--threshold-axial``,
  ``--threshold-lateral``).

The script exists to pin the crops and the recipe and record them in the model's
metadata.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile
from _data import add_data_option, data_folder

from sklearn_overseg.classification.dispatch import KindClassifier
from sklearn_overseg.classification.pipeline import make_default_pipeline, make_lateral_pipeline
from sklearn_overseg.correction.corrector import SegmentationCorrector
from sklearn_overseg.io.persistence import save_estimator
from sklearn_overseg.synthesis.datasets import make_tissue
from sklearn_overseg.synthesis.stitched_flaws import stitched_screener

#: Rows of plant_tissue_a used for training; the rest is held out.
TISSUE_SPLIT_Y = 163
#: Columns of plant_ovule used for training; the rest is held out.
OVULE_SPLIT_X = 64


def training_volumes(data: Path) -> dict[str, np.ndarray]:
    """The ground truths of the shipped model, cropped as recorded above."""
    tissue = tifffile.imread(data / "plant_tissue_a" / "labels_gt.tif")
    ovule = tifffile.imread(data / "plant_ovule" / "labels_gt.tif")
    patch = tifffile.imread(data / "plant_patch" / "labels.tif")
    return {
        "plant_tissue_a_top": tissue[:, :TISSUE_SPLIT_Y],
        "plant_ovule_left": ovule[:, :, :OVULE_SPLIT_X],
        "plant_patch": np.delete(patch, 31, axis=0),
        "synthetic_28": make_tissue((96, 128, 128), cell_size=(28, 28, 28), random_state=0),
        "synthetic_36": make_tissue((120, 160, 160), cell_size=(36, 30, 30), random_state=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_option(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("sklearn_overseg/models/default"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--stitched-repeats", type=int, default=10)
    parser.add_argument("--max-gap", type=int, default=3)
    parser.add_argument("--threshold-axial", type=float, default=0.6)
    parser.add_argument("--threshold-lateral", type=float, default=0.965)
    args = parser.parse_args()
    volumes = training_volumes(data_folder(parser, args.data))
    corrector = SegmentationCorrector(
        screener=stitched_screener(args.max_gap),
        classifier=KindClassifier(
            axial=make_default_pipeline(n_ensemble=args.ensemble, random_state=0),
            lateral=make_lateral_pipeline(context=True, n_ensemble=args.ensemble, random_state=0),
        ),
        threshold={"axial": args.threshold_axial, "lateral": args.threshold_lateral},
        z_subsample=(1, 4),
        n_repeats=3,
        stitched_repeats=args.stitched_repeats,
        random_state=0,
    )
    t0 = time.perf_counter()
    corrector.fit(volumes)
    elapsed = time.perf_counter() - t0
    metadata = {
        "trained_on": {name: list(v.shape) for name, v in volumes.items()},
        "recipe": "scripts/train_pretrained.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in sorted(vars(args).items())
            if k not in ("data", "output", "overwrite")
        ),
        "training_pairs": corrector.n_training_pairs_,
        "training_balance": {str(k): v for k, v in corrector.training_balance_.items()},
        "training_seconds": round(elapsed, 1),
    }
    save_estimator(corrector, args.output, overwrite=args.overwrite, metadata=metadata)
    print(
        f"trained on {corrector.n_training_pairs_} pairs {corrector.training_balance_} "
        f"in {elapsed:.0f} s -> {args.output}"
    )


if __name__ == "__main__":
    main()

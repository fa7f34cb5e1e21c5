"""Choose the contact model's merge threshold by cross-validation on its training tables.

The MLPs are trained with balanced class weights, so 0.5 over-merges when true cuts are
~3 % of touching pairs. This script rebuilds the contact training table exactly as
``scripts/train_contact.py`` does, predicts every pair out of fold (``GroupKFold`` by
source volume, so no volume judges itself), and picks the threshold with the best F1.
Nothing from the held-out evaluation volume is used. With ``--apply DIR`` the threshold is
written into the saved model (``SegmentationCorrector.threshold``).

    python scripts/tune_contact_threshold.py --apply sklearn_overseg/models/contact --overwrite

The real data is found through ``OVERSEG_DATA_DIR`` or ``shared/data`` beside the checkout
(or pass ``--data FOLDER``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import GroupKFold, cross_val_predict

from sklearn_overseg.io.persistence import load_estimator, load_metadata, save_estimator
from sklearn_overseg.synthesis.training import make_training_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import add_data_option, data_folder
from train_contact import make_corrector, training_volumes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_option(parser)
    parser.add_argument("--apply", type=Path, default=None, help="model directory to update")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    data = data_folder(parser, args.data)
    recipe = make_corrector()
    t0 = time.perf_counter()
    table, y = make_training_table(
        training_volumes(data),
        screener=recipe.screener,
        split_fraction=recipe.split_fraction,
        tilted_fraction=recipe.tilted_fraction,
        n_repeats=recipe.n_repeats,
        z_subsample=tuple(recipe.z_subsample),
        relabel_fraction=recipe.relabel_fraction,
        random_state=recipe.random_state,
    )
    groups = table["volume"].str.split("/").str[0]
    print(f"table: {len(table)} pairs, {int(y.sum())} cuts, {time.perf_counter() - t0:.0f} s")
    proba = cross_val_predict(
        clone(recipe.classifier),
        table,
        y.to_numpy(),
        groups=groups,
        cv=GroupKFold(n_splits=groups.nunique()),
        method="predict_proba",
    )[:, 1]
    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    threshold = float(thresholds[best])
    for t in (0.5, threshold):
        pred = proba > t
        tp = int((pred & (y == 1)).sum())
        print(
            f"threshold {t:.3f}: out-of-fold P {tp / max(pred.sum(), 1):.3f} "
            f"R {tp / max(int(y.sum()), 1):.3f}"
        )
    print(
        f"chosen threshold (best out-of-fold F1 {f1[best]:.3f}): {threshold:.3f} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    if args.apply is not None:
        model = load_estimator(args.apply)
        model.set_params(threshold=round(threshold, 3))
        metadata = load_metadata(args.apply) or {}
        metadata["threshold"] = {
            "value": round(threshold, 3),
            "chosen_by": "scripts/tune_contact_threshold.py (out-of-fold F1, GroupKFold)",
        }
        save_estimator(model, args.apply, overwrite=args.overwrite, metadata=metadata)
        print(f"threshold written to {args.apply}")


if __name__ == "__main__":
    main()

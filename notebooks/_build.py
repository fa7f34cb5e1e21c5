"""Write the example notebooks of ``notebooks/`` from the cell sources below.

The ``.ipynb`` files are generated, never edited by hand: change a cell here and run

    python notebooks/_build.py

Notebooks are written without outputs (clean diffs). ``tests/test_notebooks.py`` executes
each of them. They find the real-data folder as
:func:`sklearn_overseg.synthesis.datasets.find_data_dir` does (``OVERSEG_DATA_DIR``, else
``shared/data`` beside the clone) and fall back to synthetic tissue when it is absent, so
they also run on a fresh clone. ``OVERSEG_NOTEBOOK_SIZE=small`` (set by the tests) runs
notebooks 02-04 on the smallest inputs that still show their point; ``full``, the
default, is the run their text describes.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# The text quotes this default: read it, so that it cannot drift from the code.
from sklearn_overseg.features.ot import DEFAULT_MAX_EXACT_POINTS as MAX_EXACT

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def md(*paragraphs: str):
    return new_markdown_cell("\n\n".join(dedent(p).strip("\n") for p in paragraphs))


def code(text: str, *tags: str):
    cell = new_code_cell(dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# Every notebook finds the real data, and reads its size, the same way.
DATA_CELL = code(
    """
    import os

    from sklearn_overseg.synthesis.datasets import find_data_dir

    # Real ground-truth crops: the folder OVERSEG_DATA_DIR names, else shared/data beside
    # this clone (the notebook runs in notebooks/, hence start="..").
    DATA_DIR = find_data_dir(start="..")
    HAVE_DATA = DATA_DIR is not None and (DATA_DIR / "plant_ovule" / "labels_gt.tif").is_file()
    print("real data:", DATA_DIR if HAVE_DATA else "not found -> synthetic tissue instead")

    # "full" (the default) is the run the text describes; "small" runs every step on the
    # smallest inputs that still show the point, in seconds (the tests use it).
    SIZE = os.environ.get("OVERSEG_NOTEBOOK_SIZE", "full")
    if SIZE not in ("full", "small"):
        raise ValueError(f"OVERSEG_NOTEBOOK_SIZE must be 'full' or 'small', got {SIZE!r}.")
    SMALL = SIZE == "small"
    print("notebook size:", SIZE)
    """
)

INSTALL_NOTE = """
    Run from a clone with the package installed (`pip install -e ".[plot]"`). The
    notebooks read real example data from the folder `OVERSEG_DATA_DIR` names, else
    from `shared/data` beside the clone, and use synthetic tissue from `make_tissue`
    when there is none. `OVERSEG_NOTEBOOK_SIZE=small` runs them on smaller inputs.
"""


# --------------------------------------------------------------------- 01 quickstart

QUICKSTART = [
    md(
        """
        # Quickstart: correct a volume with the pretrained model

        A 3D cell segmentation made layer by layer often cuts one cell into two labels
        where a single layer was missed. `sklearn_overseg` screens every pair of labels
        that could be such a split, judges each with Geo-Wasserstein features and a
        classifier, and merges the ones it believes are one cell, filling the missing
        layer by optimal-transport interpolation.

        This notebook runs the shipped model on the bundled demo volume: an Arabidopsis
        ovule ground truth (PlantSeg test data, MIT licence) in which 30 % of the tall
        cells were split along z by blanking one layer. Because the flaws are synthetic,
        the right answer is known.

        Run from a clone with the package installed (`pip install -e ".[plot]"`).
        """
    ),
    code(
        """
        %matplotlib inline
        import pandas as pd

        from sklearn_overseg import (
            SegmentationCorrector,
            load_demo,
            load_pretrained,
            make_tissue,
            pair_scores,
            segmentation_scores,
        )
        from sklearn_overseg.evaluation.plotting import plot_decision_gallery, plot_orthogonal_views

        pd.set_option("display.width", 120)
        """
    ),
    md(
        """
        ## The demo volume

        `load_demo()` returns a `Bunch`: the flawed `labels`, the `ground_truth`, the
        voxel `spacing` in µm, and the truth about the flaws: `merges` (the pairs a
        perfect corrector merges back) and `hard_negatives` (distinct cells that look
        like a blanked split).
        """
    ),
    code(
        """
        demo = load_demo()
        print(demo.description.splitlines()[0])
        print("labels", demo.labels.shape, demo.labels.dtype, "spacing (z, y, x):", demo.spacing)
        print(f"{len(demo.merges)} synthetic splits, {len(demo.hard_negatives)} hard negatives")
        demo.merges.head()
        """
    ),
    md(
        """
        ## The pretrained corrector

        `load_pretrained()` rebuilds the shipped `SegmentationCorrector` from JSON and
        NumPy arrays (nothing is unpickled). Should the model directory be missing, for
        instance in a source checkout where it has not been built yet, we train a small
        one on synthetic tissue instead; that takes a few seconds.
        """
    ),
    code(
        """
        try:
            corrector = load_pretrained()
            print("pretrained model loaded")
        except FileNotFoundError as exc:
            print(f"{exc}: training a small corrector on synthetic tissue instead")
            synthetic = {"shape": (32, 128, 128), "cell_size": (12, 36, 36)}
            tissues = [make_tissue(**synthetic, random_state=seed) for seed in (1, 2)]
            corrector = SegmentationCorrector(random_state=0, n_repeats=1).fit(tissues)
        corrector
        """
    ),
    md(
        """
        ## Correct

        `correct` returns a new volume and the decision table: one row per candidate
        pair with its probability of being one cell, whether it was merged and why.
        """
    ),
    code(
        """
        corrected, decisions = corrector.correct(demo.labels)
        columns = ["cell_a", "cell_b", "gap", "probability", "merged", "reason", "filled_voxels"]
        decisions.sort_values("probability", ascending=False)[columns]
        """
    ),
    md(
        """
        ## How good were the decisions?

        Pair scores compare the merged pairs with the known splits: precision is the
        share of merges that were right, recall the share of splits that were repaired.
        Instance scores compare whole volumes with the ground truth: mean average
        precision (mAP) over IoU thresholds 0.25, 0.5 and 0.75, as in the paper.
        """
    ),
    code(
        """
        merged_pairs = decisions.loc[decisions["merged"], ["cell_a", "cell_b"]]
        pairs = pair_scores(merged_pairs, demo.merges[["cell_a", "cell_b"]])
        hard = {frozenset(p) for p in demo.hard_negatives[["cell_a", "cell_b"]].to_numpy()}
        fooled = sum(frozenset(p) in hard for p in merged_pairs.to_numpy())
        print(
            f"pair precision {pairs['precision']:.3f}  recall {pairs['recall']:.3f}  "
            f"F1 {pairs['f1']:.3f}  (tp {pairs['tp']}, fp {pairs['fp']}, fn {pairs['fn']})"
        )
        print(f"hard negatives merged by mistake: {fooled} of {len(hard)}")
        """
    ),
    code(
        """
        before = segmentation_scores(demo.labels, demo.ground_truth)
        after = segmentation_scores(corrected, demo.ground_truth)
        print(f"mAP before: {before['mAP']:.3f}  after: {after['mAP']:.3f}")
        pd.DataFrame({"before": before, "after": after}).T
        """,
        "scores",
    ),
    md(
        """
        ## Look at it

        Orthogonal views before (top) and after (bottom) correction, cut through the
        largest merged cell, whose pieces are outlined in white.
        """
    ),
    code(
        """
        views = {"decisions": decisions, "spacing": demo.spacing}
        plot_orthogonal_views(demo.labels, corrected, **views)
        """
    ),
    md(
        """
        The decision gallery shows, for each candidate, the last mask of the upper cell,
        the interpolated missing layer and the first mask of the lower cell. By default
        it picks the candidates whose probability is closest to 0.5, the ones worth a
        human look. The gallery needs the candidate geometry, which the decision table
        does not keep, so we screen the volume again (it is cheap and deterministic).
        """
    ),
    code(
        """
        table = corrector.screener_.screen(demo.labels, spacing=demo.spacing)
        plot_decision_gallery(table, decisions, top_k=8)
        """
    ),
    md(
        """
        ## Next

        * `02_train_your_own.ipynb`: train a corrector on your own ground truth, save it,
          load it, and use it from the command line.
        * `03_ablation_gridsearch.ipynb`: which features and classifier matter, as one
          `GridSearchCV`.
        * `04_transfer_nuclei.ipynb`: a model trained on plant cells applied to nuclei.
        """
    ),
]


# ---------------------------------------------------------------- 02 train your own

TRAIN_YOUR_OWN = [
    md(
        """
        # Train, save and reuse your own corrector

        All a corrector needs for training is ground truth. `SegmentationCorrector.fit`
        synthesises flaws in it (cells split along z with or without a blanked layer,
        stacked cells made to look like splits), screens the flawed volumes exactly as
        it will screen yours, and labels every candidate by majority overlap with the
        ground truth. `z_subsample=(1, 4)` also trains on every 4th layer, so the model
        knows native and 4:1:1 anisotropic stacks.

        We train on the ovule and one crop of the dense plant tissue, then judge the
        model on a second, held-out crop of that tissue with synthetic flaws.
        """,
        INSTALL_NOTE,
    ),
    code(
        """
        %matplotlib inline
        import tempfile
        import time
        from pathlib import Path

        import numpy as np
        import pandas as pd

        from sklearn_overseg import (
            SegmentationCorrector,
            load_estimator,
            load_volume,
            make_tissue,
            mean_average_precision,
            pair_scores,
            save_estimator,
            save_volume,
            segmentation_scores,
            synthesize_flaws,
        )
        from sklearn_overseg.evaluation.plotting import plot_precision_recall
        from sklearn_overseg.synthesis.training import label_candidates, majority_labels
        """
    ),
    DATA_CELL,
    code(
        """
        if HAVE_DATA:
            tissue = load_volume(DATA_DIR / "plant_tissue_a" / "labels_gt.tif")
            train = {
                "ovule": load_volume(DATA_DIR / "plant_ovule" / "labels_gt.tif"),
                "tissue_a_left": tissue[:, :163, :141],
            }
            held_out = tissue[:, 163:, 141:]  # a disjoint region of the same stack
            z_subsample = (1, 4)  # native and 4:1:1 stacks
            if SMALL:  # the ovule alone, judged on a quarter of the held-out region
                del train["tissue_a_left"]
                held_out = held_out[:, :100, :100]
        else:
            synthetic = {"shape": (32, 128, 128), "cell_size": (12, 36, 36)}
            if SMALL:
                synthetic["shape"] = (32, 96, 96)
            train = {f"synthetic_{s}": make_tissue(**synthetic, random_state=s) for s in (1, 2)}
            held_out = make_tissue(**synthetic, random_state=3)
            z_subsample = (1,)  # these cells are only a few layers deep: no z/4 copies
        for name, volume in {**train, "held out": held_out}.items():
            print(f"{name:>14}: {volume.shape}, {len(np.unique(volume)) - 1} cells")
        """
    ),
    md(
        """
        ## Fit

        A small setting keeps this quick: one flaw draw per volume and subsampling
        factor (`n_repeats=1`), native stacks and every 4th layer (`z_subsample=(1, 4)`).
        The shipped model uses more repeats and more volumes.
        """
    ),
    code(
        """
        corrector = SegmentationCorrector(random_state=0, n_repeats=1, z_subsample=z_subsample)
        start = time.perf_counter()
        corrector.fit(train)
        print(
            f"trained on {corrector.n_training_pairs_} candidate pairs "
            f"{corrector.training_balance_} in {time.perf_counter() - start:.1f} s"
        )
        """
    ),
    md(
        """
        If you have flawed segmentations *and* their ground truth, `fit(flawed, y=truths)`
        trains on your real flaws instead of synthetic ones.

        ## Save and load

        `save_estimator` writes a directory of JSON and NumPy arrays: no pickle, so a
        model from someone else cannot run code on your machine when you load it.
        """
    ),
    code(
        """
        workdir = Path(tempfile.mkdtemp(prefix="overseg_"))
        model_dir = save_estimator(corrector, workdir / "model", metadata={"trained_on": [*train]})
        print(sorted(p.name for p in model_dir.iterdir()))
        reloaded = load_estimator(model_dir)
        reloaded
        """
    ),
    md(
        """
        ## Judge it on a held-out volume

        We split 30 % of the held-out tissue's tall cells and blank stacked-cell
        interfaces as hard negatives, then compare the original and the reloaded model.
        """
    ),
    code(
        """
        flawed = synthesize_flaws(
            held_out, split_fraction=0.3, blank=True, hard_negatives=True, random_state=1
        )
        print(f"{len(flawed.merges)} splits, {len(flawed.hard_negatives)} hard negatives")

        corrected, decisions = reloaded.correct(flawed.labels)
        _, decisions_original = corrector.correct(flawed.labels)
        same = np.allclose(decisions["probability"], decisions_original["probability"])
        print("reloaded model gives the same probabilities:", same)
        """
    ),
    code(
        """
        merged = decisions.loc[decisions["merged"], ["cell_a", "cell_b"]]
        pairs = pair_scores(merged, flawed.merges[["cell_a", "cell_b"]])
        before = segmentation_scores(flawed.labels, held_out)
        after = segmentation_scores(corrected, held_out)
        precision, recall, f1 = pairs["precision"], pairs["recall"], pairs["f1"]
        print(f"pair precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}")
        print(f"mAP before: {before['mAP']:.3f}  after: {after['mAP']:.3f}")
        # score() is the same mAP, computed the scikit-learn way (used by GridSearchCV).
        print(f"reloaded.score(): {reloaded.score([flawed.labels], [held_out]):.3f}")
        pd.DataFrame({"before": before, "after": after}).T
        """,
        "scores",
    ),
    md(
        """
        Every candidate, not only the synthetic splits, has a true answer: A and B are
        one cell when they overlap the same ground-truth cell most. That gives a
        precision-recall curve of the probabilities, and shows whether the 0.5
        threshold (`SegmentationCorrector(threshold=...)`) suits your data.
        """
    ),
    code(
        """
        y_true = label_candidates(decisions, majority_labels(flawed.labels, held_out))
        plot_precision_recall(y_true, decisions["probability"])
        """
    ),
    md(
        """
        ## The same from the command line

        Training and correction are also available as the `overseg` command (installed
        with the package):

        ```bash
        # train on ground-truth volumes (TIFF, HDF5, Zarr, .npy/.npz), write a model directory
        overseg train ovule_gt.tif tissue_gt.tif -o model_dir --z-subsample 1 4 --repeats 1 --seed 0

        # correct a segmentation with it; the decision table goes to a CSV
        overseg correct segmentation.tif -o corrected.tif --model model_dir --report decisions.csv

        # mAP and Jaccard of the result against ground truth
        overseg evaluate corrected.tif ground_truth.tif
        ```

        Without `--model`, `overseg correct` uses the shipped pretrained model. The cell
        below runs the `correct` step through the same entry point, with the model we
        saved above.
        """
    ),
    code(
        """
        from sklearn_overseg.cli import main as overseg

        save_volume(workdir / "flawed.tif", flawed.labels)
        args = ["correct", str(workdir / "flawed.tif"), "-o", str(workdir / "corrected.tif")]
        args += ["--model", str(model_dir), "--report", str(workdir / "decisions.csv"), "--quiet"]
        overseg(args)
        from_cli = load_volume(workdir / "corrected.tif")
        report = pd.read_csv(workdir / "decisions.csv")
        print("CLI result identical:", np.array_equal(from_cli, corrected))
        print(
            f"CLI mAP: {mean_average_precision(from_cli, held_out):.3f}, "
            f"{int(report['merged'].sum())} merges"
        )
        """
    ),
]


# --------------------------------------------------------- 03 ablation grid search

ABLATION = [
    md(
        """
        # Ablation as a grid search (paper Tables 3 and 4)

        The paper asks two questions: do the Geo-Wasserstein (EMD) features help, and
        which summary statistics of the within-cell EMDs should the classifier see? Here
        both are one `GridSearchCV`, together with a third: the paper's MLP against a
        gradient-boosted tree ensemble.

        The default pipeline is `Pipeline(features=ColumnTransformer([emd, topo,
        context, meta]), clf)`. Each block of the `ColumnTransformer` is a named step,
        so the grid can set `features__emd` to `"drop"` or change
        `features__emd__statistics`.

        Candidates of one volume share cells, so the folds are made by **source
        volume** (`GroupKFold` on the volume name): a model is always scored on tissue
        it never saw.
        """,
        INSTALL_NOTE,
    ),
    code(
        """
        import tempfile
        import time

        import numpy as np
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import GridSearchCV, GroupKFold
        from threadpoolctl import threadpool_limits

        from sklearn_overseg import (
            STATISTICS_PRESETS,
            GeoWassersteinFeatures,
            OversegMLPClassifier,
            load_volume,
            make_default_pipeline,
            make_tissue,
            make_training_table,
        )

        pd.set_option("display.width", 140)
        """
    ),
    DATA_CELL,
    md(
        """
        ## A labelled candidate table from three ground-truth volumes

        `make_training_table` synthesises flaws in each ground truth, screens the result
        and labels each candidate (1 = one cell wrongly split). To keep the notebook
        quick we use one draw per volume, the native stack and every 4th layer
        (`z_subsample=(1, 4)`, one phase, no flip): a table of a couple of hundred
        candidates. The two tissue crops are disjoint regions of one stack. (The small run
        takes the ovule and a 128 x 128 corner of one tissue crop: two volumes, two folds.)
        """
    ),
    code(
        """
        if HAVE_DATA:
            tissue = load_volume(DATA_DIR / "plant_tissue_a" / "labels_gt.tif")
            volumes = {
                "ovule": load_volume(DATA_DIR / "plant_ovule" / "labels_gt.tif"),
                "tissue_a_left": tissue[:, :163, :141],
                "tissue_a_right": tissue[:, 163:, 141:],
            }
            if SMALL:
                del volumes["tissue_a_right"]
                volumes["tissue_a_left"] = volumes["tissue_a_left"][:, :128, :128]
        else:
            synthetic = {"shape": (32, 128, 128), "cell_size": (12, 36, 36)}
            seeds = (1, 2) if SMALL else (1, 2, 3)
            volumes = {f"synth_{s}": make_tissue(**synthetic, random_state=s) for s in seeds}

        table, y = make_training_table(
            volumes,
            n_repeats=1,
            z_subsample=(1, 4),
            all_phases=False,
            flip_z=False,
            random_state=0,
        )
        groups = table["volume"].str.split("/").str[0]
        pd.crosstab(groups, y.rename("one cell"), margins=True)
        """
    ),
    md(
        f"""
        ## The grid

        A list of two grids, so that `"drop"` is not combined with the four statistics
        presets: 1 + 4 feature settings times 2 classifiers = 10 candidates, each fitted
        once per fold (one fold per source volume).

        Two settings trade accuracy for speed here: the MLP trains for at most 40 epochs,
        and the EMD solver coarsens each mask to at most 50 support points
        (`max_exact_points=50`, default {MAX_EXACT}); the small run takes 10 epochs and 20
        points. The pipeline caches the fitted feature step (`memory=`), so the two
        classifiers share the features of each fold.
        """
    ),
    code(
        """
        mlp = OversegMLPClassifier(max_epochs=10 if SMALL else 40, random_state=0)
        hgb = HistGradientBoostingClassifier(random_state=0)
        emd = GeoWassersteinFeatures(max_exact_points=20 if SMALL else 50, random_state=0)
        param_grid = [
            {"features__emd": ["drop"], "clf": [mlp, hgb]},
            {
                "features__emd": [emd],
                "features__emd__statistics": list(STATISTICS_PRESETS),
                "clf": [mlp, hgb],
            },
        ]
        for name, quantiles in STATISTICS_PRESETS.items():
            print(f"{name:>10}: {quantiles}")
        """
    ),
    code(
        """
        cache = tempfile.mkdtemp(prefix="overseg_cache_")
        pipeline = make_default_pipeline(random_state=0).set_params(memory=cache)
        search = GridSearchCV(
            pipeline,
            param_grid,
            cv=GroupKFold(n_splits=groups.nunique()),
            scoring=["f1", "precision", "recall"],
            refit="f1",
            n_jobs=1,
        )
        start = time.perf_counter()
        # The models are tiny: thread start-up costs more than it saves, so one thread.
        with threadpool_limits(limits=1):
            search.fit(table, y, groups=groups)
        n_candidates = len(search.cv_results_["params"])
        n_folds = search.n_splits_
        print(f"{n_candidates} candidates x {n_folds} folds in {time.perf_counter() - start:.0f} s")
        """
    ),
    md(
        """
        ## Results

        One row per grid point, best F1 first. Scores are means over the held-out
        volumes, with their standard deviation.
        """
    ),
    code(
        """
        cv = pd.DataFrame(search.cv_results_)
        emd_on = cv["param_features__emd"].map(lambda step: step != "drop")
        results = pd.DataFrame(
            {
                "classifier": cv["param_clf"].map(lambda clf: type(clf).__name__),
                "emd": np.where(emd_on, "on", "off"),
                "statistics": cv["param_features__emd__statistics"].where(emd_on, "-"),
                "f1": cv["mean_test_f1"],
                "f1_std": cv["std_test_f1"],
                "precision": cv["mean_test_precision"],
                "recall": cv["mean_test_recall"],
                "fit_s": cv["mean_fit_time"],
            }
        )
        results = results.sort_values("f1", ascending=False, ignore_index=True).round(3)
        results
        """,
        "results",
    ),
    code(
        """
        print("best:", results.iloc[0][["classifier", "emd", "statistics"]].to_dict())
        gain = results.groupby(["classifier", "emd"])["f1"].max().unstack()
        gain["gain from EMD"] = gain["on"] - gain["off"]
        gain
        """
    ),
    md(
        """
        ## Reading the table

        * **EMD on vs off** (Table 3): compare the best `on` row of each classifier with
          its `off` row. The topology, context and gap-length features alone already
          separate many pairs; the EMD features add the shape change across the gap
          against the shape change within each cell. At the time of writing, on the
          shared crops they raised F1 for both classifiers, most for the MLP; on the
          synthetic fallback tissue (simple convex cells) they did not.
        * **Statistics presets** (Table 4): within a classifier, the four presets are
          usually within one standard deviation of each other. Like the paper, this
          says the *choice* of quantiles matters less than having the within-cell
          distribution at all; `"incomplete"` (three quantiles) is the cheapest.
        * **Classifier**: on a table this small, gradient boosting is at least as good
          as the MLP and fits faster; the MLP needs more data and more epochs than a
          notebook can afford.
        * The standard deviations are large: three folds of a few dozen positives each.
          Before drawing conclusions for your tissue, build a larger table
          (`n_repeats`, `all_phases=True`, `flip_z=True`, more volumes), use the default
          `max_exact_points`, and let the search run for longer.

        `search.best_estimator_` is refitted on the whole table and can be plugged into
        a corrector: `SegmentationCorrector(classifier=search.best_estimator_)` (its
        `fit` clones it and trains on synthesised flaws).
        """
    ),
]


# --------------------------------------------------------------- 04 transfer nuclei

TRANSFER = [
    md(
        """
        # Transfer: from plant cells to nuclei

        Does a corrector trained on dense plant tissue work on a different kind of
        object? We train on the ovule cells and a crop of dense plant tissue, and apply
        the model to Arabidopsis ovule **nuclei** (go-nuclear test crops, MIT licence):
        compact blobs separated by background, imaged at 0.28 × 0.127 × 0.127 µm. We
        split 50 % of the tall nuclei in each crop by blanking one layer, at native
        z resolution and with every 2nd layer (≈ 4.4 : 1 : 1, the paper's anisotropy).
        """,
        INSTALL_NOTE,
    ),
    code(
        """
        %matplotlib inline
        import time

        import numpy as np
        import pandas as pd
        from scipy import ndimage
        from skimage.segmentation import find_boundaries

        from sklearn_overseg import (
            SegmentationCorrector,
            load_pretrained,
            load_volume,
            make_tissue,
            mean_average_precision,
            pair_scores,
            synthesize_flaws,
        )
        from sklearn_overseg.evaluation.plotting import plot_orthogonal_views
        """
    ),
    DATA_CELL,
    code(
        """
        HAVE_NUCLEI = HAVE_DATA and (DATA_DIR / "ovule_nuclei" / "1135_labels_gt.tif").is_file()
        if HAVE_DATA:
            train = {"ovule": load_volume(DATA_DIR / "plant_ovule" / "labels_gt.tif")}
            if not SMALL:  # small: the ovule alone
                tissue = load_volume(DATA_DIR / "plant_tissue_a" / "labels_gt.tif")
                train["tissue_a"] = tissue[:, :163, :141]
            z_subsample = (1, 4)  # native and 4:1:1 stacks
        else:
            synthetic = {"shape": (32, 128, 128), "cell_size": (12, 36, 36)}
            if SMALL:
                synthetic["shape"] = (32, 96, 96)
            train = {f"synthetic_{s}": make_tissue(**synthetic, random_state=s) for s in (1, 2)}
            z_subsample = (1,)  # these cells are only a few layers deep: no z/4 copies

        if HAVE_NUCLEI:
            targets = {
                name: load_volume(DATA_DIR / "ovule_nuclei" / f"{name}_labels_gt.tif")
                for name in ("1135", "1136")
            }
        else:
            # Stand-in for nuclei: synthetic cells shrunk away from every wall, so that
            # compact blobs sit apart in background.
            print("nuclei crops not found: using shrunk synthetic cells instead")
            targets = {}
            shape = (48, 80, 80) if SMALL else (64, 100, 100)
            for s in (11, 12):
                blobs = make_tissue(shape, cell_size=(14, 30, 30), random_state=s)
                blobs[ndimage.binary_dilation(find_boundaries(blobs), iterations=2)] = 0
                targets[f"blobs_{s}"] = blobs
        for name, volume in {**train, **targets}.items():
            print(f"{name:>10}: {volume.shape}, {len(np.unique(volume)) - 1} objects")
        """
    ),
    md(
        """
        ## Train on plant tissue

        Pixel units throughout (no `spacing`): the plant tissue's voxel size is not known,
        and a model that only sees pixels must cope with the nuclei's different scale.
        """
    ),
    code(
        """
        start = time.perf_counter()
        corrector = SegmentationCorrector(random_state=0, n_repeats=1, z_subsample=z_subsample)
        corrector.fit(train)
        print(
            f"trained on {corrector.n_training_pairs_} pairs {corrector.training_balance_} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        models = {"trained here": corrector}
        try:
            models["pretrained"] = load_pretrained()
        except FileNotFoundError:
            print("no pretrained model in this checkout; evaluating the one trained here only")
        """
    ),
    md(
        """
        ## Apply to nuclei with synthetic splits
        """
    ),
    code(
        """
        rows, examples = [], {}
        for name, gt in targets.items():
            for step in (1, 2):
                truth = gt[::step]
                flawed = synthesize_flaws(
                    truth, split_fraction=0.5, blank=True, hard_negatives=True, random_state=0
                )
                for model_name, model in models.items():
                    corrected, decisions = model.correct(flawed.labels)
                    merged = decisions.loc[decisions["merged"], ["cell_a", "cell_b"]]
                    pairs = pair_scores(merged, flawed.merges[["cell_a", "cell_b"]])
                    rows.append(
                        {
                            "crop": name,
                            "z step": step,
                            "model": model_name,
                            "splits": len(flawed.merges),
                            "candidates": len(decisions),
                            "precision": pairs["precision"],
                            "recall": pairs["recall"],
                            "f1": pairs["f1"],
                            "mAP before": mean_average_precision(flawed.labels, truth),
                            "mAP after": mean_average_precision(corrected, truth),
                        }
                    )
                    examples[name, step, model_name] = (flawed.labels, corrected, decisions)
        transfer = pd.DataFrame(rows).round(3)
        transfer
        """,
        "results",
    ),
    code(
        """
        summary = transfer.groupby("model")[["precision", "recall", "mAP before", "mAP after"]]
        summary = summary.mean().round(3)
        for model_name, row in summary.iterrows():
            print(
                f"{model_name}: pair precision {row['precision']:.3f} recall {row['recall']:.3f}; "
                f"mAP before: {row['mAP before']:.3f}  after: {row['mAP after']:.3f}"
            )
        """,
        "scores",
    ),
    md(
        """
        Nuclei are separated by background, so nearly every candidate the screener finds
        is a synthetic split; the few others are nuclei that happen to sit one above the
        other. The task is therefore easier than in dense tissue, and what transfer
        tests is whether the probabilities of a model that never saw a nucleus still
        fall on the right side of 0.5. They do when precision and recall stay high.
        Expect more trouble with nuclei that touch, or with very different object sizes
        in pixels; then train on a few of your own ground-truth crops (notebook 02).
        """
    ),
    code(
        """
        name = next(iter(targets))
        flawed_labels, corrected, decisions = examples[name, 2, "trained here"]
        spacing = (2 * 0.28, 0.127, 0.127) if HAVE_NUCLEI else None  # every 2nd layer
        plot_orthogonal_views(flawed_labels, corrected, decisions=decisions, spacing=spacing)
        """
    ),
]


# ------------------------------------------------------------ 05 from raw slices

FROM_RAW = [
    md(
        """
        # From raw slices to a corrected 3D volume

        Many 3D segmentations are made one layer at a time: a 2D segmenter (Cellpose,
        StarDist, a watershed) labels every layer on its own, and the 2D masks are
        linked into 3D cells by their overlap with the layer above (Cellpose's
        `stitch_threshold`). Wherever a mask is missed, cut or shifted, the link breaks
        and one cell becomes two labels or more.

        This notebook walks that whole road on the bundled ovule: the raw membrane image
        is segmented layer by layer with a scikit-image watershed, the layers are
        stitched with `stitch_slices`, and the pretrained corrector merges the pieces.
        At each step the result is scored against the ovule's ground truth (mAP at IoU
        0.25, 0.5 and 0.75) and shown in orthogonal views. Everything it needs ships
        with the package: image and ground truth are PlantSeg test data (MIT licence).
        """,
        INSTALL_NOTE,
    ),
    code(
        """
        %matplotlib inline
        import time

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from skimage.filters import gaussian
        from skimage.measure import label
        from skimage.morphology import h_minima
        from skimage.segmentation import watershed

        from sklearn_overseg import (
            load_demo,
            load_pretrained,
            mean_average_precision,
            repair_scores,
            stitch_slices,
        )
        from sklearn_overseg.evaluation.plotting import plot_orthogonal_views

        pd.set_option("display.width", 120)
        """
    ),
    md(
        """
        ## The raw image

        A confocal stack of a membrane stain: cell walls are bright, cell interiors
        dark. The ovule fills the whole field of view, so there is no background to
        speak of. Its voxels are 0.235 µm deep and 0.15 µm wide.
        """
    ),
    code(
        """
        demo = load_demo(flawed=False)
        raw, truth, spacing = demo.raw, demo.ground_truth, demo.spacing
        n_cells = len(np.unique(truth)) - 1
        print(f"raw {raw.shape} {raw.dtype}, {n_cells} true cells, spacing (z, y, x) {spacing}")

        z_mid, y_mid = raw.shape[0] // 2, raw.shape[1] // 2
        fig, (ax_xy, ax_xz) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=[1, 1])
        ax_xy.imshow(raw[z_mid], cmap="gray")
        ax_xy.set_title(f"XY at z={z_mid}")
        ax_xz.imshow(raw[:, y_mid], cmap="gray", aspect=spacing[0] / spacing[2])
        ax_xz.set_title(f"XZ at y={y_mid}")
        fig.tight_layout()
        """
    ),
    md(
        """
        ## 1. Segment every layer on its own

        A classic membrane watershed per layer: smooth the image a little, put one
        marker in every dark basin deeper than `h` grey levels (h-minima), and flood
        the membrane signal from the markers. Masks smaller than 30 pixels are dropped,
        as a 2D segmenter would not report them (here that is all the background there
        is to remove).

        Every mask gets an id of its own across the stack: a per-layer segmenter's ids
        mean nothing from one layer to the next. As a 3D volume these masks are
        useless (each cell is dozens of one-layer labels); layer by layer they are a
        fair 2D segmentation.
        """
    ),
    code(
        """
        def segment_layer(image, sigma=1.5, h=4, min_area=30):
            \"\"\"Watershed of one membrane-stained layer from its h-minima.\"\"\"
            smooth = gaussian(image.astype(float), sigma=sigma, preserve_range=True)
            masks = watershed(smooth, label(h_minima(smooth, h)))
            area = np.bincount(masks.ravel())
            masks[area[masks] < min_area] = 0
            return masks


        start = time.perf_counter()
        layers = np.zeros(raw.shape, dtype=np.int32)
        for z in range(raw.shape[0]):
            masks = segment_layer(raw[z])
            layers[z] = np.where(masks > 0, masks + layers.max(), 0)  # ids unique in the stack
        per_layer = [
            mean_average_precision(mine[None], true[None])  # one layer as a 1-layer volume
            for mine, true in zip(layers, truth, strict=True)
        ]
        n_masks = [len(np.unique(layer)) - 1 for layer in layers]
        print(
            f"{np.mean(n_masks):.1f} masks per layer in {time.perf_counter() - start:.1f} s; "
            f"2D mAP layer by layer: {np.mean(per_layer):.3f}"
        )
        map_2d = mean_average_precision(layers, truth)
        print(f"as a 3D volume: {layers.max()} labels, mAP {map_2d:.3f}")
        plot_orthogonal_views(layers, spacing=spacing, highlight=[])
        """
    ),
    md(
        """
        ## 2. Stitch the layers

        `stitch_slices` links each mask to the mask of the layer above that it overlaps
        best, when their IoU reaches `iou_threshold` and that mask's best partner is
        this one too; otherwise the mask starts a new 3D label. A strict threshold
        (0.5 here) rarely links two different cells, which no later merge could undo,
        and leaves more cells split, which the corrector can repair.
        """
    ),
    code(
        """
        IOU_THRESHOLD = 0.5
        stitched = stitch_slices(layers, iou_threshold=IOU_THRESHOLD)
        map_stitched = mean_average_precision(stitched, truth)
        print(f"stitched: {stitched.max()} labels, mAP {map_stitched:.3f}")
        plot_orthogonal_views(stitched, spacing=spacing, highlight=[])
        """
    ),
    md(
        """
        ## 3. Correct

        The pretrained corrector screens pairs of labels that could be one cell, judges
        each pair and merges the ones it believes are one cell. `repair_scores` counts,
        against the ground truth, the **split links** (for every true cell, the labels
        it owns minus one), how many of them the correction **repaired**, and the
        **false joins** (different cells merged). The **ceiling** is the mAP of a
        perfect merge-only corrector: every stitched label relabelled to the true cell
        holding most of its voxels.
        """
    ),
    code(
        """
        corrector = load_pretrained()
        start = time.perf_counter()
        corrected, decisions = corrector.correct(stitched)
        seconds = time.perf_counter() - start
        repair = repair_scores(stitched, corrected, truth)
        print(
            f"corrected in {seconds:.1f} s: {int(decisions['merged'].sum())} merges of "
            f"{len(decisions)} candidates; split links {repair['split_links']}, "
            f"repaired {repair['repaired']}, false joins {repair['false_joins']}"
        )
        plot_orthogonal_views(stitched, corrected, decisions=decisions, spacing=spacing)
        """
    ),
    md(
        """
        Top: the stitched volume; bottom: after correction, cut through the largest
        merged cell, whose pieces are outlined in white.

        ## Every step, scored
        """
    ),
    code(
        """
        steps = {
            "2D masks as 3D": map_2d,
            "stitched": repair["mAP_input"],
            "corrected": repair["mAP_corrected"],
            "merge-only ceiling": repair["mAP_ceiling"],
        }
        print(
            f"mAP 2D masks: {steps['2D masks as 3D']:.3f}  stitched: {steps['stitched']:.3f}  "
            f"corrected: {steps['corrected']:.3f}  ceiling: {steps['merge-only ceiling']:.3f}"
        )
        pd.Series(steps, name="mAP").round(3).to_frame()
        """,
        "scores",
    ),
    md(
        """
        ## How strict should the linking be?

        The same layers stitched at a lenient and at a strict threshold, each corrected.
        A lenient threshold links more masks, rightly and wrongly; a strict one leaves
        the corrector more splits to repair.
        """
    ),
    code(
        """
        rows = [{"iou_threshold": IOU_THRESHOLD, "labels": int(stitched.max()), **repair}]
        for threshold in (0.25,):
            volume = stitch_slices(layers, iou_threshold=threshold)
            scores = repair_scores(volume, corrector.correct(volume)[0], truth)
            rows.append({"iou_threshold": threshold, "labels": int(volume.max()), **scores})
        columns = ["iou_threshold", "labels", "split_links", "repaired", "false_joins"]
        columns += ["mAP_input", "mAP_corrected", "mAP_ceiling"]
        pd.DataFrame(rows)[columns].sort_values("iou_threshold").round(3)
        """,
        "thresholds",
    ),
    md(
        """
        ## Reading the numbers

        * Stitching turns a stack of 2D masks into 3D cells; the corrector then merges
          the cells that stitching left in pieces. What it can reach is bounded by the
          **ceiling**: a merge never splits anything, so cells that the 2D segmenter
          joined within a layer, or that stitching linked to a neighbour, stay wrong.
        * Here the ceiling, not the linking, limits the result: the watershed joins
          some cells with a neighbour where their wall is faint in a layer (stitching
          then carries the join on), and places walls a pixel or two off, which the
          IoU 0.75 term of the mAP punishes. A better 2D segmenter (Cellpose, a PlantSeg
          network) raises the ceiling; the corrector closes the gap to it.
        * The counts tell how far the corrector got: `repaired` out of `split_links`,
          and the `false_joins` it paid for them.
        """
    ),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_train_your_own.ipynb": TRAIN_YOUR_OWN,
    "03_ablation_gridsearch.ipynb": ABLATION,
    "04_transfer_nuclei.ipynb": TRANSFER,
    "05_from_raw_slices.ipynb": FROM_RAW,
}


def build(directory: Path = HERE) -> list[Path]:
    """Write every notebook into ``directory``; returns the paths written."""
    written = []
    for filename, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=[nbformat.from_dict(dict(c)) for c in cells],
            metadata={"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
        )
        # Stable cell ids keep regenerated notebooks diff-free.
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(filename).stem[:2]}-{i:02d}"
        nbformat.validate(nb)
        path = directory / filename
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print("wrote", path.relative_to(HERE.parent))

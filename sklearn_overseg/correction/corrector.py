"""``SegmentationCorrector``: screen, judge and merge, as one scikit-learn estimator.

The corrector owns two sub-estimators, a screener and a candidate classifier (a
:class:`~sklearn.pipeline.Pipeline` of features and model), in the way
:class:`~sklearn.compose.ColumnTransformer` owns its transformers: the unfitted ones are
parameters, fitted clones live in ``screener_`` and ``classifier_``. Volumes are the
samples, so ``GridSearchCV(corrector, ..., cv=GroupKFold)`` over volumes works, scored by
mean mAP against ground truth.

Correction follows the paper's appendix B.3 for axial pairs. All candidates are judged
once; accepted pairs are made one-to-one (a cell's last layer continues into at most one cell below,
the most probable); then merges are applied from top to bottom. A pair whose upper cell
has already absorbed a cell above it is judged again on the merged cell's geometry, so
a chain A–B–C becomes D = A∪B first and then D is compared with C. Contact pairs (cuts
by tilted surfaces, :mod:`sklearn_overseg.screening.contact`) are merged as judged, without a
second judgement or interpolation: there is no missing layer to recover.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._progress import stage
from .._validation import (
    MIN_ROWS_PER_WORKER,
    check_label_volume,
    check_n_jobs,
    check_spacing,
    effective_n_jobs,
)
from ..classification._table_estimators import check_takes_table, fit_with_sample_weight
from ..evaluation.metrics import mean_average_precision
from ..io.volumes import read_region
from ..screening.axial import AxialGapScreener
from ..screening.candidates import PairGeometry
from ..synthesis.training import label_candidates, majority_labels, make_training_table
from ._merge_rules import (
    KindThresholds,
    MergeGroups,
    check_probabilities,
    check_sibling_threshold,
    check_threshold,
    kind_thresholds,
    one_to_one,
    union_frame,
)

__all__ = ["DECISION_COLUMNS", "SegmentationCorrector"]

#: Columns of the decision table returned by :meth:`SegmentationCorrector.correct`.
DECISION_COLUMNS = (
    "volume",
    "cell_a",
    "cell_b",
    "kind",
    "gap",
    "z_a_last",
    "z_b_first",
    "overlap_px",
    "probability",
    "probability_rejudged",
    "merged",
    "reason",
    "merged_into",
    "filled_voxels",
)


def _row_weights(table: pd.DataFrame, volume_weights: np.ndarray) -> np.ndarray:
    """Each candidate row gets the weight of the volume it was screened in.

    Volume ids are the position of the volume in ``X``, alone (labelled real pairs)
    or before a ``/`` (synthesised flaws, ``"<i>/z<k>p<phase>/r<repeat>"``, and
    stitched draws, ``"<i>/stitched-z<k>/r<repeat>"``).
    """
    source = table["volume"].astype(str).str.split("/", n=1).str[0].astype(np.int64)
    return volume_weights[source.to_numpy()]


def _as_volumes(X, name: str = "X") -> list:
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return [X]
    if isinstance(X, Mapping):
        return list(X.values())
    if isinstance(X, (list, tuple)):
        return list(X)
    raise TypeError(
        f"{name} must be a list of 3D label volumes (one volume per sample), got "
        f"{type(X).__name__}."
    )


class SegmentationCorrector(TransformerMixin, BaseEstimator):
    """Find and merge wrongly split cells in 3D label volumes.

    Parameters
    ----------
    screener : estimator, default=None
        Produces the candidate table from a volume (``screen(volume, ...)``); defaults
        to :class:`~sklearn_overseg.screening.axial.AxialGapScreener`.
    classifier : classifier, default=None
        Judges candidate tables (``predict_proba`` on the table); defaults to
        :func:`~sklearn_overseg.classification.pipeline.make_default_pipeline`.
    threshold : float or dict of str to float, default=0.5
        Merge pairs whose probability of being one cell exceeds this (so ``1.0`` merges
        nothing and ``0.0`` everything with a non-zero probability). A dict gives one
        threshold per candidate kind, e.g. ``{"axial": 0.5, "contact": 0.93}``.
    sibling_threshold : float or None, default=0.7
        Each cell is merged with at most one partner below and one above (the most
        probable), except that a second partner on the same side is merged too when the
        two partners are a ``"lateral"`` candidate at least this probable: the pieces of
        one cross-section cut in two, both continuing the cell. It needs a screener that
        lists lateral pairs; ``None`` keeps one partner per side.
    interpolation : {"ot", "sdf", "none"}, default="ot"
        How the missing layers of a merged axial pair are filled.
    only_background : bool, default=True
        Fill only background voxels; never overwrite another cell.
    split_fraction, tilted_fraction, n_repeats, z_subsample, relabel_fraction
        Training synthesis when :meth:`fit` gets ground truth only (see
        :func:`~sklearn_overseg.synthesis.training.make_training_table`).
    stitched_repeats : int, default=0
        Also train on this many stitched versions of each ground truth per z-subsampling
        factor: per-slice segmentations with lost masks, gaps, cut cross-sections and
        jittered boundaries, linked by IoU (see
        :func:`~sklearn_overseg.synthesis.stitched_flaws.make_stitched_training_table`). Use with a
        screener that finds their pieces, e.g. ``CombinedScreener(axial=
        AxialGapScreener(max_gap=3), contact="drop", lateral=LateralScreener())``.
    spacing : tuple of float, optional
        Voxel size (z, y, x) of the volumes, used by every method unless a call gives
        its own. Features are then in physical units.
    n_jobs : int, optional
        Parallel jobs for screening and features (a joblib ``parallel_config``).
    random_state : int, RandomState or None
        Seeds the synthesis, the stitched draws and the default classifier. A
        ``RandomState`` is drawn from in :meth:`fit` (synthesis first, then the stitched
        draws, then one seed for the default classifier), so fits from equally seeded
        ``RandomState`` objects are identical.

    Attributes
    ----------
    screener_ : estimator
        Fitted clone of ``screener``.
    classifier_ : classifier
        Fitted clone of ``classifier``.
    spacing_ : tuple of float
        Voxel size used in :meth:`fit`; the default of later calls.
    n_training_pairs_ : int
        Rows of the training table.
    training_balance_ : dict
        Count of positive and negative training pairs.

    Notes
    -----
    The samples are volumes: ``X`` is a list of 3D label volumes (the estimator tags
    say ``three_d_array``, not ``two_d_array``) and :meth:`transform` returns the list of
    corrected volumes. The classifier is given the candidate table, so a classifier of
    numeric arrays is refused in :meth:`fit`; wrap it with
    ``make_default_pipeline(classifier=...)``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_overseg import SegmentationCorrector, make_tissue, synthesize_flaws
    >>> from sklearn_overseg.evaluation.metrics import mean_average_precision
    >>> from sklearn_overseg.classification.pipeline import make_default_pipeline
    >>> truth = make_tissue((16, 32, 32), cell_size=(8, 12, 12), random_state=0)
    >>> corrector = SegmentationCorrector(
    ...     classifier=make_default_pipeline(LogisticRegression()), n_repeats=1, random_state=0
    ... ).fit([truth])
    >>> flawed = synthesize_flaws(truth, random_state=1).labels
    >>> corrected, decisions = corrector.correct(flawed)
    >>> corrected.shape == flawed.shape
    True
    >>> before = mean_average_precision(flawed, truth)
    >>> after = mean_average_precision(corrected, truth)
    >>> bool(after > before)
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "screener": [None, HasMethods(["screen"])],
        "classifier": [None, HasMethods(["fit", "predict_proba"])],
        "threshold": [Interval(Real, 0, 1, closed="both"), KindThresholds()],
        "sibling_threshold": [Interval(Real, 0, 1, closed="both"), None],
        "interpolation": [StrOptions({"ot", "sdf", "none"})],
        "only_background": ["boolean"],
        "split_fraction": [Interval(Real, 0, 1, closed="both")],
        "tilted_fraction": [Interval(Real, 0, 1, closed="both")],
        "n_repeats": [Interval(Integral, 1, None, closed="left")],
        "z_subsample": ["array-like"],
        "relabel_fraction": [Interval(Real, 0, 1, closed="both")],
        "stitched_repeats": [Interval(Integral, 0, None, closed="left")],
        "spacing": ["array-like", Real, None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        screener=None,
        classifier=None,
        threshold: float = 0.5,
        sibling_threshold: float | None = 0.7,
        interpolation: str = "ot",
        only_background: bool = True,
        split_fraction: float = 0.3,
        tilted_fraction: float = 0.0,
        n_repeats: int = 2,
        z_subsample: Sequence[int] = (1,),
        relabel_fraction: float = 0.25,
        stitched_repeats: int = 0,
        spacing=None,
        n_jobs: int | None = None,
        random_state=None,
    ) -> None:
        self.screener = screener
        self.classifier = classifier
        self.threshold = threshold
        self.sibling_threshold = sibling_threshold
        self.interpolation = interpolation
        self.only_background = only_background
        self.split_fraction = split_fraction
        self.tilted_fraction = tilted_fraction
        self.n_repeats = n_repeats
        self.z_subsample = z_subsample
        self.relabel_fraction = relabel_fraction
        self.stitched_repeats = stitched_repeats
        self.spacing = spacing
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _make_screener(self):
        return clone(self.screener) if self.screener is not None else AxialGapScreener()

    def _make_classifier(self, random_state=None):
        if self.classifier is not None:
            return clone(self.classifier)
        from ..classification.pipeline import make_default_pipeline

        return make_default_pipeline(random_state=random_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Samples are 3D label volumes; y (ground truths) is optional.
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []
        return tags

    def get_metadata_routing(self) -> MetadataRouter:
        """How :meth:`fit` routes ``sample_weight`` to the classifier.

        Returns
        -------
        routing : MetadataRouter
        """
        return MetadataRouter(owner=self).add(
            classifier=self._make_classifier(),
            method_mapping=MethodMapping().add(caller="fit", callee="fit"),
        )

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, spacing=None, sample_weight=None):
        """Train the candidate classifier.

        Parameters
        ----------
        X : list of ndarray
            Ground-truth volumes (``y=None``): flaws are synthesised to make training
            pairs. Or flawed volumes, with their ground truths in ``y``.
        y : list of ndarray, optional
            Ground truths of ``X``; candidates of ``X`` are labelled by majority overlap.
        spacing : tuple of float, optional
            Voxel size (z, y, x) of the volumes; overrides the ``spacing`` parameter.
        sample_weight : array-like of shape (n_volumes,), optional
            Weight of each volume; every candidate pair screened in it gets that weight
            in the classifier's fit. With metadata routing enabled it goes where the
            classifier requests it (the default classifier does); without, to the
            classifier's ``sample_weight`` (its last step's, for a Pipeline).

        Returns
        -------
        self : SegmentationCorrector
        """
        check_n_jobs(self.n_jobs)
        spacing = check_spacing(spacing if spacing is not None else self.spacing)
        volumes = _as_volumes(X)
        if not volumes:
            raise ValueError("X is empty: fit needs at least one volume.")
        if self.classifier is not None:
            check_takes_table(self.classifier, owner="SegmentationCorrector.classifier")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, np.empty((len(volumes), 0)), ensure_non_negative=True
            )
        routed = None
        if get_config()["enable_metadata_routing"]:
            metadata = {} if sample_weight is None else {"sample_weight": sample_weight}
            routed = process_routing(self, "fit", **metadata)
        # An int (or None) seeds synthesis, stitched draws and classifier as given; a
        # RandomState is drawn from, in a fixed order, so equal states give equal fits.
        random_state = self.random_state
        if random_state is not None and not isinstance(random_state, Integral):
            random_state = check_random_state(random_state)
        self.screener_ = self._make_screener()
        # Capped at the cores here, so that every Parallel() below inherits a sane count.
        with parallel_config(n_jobs=effective_n_jobs(self.n_jobs)):
            stage("training pairs")
            if y is None:
                table, labels = make_training_table(
                    volumes,
                    screener=self.screener_,
                    split_fraction=self.split_fraction,
                    tilted_fraction=self.tilted_fraction,
                    n_repeats=self.n_repeats,
                    z_subsample=tuple(self.z_subsample),
                    relabel_fraction=self.relabel_fraction,
                    spacing=spacing,
                    random_state=random_state,
                )
                if self.stitched_repeats:
                    from ..screening.candidates import concat_tables
                    from ..synthesis.stitched_flaws import make_stitched_training_table

                    stitched, stitched_labels = make_stitched_training_table(
                        volumes,
                        screener=self.screener_,
                        n_repeats=self.stitched_repeats,
                        z_subsample=tuple(self.z_subsample),
                        spacing=spacing,
                        random_state=random_state,
                    )
                    table = concat_tables([table, stitched])
                    labels = pd.concat([labels, stitched_labels])
            else:
                table, labels = self._label_real_pairs(volumes, _as_volumes(y, "y"), spacing)
            counts = {int(k): int(v) for k, v in labels.value_counts().items()}
            if not counts:
                raise ValueError(
                    "screening found no candidate pair in the training volumes: give "
                    "volumes with cells that span several layers."
                )
            if len(counts) < 2:
                raise ValueError(
                    f"the training pairs hold a single class ({counts}): give more or "
                    "larger volumes, or raise split_fraction."
                )
            stage("features and classifier")
            classifier = self._make_classifier(random_state)
            with self._per_rows(len(table)):
                if routed is not None:
                    params = dict(routed.classifier.fit)
                    if params.get("sample_weight") is not None:
                        params["sample_weight"] = _row_weights(table, params["sample_weight"])
                    self.classifier_ = classifier.fit(table, labels.to_numpy(), **params)
                else:
                    weights = None if sample_weight is None else _row_weights(table, sample_weight)
                    self.classifier_ = fit_with_sample_weight(
                        classifier,
                        table,
                        labels.to_numpy(),
                        weights,
                        owner="SegmentationCorrector.classifier",
                    )
        self.spacing_ = spacing
        self.n_training_pairs_ = len(table)
        self.training_balance_ = counts
        return self

    def _label_real_pairs(self, volumes, truths, spacing):
        if len(volumes) != len(truths):
            raise ValueError(f"X has {len(volumes)} volumes but y has {len(truths)} ground truths.")
        tables, labels = [], []
        for i, (vol, gt) in enumerate(zip(volumes, truths, strict=True)):
            vol = check_label_volume(vol, name=f"X[{i}]")
            gt = check_label_volume(gt, name=f"y[{i}]")
            if vol.shape != gt.shape:
                raise ValueError(
                    f"X[{i}] has shape {vol.shape} but its ground truth y[{i}] has {gt.shape}."
                )
            table = self.screener_.screen(vol, volume_id=str(i), spacing=spacing)
            tables.append(table)
            labels.append(label_candidates(table, majority_labels(vol, gt)))
        from ..screening.candidates import concat_tables

        return concat_tables(tables), pd.concat(labels)

    # --------------------------------------------------------------- correcting
    def predict_proba_table(self, table: pd.DataFrame) -> np.ndarray:
        """Probability that each candidate of a table is one cell wrongly split."""
        check_is_fitted(self, "classifier_")
        if len(table) == 0:
            return np.zeros(0)
        return np.asarray(self.classifier_.predict_proba(table))[:, 1]

    def correct(
        self,
        volume,
        *,
        spacing=None,
        volume_id: str = "0",
        out=None,
        slab_layers: int | None = None,
    ):
        """Correct one volume, in memory or out of core.

        Parameters
        ----------
        volume : array-like of int, shape (Z, Y, X)
            Flawed label volume; never modified. A numpy array, or a lazily read array
            (``zarr.Array``, :class:`~sklearn_overseg.io.volumes.HDF5Volume` from
            :func:`~sklearn_overseg.io.volumes.open_volume`) larger than memory, which is then
            read slab by slab and box by box (see :mod:`sklearn_overseg.correction.blockwise`).
        spacing : tuple of float, optional
            Voxel size (z, y, x) in the units the model was trained in; defaults to the
            spacing used in :meth:`fit`. Distance features scale with it, so leave it
            unset for a model trained in voxel units (the shipped ones are), whatever
            the file's physical voxel size.
        volume_id : str, default="0"
            Written to the decision table.
        out : writable array-like, optional
            Where the corrected volume goes: a numpy array or a Zarr array of the
            volume's shape and dtype, written slab by slab (chunk-aligned). By default
            a new numpy array.
        slab_layers : int, optional
            Layers per z-slab for indexing, screening, feature blocks and writing.
            By default slabs hold about 32 million voxels and feature blocks 64 layers
            (see :func:`~sklearn_overseg.correction.blockwise.choose_slab_layers`). Memory per
            task grows with it; the result does not depend on it.

        Returns
        -------
        corrected : ndarray or the given ``out``
            The volume with merged pairs relabelled to the upper cell's id and missing
            layers filled; same shape and dtype as ``volume``.
        decisions : DataFrame
            One row per candidate: probabilities, decision, reason, what was filled.

        Raises
        ------
        ValueError
            If the volume has no labelled voxel, or the classifier returns
            probabilities that are NaN, infinite or outside [0, 1] (corrupt weights).
        sklearn_overseg.io.volumes.VolumeReadError
            If a lazily read volume has a chunk that cannot be read.
        """
        from .blockwise import (
            check_volume_like,
            choose_slab_layers,
            index_volume,
            is_lazy,
            make_canvas,
        )

        check_is_fitted(self, "classifier_")
        check_n_jobs(self.n_jobs)
        # Before any work: set_params after fit or a loaded model may bring a bad one.
        check_threshold(self.threshold)
        check_sibling_threshold(self.sibling_threshold)
        volume = check_volume_like(volume)
        _check_out(out, volume)
        if slab_layers is not None:
            _check_slab_layers(slab_layers)
        slab, block = choose_slab_layers(volume.shape, slab_layers)
        spacing = check_spacing(spacing if spacing is not None else self.spacing_)
        lazy = is_lazy(volume) or (out is not None and is_lazy(out))
        # Capped at the cores here, so that every Parallel() below inherits a sane count.
        with parallel_config(n_jobs=effective_n_jobs(self.n_jobs)):
            stage("index")
            index = index_volume(volume, slab_layers=slab)
            if len(index) == 0:
                raise ValueError("volume has no labelled voxel: every voxel is 0 (background).")
            stage("screen")
            table, proba = self._screen_and_judge(index, volume_id, spacing, slab, block)
            stage("merge")
            canvas, out = make_canvas(volume, out, lazy)
            with self._per_rows(len(table)):
                decisions = self._decide_and_merge(table, proba, index, canvas, spacing, block)
            if lazy:
                stage("write")
                if out is None:
                    out = np.empty(volume.shape, dtype=volume.dtype)
                canvas.write(out, slab_layers=slab)
        return out, decisions

    def _screen_and_judge(self, index, volume_id, spacing, slab, block):
        """Candidate table and P(one cell) per row, by each screener of ``screener_``.

        Axial screening and its features run slab by slab and block by block (in
        parallel, out of core for lazy volumes). Other kinds (tilted contacts, pieces
        sharing a layer) need each pair's whole neighbourhood: they are screened on the
        volume in memory. As in :class:`~sklearn_overseg.screening.contact.CombinedScreener`, a
        pair found by several screeners keeps the row of the first.
        """
        from ..screening.contact import CombinedScreener, unseen_pairs
        from .blockwise import is_lazy

        screener = self.screener_
        parts = screener._screeners() if isinstance(screener, CombinedScreener) else [screener]
        tables, probas = [], []
        seen: set[tuple[int, int]] = set()
        for part in parts:
            if type(part).screen is AxialGapScreener.screen:
                table, proba = self._judge_axial_blockwise(
                    part, index, volume_id, spacing, slab, block
                )
            else:
                if is_lazy(index.volume):
                    warnings.warn(
                        f"{type(part).__name__} screens the volume in memory: the volume is "
                        "loaded.",
                        UserWarning,
                        stacklevel=3,
                    )
                table = self._screen_in_memory(index, volume_id, spacing, part)
                proba = None
            fresh = unseen_pairs(table, seen)
            if not fresh.all():
                table = table[fresh]
                proba = None if proba is None else proba[fresh]
            if proba is None:
                with self._per_rows(len(table)):
                    proba = self.predict_proba_table(table)
            tables.append(table)
            probas.append(proba)
        if len(tables) == 1:
            return tables[0], probas[0]
        from ..screening.candidates import concat_tables

        return concat_tables(tables), np.concatenate(probas)

    def _judge_axial_blockwise(self, screener, index, volume_id, spacing, slab, block):
        from .blockwise import featurize_blockwise, is_lazy, screen_blockwise, split_classifier

        table = screen_blockwise(
            screener, index, volume_id=str(volume_id), spacing=spacing, slab_layers=slab
        )
        split = split_classifier(self.classifier_, table["kind"].to_numpy())
        if len(table) == 0:
            return table, np.zeros(0)
        if split is not None:
            featurizer, head = split
            stage("features")
            with self._per_rows(len(table)):
                features = featurize_blockwise(
                    featurizer, table, index, spacing=spacing, slab_layers=block
                )
                return table, head(features)
        if is_lazy(index.volume):
            warnings.warn(
                f"{type(self.classifier_).__name__} is not a Pipeline of feature "
                "steps and a model, so it judges whole candidate tables with "
                "their masks: the volume is loaded into memory.",
                UserWarning,
                stacklevel=4,
            )
        table = self._screen_in_memory(index, volume_id, spacing, screener)
        stage("features")
        with self._per_rows(len(table)):
            return table, self.predict_proba_table(table)

    def _per_rows(self, n_rows: int):
        """Workers for judging ``n_rows`` candidates: one per MIN_ROWS_PER_WORKER rows.

        Everything below (our blocks, sklearn's ColumnTransformer, the EMD features)
        inherits this; on a small volume a process pool costs more to start (imports
        included) than the whole correction, so few candidates run in this process.
        """
        n_tasks = -(-int(n_rows) // MIN_ROWS_PER_WORKER)
        return parallel_config(n_jobs=effective_n_jobs(self.n_jobs, n_tasks))

    def _screen_in_memory(self, index, volume_id, spacing, screener) -> pd.DataFrame:
        """A screener's full table (with masks), the indexed volume loaded if lazy."""
        dense = read_region(index.volume)
        # The index describes the same voxels: only where they are read from changes.
        index = index if dense is index.volume else dataclasses.replace(index, volume=dense)
        return screener.screen(dense, volume_id=str(volume_id), spacing=spacing, index=index)

    def _decide_and_merge(self, table, proba, index, canvas, spacing, slab_layers=64):
        """Judge, make one-to-one, and merge top to bottom on ``canvas``."""
        from .blockwise import gap_masks, prefill

        n = len(table)
        check_probabilities(proba, self.classifier_)
        rejudged = np.full(n, np.nan)
        merged = np.zeros(n, dtype=bool)
        reason = np.array(["below threshold"] * n, dtype=object)
        merged_into = np.zeros(n, dtype=np.int64)
        filled = np.zeros(n, dtype=np.int64)
        if n:
            limits = self._thresholds(table["kind"].to_numpy())
            accepted = proba > limits
            chosen = one_to_one(table, proba, accepted, reason, self.sibling_threshold)
            kinds = table["kind"].to_numpy()
            cell_a = table["cell_a"].to_numpy()
            cell_b = table["cell_b"].to_numpy()
            gaps = table["gap"].to_numpy()
            z_a_last = table["z_a_last"].to_numpy()
            z_b_first = table["z_b_first"].to_numpy()
            to_fill = chosen & (kinds == "axial") & (gaps >= 1)
            if self.interpolation == "none":
                to_fill[:] = False
            ahead = None
            if self.only_background:
                # Computed now, in parallel, from the input: valid for every pair whose
                # cells are both unmerged when its turn comes (most of them), since
                # earlier fills only write background and so never change its end masks.
                ahead = prefill(
                    table,
                    np.flatnonzero(to_fill),
                    index,
                    method=self.interpolation,
                    spacing=spacing,
                    slab_layers=slab_layers,
                )
            order = np.lexsort((cell_b, z_a_last))
            groups = MergeGroups()
            for i in order:
                if not chosen[i]:
                    continue
                a, b = int(cell_a[i]), int(cell_b[i])
                root_a, root_b = groups.find(a), groups.find(b)
                if root_a == root_b:
                    reason[i] = "already merged"
                    continue
                bbox_a = groups.bbox.get(root_a, index.bboxes[index.position(a)])
                bbox_b = groups.bbox.get(root_b, index.bboxes[index.position(b)])
                # Both cells untouched so far: their end masks are the input's.
                unmerged = root_a == a and root_b == b
                unmerged = unmerged and a not in groups.bbox and b not in groups.bbox
                if kinds[i] == "axial" and (root_a != a or root_b != b):
                    rejudged[i] = self._rejudge(
                        table.iloc[[i]], root_a, root_b, bbox_a, bbox_b, canvas, spacing
                    )
                    if not rejudged[i] > limits[i]:
                        reason[i] = "rejected after merging above"
                        continue
                canvas.relabel(bbox_b, root_b, root_a)
                if to_fill[i]:
                    if unmerged and ahead is not None:
                        masks = ahead.get(int(i))  # absent: an end mask was empty
                    else:
                        masks = self._gap_masks(
                            int(z_a_last[i]),
                            int(z_b_first[i]),
                            root_a,
                            bbox_a,
                            bbox_b,
                            canvas,
                            spacing,
                            gap_masks,
                        )
                    if masks is not None:
                        y0, _, x0, _ = union_frame(bbox_a, bbox_b)
                        filled[i] = canvas.paint(
                            int(z_a_last[i]) + 1, y0, x0, masks, root_a, self.only_background
                        )
                groups.union(root_a, root_b, bbox_a, bbox_b)
                merged[i] = True
                merged_into[i] = root_a
                reason[i] = "merged"
        decisions = table.drop(columns=["geometry"]).copy()
        decisions["probability"] = proba
        decisions["probability_rejudged"] = rejudged
        decisions["merged"] = merged
        decisions["reason"] = reason
        decisions["merged_into"] = merged_into
        decisions["filled_voxels"] = filled
        return decisions[list(DECISION_COLUMNS)]

    def _gap_masks(self, za, zb, root_a, bbox_a, bbox_b, canvas, spacing, gap_masks):
        """Interpolated gap of a pair whose group changed: end masks read from ``canvas``."""
        frame = union_frame(bbox_a, bbox_b)
        mask_a = canvas.read(za, za + 1, *frame)[0] == root_a
        mask_b = canvas.read(zb, zb + 1, *frame)[0] == root_a
        return gap_masks(mask_a, mask_b, zb - za - 1, self.interpolation, spacing)

    def _thresholds(self, kinds: np.ndarray) -> np.ndarray:
        """The threshold of each candidate, by its kind."""
        return kind_thresholds(self.threshold, kinds)

    def _group_geometry(self, row, root_a, root_b, bbox_a, bbox_b, canvas, spacing):
        y0, y1, x0, x1 = union_frame(bbox_a, bbox_b)
        za0, za1 = int(bbox_a[0]), int(row.z_a_last) + 1
        zb0, zb1 = int(row.z_b_first), int(bbox_b[1])
        return PairGeometry(
            a=canvas.read(za0, za1, y0, y1, x0, x1) == root_a,
            b=canvas.read(zb0, zb1, y0, y1, x0, x1) == root_b,
            gap=int(row.gap),
            spacing=(spacing[1], spacing[2]),
            layer_step=spacing[0],
            origin=(y0, x0),
        )

    def _rejudge(self, one, root_a, root_b, bbox_a, bbox_b, canvas, spacing) -> float:
        row = one.iloc[0]
        geometry = self._group_geometry(row, root_a, root_b, bbox_a, bbox_b, canvas, spacing)
        one = one.copy()
        # The row now describes the merged group above the gap, not A alone.
        one["z_a_first"] = int(bbox_a[0])
        one["voxels_a"] = int(np.count_nonzero(geometry.a))
        one["z_b_last"] = int(bbox_b[1]) - 1
        one["voxels_b"] = int(np.count_nonzero(geometry.b))
        one["geometry"] = pd.Series([geometry], index=one.index, dtype=object)
        # One row: shipping it to worker processes (or a cluster) would cost more than
        # judging it here.
        with parallel_config(backend="threading", n_jobs=1):
            proba = self.predict_proba_table(one)
        check_probabilities(proba, self.classifier_)
        return float(proba[0])

    def transform(self, X) -> list[np.ndarray]:
        """Correct every volume of ``X`` (at the spacing of :meth:`fit`).

        Parameters
        ----------
        X : list of ndarray

        Returns
        -------
        corrected : list of ndarray
        """
        check_is_fitted(self, "classifier_")
        return [self.correct(v)[0] for v in _as_volumes(X)]

    def score(self, X, y) -> float:
        """Mean mAP (IoU 0.25, 0.5, 0.75) of the corrected ``X`` against ground truths ``y``."""
        check_is_fitted(self, "classifier_")
        volumes, truths = _as_volumes(X), _as_volumes(y, "y")
        if len(volumes) != len(truths):
            raise ValueError(f"X has {len(volumes)} volumes but y has {len(truths)}.")
        scores = [
            mean_average_precision(corrected, gt)
            for corrected, gt in zip(self.transform(volumes), truths, strict=True)
        ]
        return float(np.mean(scores))


def _check_out(out, volume) -> None:
    if out is None:
        return
    if not all(hasattr(out, a) for a in ("shape", "dtype", "__setitem__")):
        raise TypeError(f"out must be a writable array (numpy or Zarr), got {type(out).__name__}.")
    if tuple(out.shape) != tuple(volume.shape):
        raise ValueError(
            f"out has shape {tuple(out.shape)} but the volume has {tuple(volume.shape)}."
        )
    if np.dtype(out.dtype) != np.dtype(volume.dtype):
        raise ValueError(
            f"out has dtype {np.dtype(out.dtype)} but the volume has {np.dtype(volume.dtype)}: "
            "merges never create ids, so the output keeps the input's dtype."
        )
    if out is volume or (
        isinstance(out, np.ndarray)
        and isinstance(volume, np.ndarray)
        and np.may_share_memory(out, volume)
    ):
        raise ValueError(
            "out shares memory with the input volume: the input is never modified; "
            "give a separate array."
        )
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out is read-only.")
    if getattr(out, "read_only", False):
        raise ValueError("out was opened read-only (e.g. zarr mode='r'); open it writable.")


def _check_slab_layers(value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"slab_layers must be a positive integer, got {value!r}.")
    return int(value)

"""Find and repair oversegmentation in 3D cell segmentations, the scikit-learn way.

The heavy modules (torch, skorch) load on first use of the objects that need them, so
``import sklearn_overseg`` stays fast for I/O and metrics.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "AxialGapScreener": "screening.axial",
    "BaseScreener": "screening.base",
    "ContactScreener": "screening.contact",
    "CombinedScreener": "screening.contact",
    "reslice_pair": "screening.reslice",
    "CellContextFeatures": "features.context",
    "InterfaceFeatures": "features.interface",
    "KindClassifier": "classification.dispatch",
    "plot_orthogonal_views": "evaluation.plotting",
    "plot_decision_gallery": "evaluation.plotting",
    "plot_feature_distributions": "evaluation.plotting",
    "plot_precision_recall": "evaluation.plotting",
    "CellIndex": "screening.cells",
    "LateralScreener": "screening.lateral",
    "LateralFeatures": "features.lateral",
    "stitch_slices": "stitch",
    "synthesize_stitched": "synthesis.stitched_flaws",
    "make_stitched_training_table": "synthesis.stitched_flaws",
    "repair_scores": "evaluation.metrics",
    "PairGeometry": "screening.candidates",
    "concat_tables": "screening.candidates",
    "GeoWassersteinFeatures": "features.geo_wasserstein",
    "OverlapTopologyFeatures": "features.overlap_topology",
    "STATISTICS_PRESETS": "features.geo_wasserstein",
    "mask_wasserstein": "features.ot",
    "pairwise_layer_distances": "features.ot",
    "OversegMLPClassifier": "classification.classifier",
    "make_default_pipeline": "classification.pipeline",
    "make_features": "classification.pipeline",
    "make_lateral_pipeline": "classification.pipeline",
    "SegmentationCorrector": "correction.corrector",
    "make_training_table": "synthesis.training",
    "label_candidates": "synthesis.training",
    "majority_labels": "synthesis.training",
    "interpolate_masks": "correction.interpolation",
    "fill_gap": "correction.interpolation",
    "load_volume": "io.volumes",
    "open_volume": "io.volumes",
    "save_volume": "io.volumes",
    "load_pretrained": "pretrained",
    "save_estimator": "io.persistence",
    "load_estimator": "io.persistence",
    "make_tissue": "synthesis.datasets",
    "load_demo": "synthesis.datasets",
    "synthesize_flaws": "synthesis.flaws",
    "mean_average_precision": "evaluation.metrics",
    "segmentation_scores": "evaluation.metrics",
    "pair_scores": "evaluation.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

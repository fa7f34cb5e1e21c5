"""Find and repair oversegmentation in 3D cell segmentations, the scikit-learn way.

The heavy modules (torch, skorch) load on first use of the objects that need them, so
``import sklearn_overseg`` stays fast for I/O and metrics.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "AxialGapScreener": "screening",
    "BaseScreener": "screening",
    "ContactScreener": "contact",
    "CombinedScreener": "contact",
    "reslice_pair": "contact",
    "CellContextFeatures": "context",
    "InterfaceFeatures": "interface",
    "KindClassifier": "dispatch",
    "plot_orthogonal_views": "plotting",
    "plot_decision_gallery": "plotting",
    "plot_feature_distributions": "plotting",
    "plot_precision_recall": "plotting",
    "CellIndex": "cells",
    "LateralScreener": "lateral",
    "LateralFeatures": "lateral",
    "stitch_slices": "stitch",
    "synthesize_stitched": "stitched_flaws",
    "make_stitched_training_table": "stitched_flaws",
    "repair_scores": "metrics",
    "PairGeometry": "candidates",
    "concat_tables": "candidates",
    "GeoWassersteinFeatures": "features",
    "OverlapTopologyFeatures": "features",
    "STATISTICS_PRESETS": "features",
    "mask_wasserstein": "ot",
    "pairwise_layer_distances": "ot",
    "OversegMLPClassifier": "classifier",
    "make_default_pipeline": "pipeline",
    "make_features": "pipeline",
    "make_lateral_pipeline": "pipeline",
    "SegmentationCorrector": "corrector",
    "make_training_table": "synthesis",
    "label_candidates": "synthesis",
    "majority_labels": "synthesis",
    "interpolate_masks": "interpolation",
    "fill_gap": "interpolation",
    "load_volume": "io",
    "open_volume": "io",
    "save_volume": "io",
    "load_pretrained": "pretrained",
    "save_estimator": "persistence",
    "load_estimator": "persistence",
    "make_tissue": "datasets",
    "load_demo": "datasets",
    "synthesize_flaws": "flaws",
    "mean_average_precision": "metrics",
    "segmentation_scores": "metrics",
    "pair_scores": "metrics",
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

"""Where the modules of sklearn_overseg went when the package was grouped by stage.

Written once, by the script that moved the modules; never remove an entry. A model saved
before the re-layout names its classes by their old modules (``"sklearn_overseg.contact:
CombinedScreener"``); :mod:`sklearn_overseg.io.persistence` maps them here first.
"""

#: Old module -> new module.
MOVED_MODULES: dict[str, str] = {
    "sklearn_overseg._cli_commands": "sklearn_overseg.cli._commands",
    "sklearn_overseg._cli_parser": "sklearn_overseg.cli._parser",
    "sklearn_overseg._formats": "sklearn_overseg.io._formats",
    "sklearn_overseg._io_paths": "sklearn_overseg.io._paths",
    "sklearn_overseg._merge_rules": "sklearn_overseg.correction._merge_rules",
    "sklearn_overseg._modules": "sklearn_overseg.classification._modules",
    "sklearn_overseg._table_estimators": "sklearn_overseg.classification._table_estimators",
    "sklearn_overseg._weighted_net": "sklearn_overseg.classification._weighted_net",
    "sklearn_overseg.blockwise": "sklearn_overseg.correction.blockwise",
    "sklearn_overseg.candidates": "sklearn_overseg.screening.candidates",
    "sklearn_overseg.canvas": "sklearn_overseg.correction.canvas",
    "sklearn_overseg.cells": "sklearn_overseg.screening.cells",
    "sklearn_overseg.classifier": "sklearn_overseg.classification.classifier",
    "sklearn_overseg.contact": "sklearn_overseg.screening.contact",
    "sklearn_overseg.context": "sklearn_overseg.features.context",
    "sklearn_overseg.corrector": "sklearn_overseg.correction.corrector",
    "sklearn_overseg.datasets": "sklearn_overseg.synthesis.datasets",
    "sklearn_overseg.dispatch": "sklearn_overseg.classification.dispatch",
    "sklearn_overseg.features": "sklearn_overseg.features.geo_wasserstein",
    "sklearn_overseg.flaws": "sklearn_overseg.synthesis.flaws",
    "sklearn_overseg.interface": "sklearn_overseg.features.interface",
    "sklearn_overseg.interpolation": "sklearn_overseg.correction.interpolation",
    "sklearn_overseg.io": "sklearn_overseg.io.volumes",
    "sklearn_overseg.lateral": "sklearn_overseg.screening.lateral",
    "sklearn_overseg.metrics": "sklearn_overseg.evaluation.metrics",
    "sklearn_overseg.ot": "sklearn_overseg.features.ot",
    "sklearn_overseg.persistence": "sklearn_overseg.io.persistence",
    "sklearn_overseg.pipeline": "sklearn_overseg.classification.pipeline",
    "sklearn_overseg.plotting": "sklearn_overseg.evaluation.plotting",
    "sklearn_overseg.screening": "sklearn_overseg.screening.axial",
    "sklearn_overseg.stitched_flaws": "sklearn_overseg.synthesis.stitched_flaws",
    "sklearn_overseg.synthesis": "sklearn_overseg.synthesis.training",
}

#: Old modules split in two: top-level name -> new module.
SPLIT_MODULES: dict[str, dict[str, str]] = {
    "sklearn_overseg.features": {
        "STATISTICS_PRESETS": "sklearn_overseg.features.geo_wasserstein",
        "_RATIO_FLOOR_PX": "sklearn_overseg.features.geo_wasserstein",
        "_row_seed": "sklearn_overseg.features.geo_wasserstein",
        "_quantile_name": "sklearn_overseg.features.geo_wasserstein",
        "_resolve_statistics": "sklearn_overseg.features.geo_wasserstein",
        "_emd_row": "sklearn_overseg.features.geo_wasserstein",
        "_summary": "sklearn_overseg.features.geo_wasserstein",
        "_cell_distances": "sklearn_overseg.features.geo_wasserstein",
        "_emd_chunk": "sklearn_overseg.features.geo_wasserstein",
        "GeoWassersteinFeatures": "sklearn_overseg.features.geo_wasserstein",
        "_STD_FLOOR": "sklearn_overseg.features.overlap_topology",
        "_adjusted_r2": "sklearn_overseg.features.overlap_topology",
        "_is_unimodal": "sklearn_overseg.features.overlap_topology",
        "_curve_features": "sklearn_overseg.features.overlap_topology",
        "_topology_row": "sklearn_overseg.features.overlap_topology",
        "OverlapTopologyFeatures": "sklearn_overseg.features.overlap_topology",
        "_geometries": "sklearn_overseg.features._common",
        "_table_tags": "sklearn_overseg.features._common",
        "_nonempty": "sklearn_overseg.features._common",
        "_facing_layers": "sklearn_overseg.features._common",
        "_check_input_features": "sklearn_overseg.features._common",
    },
    "sklearn_overseg.contact": {
        "cell_centroids": "sklearn_overseg.screening.reslice",
        "_PairBox": "sklearn_overseg.screening.reslice",
        "_slab_window": "sklearn_overseg.screening.reslice",
        "_sample_nearest": "sklearn_overseg.screening.reslice",
        "_canonical": "sklearn_overseg.screening.reslice",
        "_fit_plane": "sklearn_overseg.screening.reslice",
        "_in_plane_axes": "sklearn_overseg.screening.reslice",
        "_span": "sklearn_overseg.screening.reslice",
        "_trim": "sklearn_overseg.screening.reslice",
        "_reslice": "sklearn_overseg.screening.reslice",
        "_oriented_geometry": "sklearn_overseg.screening.reslice",
        "_oriented_batch": "sklearn_overseg.screening.reslice",
        "_unpack": "sklearn_overseg.screening.reslice",
        "reslice_pair": "sklearn_overseg.screening.reslice",
        "_check_max_layers": "sklearn_overseg.screening.reslice",
        "_TIE_BIAS": "sklearn_overseg.screening.reslice",
        "_DEGENERATE": "sklearn_overseg.screening.reslice",
    },
    "sklearn_overseg.lateral": {
        "_KEY": "sklearn_overseg.screening.lateral",
        "_in_plane_offsets": "sklearn_overseg.screening.lateral",
        "_shifted_pairs": "sklearn_overseg.screening.lateral",
        "_meeting_pairs": "sklearn_overseg.screening.lateral",
        "lateral_pairs": "sklearn_overseg.screening.lateral",
        "_lateral_geometry": "sklearn_overseg.screening.lateral",
        "LateralScreener": "sklearn_overseg.screening.lateral",
        "LATERAL_FEATURES": "sklearn_overseg.features.lateral",
        "_iou": "sklearn_overseg.features.lateral",
        "_hull_pixel_counts": "sklearn_overseg.features.lateral",
        "_solidities": "sklearn_overseg.features.lateral",
        "_lateral_row": "sklearn_overseg.features.lateral",
        "LateralFeatures": "sklearn_overseg.features.lateral",
        "_check_lateral_table": "sklearn_overseg.features.lateral",
    },
}


def moved_module(module: str, qualname: str) -> str:
    """The module that holds ``module:qualname`` now (``module`` itself if it did not move).

    Parameters
    ----------
    module : str
        A module name, as stored in a saved model.
    qualname : str
        The qualified name of the object in that module.

    Returns
    -------
    module : str
    """
    split = SPLIT_MODULES.get(module)
    if split is not None:
        return split.get(qualname.split(".")[0], MOVED_MODULES[module])
    return MOVED_MODULES.get(module, module)

"""Synthesis: training data made from clean segmentations.

- :mod:`.flaws`: oversegmentation flaws drawn into a clean volume.
- :mod:`.training`: candidate tables labelled by the known flaws.
- :mod:`.stitched_flaws`: the flaws of per-slice segmentation and IoU stitching.
- :mod:`.datasets`: synthetic tissue and the shipped demo volume.

The public names are importable from :mod:`sklearn_overseg`.
"""

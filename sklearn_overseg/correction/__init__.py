"""Correction: merge the judged pairs and fill the gaps between them.

- :mod:`.corrector`: :class:`~.corrector.SegmentationCorrector`, end to end.
- :mod:`.interpolation`: the masks that fill a gap.
- :mod:`.blockwise` and :mod:`.canvas`: volumes larger than memory.

The public names are importable from :mod:`sklearn_overseg`.
"""

"""Screening: which pairs of labels are candidates for a merge.

- :mod:`.candidates`: the candidate table and :class:`~.candidates.PairGeometry`.
- :mod:`.cells`: :class:`~.cells.CellIndex`, per-label boxes and layers.
- :mod:`.axial`: pairs split between z layers (:class:`~.axial.AxialGapScreener`).
- :mod:`.contact`: pairs cut by a tilted surface, and the combined screener.
- :mod:`.lateral`: pieces of one cell that share a layer.

The public names are importable from :mod:`sklearn_overseg`.
"""

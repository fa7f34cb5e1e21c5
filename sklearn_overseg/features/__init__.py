"""Features: numbers per candidate pair, read from the candidate table.

- :mod:`.geo_wasserstein` and :mod:`.overlap_topology`: the paper's features.
- :mod:`.context`, :mod:`.interface`, :mod:`.lateral`: features beyond the paper.
- :mod:`.ot`: the EMD between masks that the Geo-Wasserstein features use.

The public names are importable from :mod:`sklearn_overseg`.
"""

"""Evaluation: scores (:mod:`.metrics`) and figures (:mod:`.plotting`).

The public names are importable from :mod:`sklearn_overseg`.
"""

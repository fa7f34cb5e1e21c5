"""Classification: the estimators that judge candidates.

- :mod:`.classifier`: :class:`~.classifier.OversegMLPClassifier` (torch, loaded lazily).
- :mod:`.pipeline`: the default feature + classifier pipelines.
- :mod:`.dispatch`: :class:`~.dispatch.KindClassifier`, one classifier per pair kind.

The public names are importable from :mod:`sklearn_overseg`.
"""

"""The skorch net behind :class:`~sklearn_overseg.classification.classifier.OversegMLPClassifier`.

A module of its own because it subclasses a skorch class, so defining it imports torch
and skorch; :mod:`sklearn_overseg.classification.classifier` imports it only when it builds a net
(in ``fit`` or on first access to ``net_``), so a loaded model predicts without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from skorch import NeuralNetBinaryClassifier
from skorch.utils import to_tensor

__all__ = ["WeightedBinaryNet"]


class WeightedBinaryNet(NeuralNetBinaryClassifier):
    """skorch binary net whose loss weighs each row by its ``sample_weight``.

    Weighted fits get ``X`` as ``{"X": features, "sample_weight": weights}`` (skorch
    slices dicts into batches row by row) and a criterion with ``reduction="none"``; the
    module only ever sees the features. Unweighted fits take the plain path unchanged,
    so their results are bit-identical to a plain :class:`NeuralNetBinaryClassifier`.
    """

    def infer(self, x: Any, **fit_params: Any) -> torch.Tensor:
        """Run the module on the features only (``x["X"]`` when ``x`` carries weights)."""
        if isinstance(x, Mapping):
            x = x["X"]
        return super().infer(x, **fit_params)

    def get_loss(
        self, y_pred: torch.Tensor, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        """The weighted mean of the per-row losses when ``X`` carries ``sample_weight``."""
        if not (isinstance(X, Mapping) and "sample_weight" in X):
            return super().get_loss(y_pred, y_true, X=X, training=training)
        loss = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        # Weights are rescaled to mean 1 in fit: a full batch then gives
        # sum(w * loss) / sum(w), the mean loss over the rows repeated w times.
        return (to_tensor(X["sample_weight"], device=self.device) * loss).mean()

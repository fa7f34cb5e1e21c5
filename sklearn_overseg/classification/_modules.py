"""Torch modules used by the estimators.

They live in their own importable module (not inside a function or a test) so that
fitted estimators holding them can be pickled by joblib/loky and rebuilt by
:mod:`sklearn_overseg.io.persistence`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["OversegMLPModule"]


class OversegMLPModule(nn.Module):
    """Feed-forward network of the paper: standardise → (Linear, ReLU, Dropout)* → one logit.

    The feature standardisation is part of the module (two buffers, ``mean`` and
    ``scale``), so the trained network is self-contained: its ``state_dict`` alone
    reproduces the predictions, whatever the scale of the raw features.

    Parameters
    ----------
    n_features : int
        Number of input features.
    hidden_units : sequence of int, default=(128, 64, 32)
        Width of each hidden layer; an empty sequence gives a logistic model.
    dropout : float, default=0.3
        Dropout probability after each hidden ReLU.
    feature_mean : array-like of shape (n_features,), default=None
        Subtracted from the input; zeros when None.
    feature_scale : array-like of shape (n_features,), default=None
        The centred input is divided by it; ones when None.
    """

    def __init__(
        self,
        n_features: int,
        hidden_units: Sequence[int] = (128, 64, 32),
        dropout: float = 0.3,
        feature_mean: np.ndarray | Sequence[float] | None = None,
        feature_scale: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        mean = np.zeros(n_features) if feature_mean is None else feature_mean
        scale = np.ones(n_features) if feature_scale is None else feature_scale
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))
        layers: list[nn.Module] = []
        width = int(n_features)
        for units in hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(units)
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, 1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Return one logit per row, shape ``(n_samples,)``."""
        X = (X - self.mean) / self.scale
        return self.output(self.hidden(X)).squeeze(-1)

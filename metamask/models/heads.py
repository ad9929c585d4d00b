"""Small heads on top of encoder features: MetaMAE's contrastive projector, MLO-MAE's
classifier head, a linear probe."""

from __future__ import annotations

from torch import nn


class Projector(nn.Sequential):
    """MetaMAE's projector: Linear(D, 4D) -> BatchNorm -> ReLU -> Linear(4D, 128), no biases."""

    def __init__(self, width: int, hidden_mult: int = 4, out_dim: int = 128) -> None:
        super().__init__(
            nn.Linear(width, hidden_mult * width, bias=False),
            nn.BatchNorm1d(hidden_mult * width),
            nn.ReLU(),
            nn.Linear(hidden_mult * width, out_dim, bias=False),
        )


class ClassifierHead(nn.Sequential):
    """The published MLO-MAE head: LayerNorm(D) -> Dropout -> Linear(D, K)."""

    def __init__(self, width: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__(
            nn.LayerNorm(width, eps=1e-6), nn.Dropout(dropout), nn.Linear(width, num_classes)
        )


def linear_head(width: int, num_classes: int) -> nn.Linear:
    """A linear layer to the task's outputs: K logits, or 1 for binary and regression tasks."""
    return nn.Linear(width, num_classes if num_classes > 2 else 1)

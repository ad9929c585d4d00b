"""The exact ``unrolled`` estimator: backpropagate through the lower's optimizer steps.

Within the lower's unroll window of K steps, ``w_K = Phi(w_0, theta)`` is the composition of
its optimizer's updates (SGD/Adam/AdamW, :mod:`metamask.hypergrad.diffopt`), recorded by a
node that keeps its trajectory (a :class:`~metamask.hypergrad.protocol.TrajectoryNode`, as
:class:`~metamask.nodes.differentiable.DifferentiableNode` is). The estimator returns
``(d w_K / d theta)^T v`` by one reverse pass through that trajectory: exact for the unrolled
objective ``F(w_K(theta))`` (with ``w_0`` held fixed), whatever the lower's curvature, and
unbiased by how far the lower is from its optimum. Cost: the K steps keep their graphs
(memory grows linearly in K); the backward pass costs about as much as the K forward steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from metamask.errors import ConfigError
from metamask.hypergrad.autodiff import Tensors, grad_or_zeros
from metamask.hypergrad.protocol import HypergradNode, TrajectoryNode
from metamask.hypergrad.registry import NoOptions, register_estimator


@register_estimator(
    "unrolled",
    NoOptions,
    "exact: reverse-mode through the lower's optimizer steps in its unroll window",
    needs_trajectory=True,
    exact=True,  # for the unrolled objective, which is what it differentiates
)
def unrolled(
    vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: Any
) -> Tensors:
    """``(d w_K / d theta)^T v`` through the lower's kept trajectory.

    Raises:
        ConfigError: the lower node keeps no trajectory (not a :class:`TrajectoryNode`, as
            ``metamask.nodes.differentiable.DifferentiableNode`` is).
        RuntimeError: a parameter the lower's loss read was changed in place before the
            upper consumed the trajectory (a node below it stepped within its window).
    """
    if not isinstance(lower, TrajectoryNode):
        raise ConfigError(
            f"node '{lower.name}': estimator 'unrolled' differentiates through the node's "
            f"optimizer steps, which {type(lower).__name__} does not record; derive it from "
            "metamask.nodes.differentiable.DifferentiableNode or choose another estimator"
        )
    weights = lower.unrolled_parameters()
    try:
        return grad_or_zeros(weights, upper.trainable_parameters(), [v.detach() for v in vector])
    except RuntimeError as exc:
        if "modified by an inplace operation" not in str(exc):
            raise
        raise RuntimeError(
            f"node '{lower.name}': its unrolled trajectory read a parameter that was updated "
            "in place before node "
            f"'{upper.name}' stepped (a node below '{lower.name}' stepped inside its unroll "
            f"window); use unroll_steps 1 on '{lower.name}' or an implicit estimator"
        ) from exc

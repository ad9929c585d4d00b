"""What hypergradient estimators need from a graph node, as two typed protocols.

The estimators of :mod:`metamask.hypergrad` never import the node classes: they are typed on
:class:`HypergradNode`, the handful of members they read (and :func:`~metamask.hypergrad.
registry.use_estimator` writes). Every :class:`metamask.nodes.base.Node` satisfies it. The
``unrolled`` estimator also needs the lower node's kept trajectory; it checks
``isinstance(lower, TrajectoryNode)`` (as :class:`metamask.nodes.differentiable.
DifferentiableNode` is) instead of naming a node class.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


class HypergradNode(Protocol):
    """A node as the estimators see it: parameters, latest batch, loss, estimator choice."""

    #: the registered estimator that passes gradients through this node (set by use_estimator)
    estimator: str
    #: that estimator's options (an instance of its options dataclass), or None for defaults
    estimator_options: Any

    @property
    def name(self) -> str:
        """The node's name, for error messages."""
        ...

    @property
    def module(self) -> nn.Module:
        """The module that holds every trainable parameter (functional evaluation swaps them)."""
        ...

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The node's optimizer (``sama`` reads its Adam state and hyper-parameters)."""
        ...

    @property
    def cur_batch(self) -> Any:
        """The batch of the node's latest step: the estimators evaluate its loss on it."""
        ...

    @property
    def applied_grads(self) -> list[torch.Tensor] | None:
        """The gradients the last optimizer step applied, kept when the estimator reads them."""
        ...

    @property
    def applied_lrs(self) -> list[float] | None:
        """The learning rate the last optimizer step applied to each trainable parameter,
        kept with :attr:`applied_grads` (before the scheduler moved it on)."""
        ...

    @property
    def hypergradient_in_graph(self) -> bool:
        """True when the gradient through this node's solution already lives in autograd."""
        ...

    @property
    def shares_upstream_forward(self) -> bool:
        """True when every re-evaluation of the loss reads the same upstream output tensor."""
        ...

    def trainable_parameters(self) -> list[torch.Tensor]:
        """The parameters the node optimizes (``w`` of a lower, ``theta`` of an upper)."""
        ...

    def training_step_exec(self, batch: Any) -> Any:
        """The node's training loss on ``batch``: a tensor, or a dict with ``"loss"``."""
        ...


@runtime_checkable
class TrajectoryNode(Protocol):
    """A node that keeps its unroll window's trajectory (what ``unrolled`` differentiates)."""

    def unrolled_parameters(self) -> list[torch.Tensor]:
        """``w_K``: the window's last parameters as functions of what the steps read."""
        ...

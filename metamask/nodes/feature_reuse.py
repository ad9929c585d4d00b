"""Reuse one forward pass across many evaluations of a loss at the same upstream parameters.

A node's loss is often re-evaluated at other values of its *own* parameters while the
parameters upstream of it stay put: darts' two finite-difference evaluations, neumann's and
cg's Hessian products. When the node's input features depend only on the upstream
parameters (MLO-MAE's head on the encoder's features), the upstream forward is the same each
time. :class:`FeatureReuse` runs it once per (batch, upstream state) and keeps its autograd
graph; every evaluation reads the kept features, and a gradient that reaches the upstream
parameters runs one backward through the kept graph (``retain_graph``), instead of a new
forward and a backward each time. Every evaluation reads the same output tensor, so one
backward of several evaluations' summed losses (darts' difference, see
:attr:`metamask.nodes.base.Node.shares_upstream_forward`) walks the kept graph only once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class _Kept:
    """Features of one batch with their autograd graph, and what they were computed from."""

    x: torch.Tensor  # the batch's inputs (by identity)
    params: Sequence[torch.Tensor]  # the encoder parameters read, as found at the time
    versions: list[int]  # their version counters then (an in-place update bumps them)
    value: torch.Tensor  # (B, D) features, graph kept
    output: torch.Tensor | None = None  # what every evaluation reads (one autograd node)


class _KeptFeatures(torch.autograd.Function):
    """Forward: kept features. Backward: through their kept graph, which stays for reuse."""

    @staticmethod
    def forward(ctx: Any, kept: _Kept, *params: torch.Tensor) -> torch.Tensor:
        ctx.kept = kept
        return kept.value.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        kept: _Kept = ctx.kept
        grads = torch.autograd.grad(
            kept.value,
            kept.params,
            grad,
            retain_graph=True,  # the next evaluation walks it again
            create_graph=torch.is_grad_enabled(),  # differentiable when the caller asks
            allow_unused=True,
        )
        return (None, *grads)


class FeatureReuse:
    """The encoder features of the head's current batch, computed once per encoder state.

    The head's loss is evaluated many times at the same encoder parameters and batch: in the
    node's step, then by the estimator of the ``head -> pretrain`` edge (darts' two
    finite-difference evaluations, neumann's and cg's Hessian products, all at other head
    parameters). The encoder's forward is the same each time, so it runs once; every
    evaluation reads the kept features, and a gradient that reaches the encoder runs one
    backward through the kept graph. The kept graph is only ever walked with
    ``retain_graph`` and is dropped by :meth:`clear` (the mask node calls it after its step)
    or replaced at the next batch. Any change of the parameters (an optimizer step bumps
    their version counters; a functional call swaps the tensors) or of the batch recomputes.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self._kept: _Kept | None = None

    def features(self, x: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``compute()`` for batch ``x``, or the kept result when nothing it read changed."""
        params = [p for m in self.modules for p in m.parameters() if p.requires_grad]
        kept = self._kept
        if not (
            kept is not None
            and kept.x is x
            and len(kept.params) == len(params)
            and all(a is b for a, b in zip(kept.params, params, strict=True))
            and kept.versions == [p._version for p in params]
        ):
            value = compute()
            if not (torch.is_grad_enabled() and value.requires_grad):
                return value  # nothing to keep
            kept = _Kept(x, params, [p._version for p in params], value)
            self.clear()
            self._kept = kept
        if kept.output is None:
            kept.output = _KeptFeatures.apply(kept, *kept.params)
        return kept.output

    def clear(self) -> None:
        """Drop the kept features and their graph (their memory).

        The kept output's autograd node refers back to the kept record (a reference cycle
        that only the garbage collector would break), so the link is cut here: the encoder's
        activations are freed at once, not at the next collection.
        """
        if self._kept is not None:
            self._kept.output = None
        self._kept = None

"""A node of your own: a module, a loss, a dataset (``GraphBuilder.node(module=, loss=, data=)``).

The loss is a plain function of a batch, ``loss(batch) -> tensor | {"loss": tensor, ...}``,
that reads the module (and any other node's module, e.g. the shared encoder) through the
objects it closes over. Estimators re-evaluate it at other parameter values of the module
(``torch.func.functional_call`` swaps them), so it must read the module's parameters through
the module itself, not through tensors captured beforehand. The node derives from
:class:`~metamask.nodes.differentiable.DifferentiableNode`, so every registered estimator,
``unrolled`` included, can differentiate through it; and it can serve as the head below a
``mask`` node (:meth:`heldout_loss` is the same loss on the mask node's batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from metamask.config import NodeSpec
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.registry import NodeBuilder
from metamask.sampling import EmptyBatches

#: a custom node's loss: a batch -> the loss, or a dict with "loss" and any terms to log
CustomLoss = Callable[[Any], "torch.Tensor | dict[str, torch.Tensor]"]


class CustomNode(DifferentiableNode):
    """A Betty problem whose training step is the user's loss on its batch."""

    def __init__(self, name: str, module: nn.Module, loss: CustomLoss, wiring: Wiring) -> None:
        super().__init__(name, module, **wiring.kwargs())
        self.loss = loss

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        out = self.loss(batch)
        return out if isinstance(out, dict) else {"loss": out}

    def heldout_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """The same loss on another split's batch (what a ``mask`` node above minimises)."""
        return self.training_step(batch)

    def release(self) -> None:
        """Nothing kept between evaluations (see ``Head.release``)."""


def custom_builder(module: nn.Module, loss: CustomLoss, data: Dataset | None) -> NodeBuilder:
    """A node builder for :class:`CustomNode` (what ``GraphBuilder.node(module=...)`` registers
    for that one node): the module on the run's device, its optimizer and its estimator. With
    ``data`` None the node reads no data: every batch its loss receives is ``()``."""

    def build(ctx: BuildContext, name: str, spec: NodeSpec) -> CustomNode:
        module.to(ctx.device)
        if data is None:
            wiring = ctx.wire(name, spec, module, reads_data=False)
            wiring = dataclasses.replace(wiring, loader=EmptyBatches())
        else:
            wiring = ctx.wire(name, spec, module, data)
        return CustomNode(name, module, loss, wiring)

    return build

"""Nodes whose optimizer steps can be differentiated through (the ``unrolled`` estimator).

A :class:`DifferentiableNode` behaves exactly like :class:`~metamask.nodes.base.Node` unless
its estimator needs a trajectory (``unrolled``). Then, within each unroll window (the
``unroll_steps`` local steps between two steps of its upper nodes), it runs its steps
functionally:

    w_0 = current parameters (detached);  for k < K:
        L_k = training_step(batch_k) with the module's parameters replaced by w_k
              (torch.func.functional_call)
        g_k = dL_k/dw_k (create_graph)  + indirect terms from its own lowers (detached)
        w_{k+1}, state_{k+1} = the node optimizer's rule (metamask.hypergrad.diffopt)

keeping ``w_K`` as a differentiable function of every parameter its loss reads (the upper
nodes'). After each step the module's parameters and the torch optimizer's state are set to
the new values (detached), so the rest of the graph sees an ordinary node, and training
continues with the same optimizer when the estimator changes. The ``unrolled`` estimator
then pulls ``v`` back through the kept trajectory: ``(d w_K / d theta)^T v``.

To make a node type support ``unrolled``, derive it from ``DifferentiableNode`` instead of
``Node``; nothing else changes. A subclass that defines ``on_inner_loop_start`` must call
``super().on_inner_loop_start()``.

Limits (each raises an error naming the node): the optimizer must be SGD, Adam or AdamW
without ``amsgrad``/``maximize``; gradient accumulation must be 1; every trainable
parameter must live in ``node.module``. The trajectory's graph (K steps of activations)
stays in memory until the next window starts.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from metamask.errors import ConfigError, NonFiniteError
from metamask.hypergrad.autodiff import TrainingStep, loss_of, trainable_names
from metamask.hypergrad.diffopt import (
    DiffOptState,
    check_supported,
    differentiable_step,
    initial_state,
    write_back,
)
from metamask.hypergrad.paths import path_gradient
from metamask.hypergrad.registry import get_estimator
from metamask.nodes.base import Node, add_lists


class DifferentiableNode(Node):
    """A node that can keep its unroll window's trajectory for exact unrolled hypergradients."""

    _weights: list[torch.Tensor] | None = None  # w_k of the current window (graph kept)
    _opt_state: DiffOptState | None = None

    @property
    def unrolls(self) -> bool:
        """True when this node's estimator differentiates through its steps."""
        return get_estimator(self.estimator).needs_trajectory

    def unrolled_parameters(self) -> list[torch.Tensor]:
        """``w_K``: the window's last parameters as functions of what the steps read.

        Raises:
            RuntimeError: the node has not stepped in differentiable mode in this window.
        """
        if self._weights is None:
            raise RuntimeError(
                f"node '{self.name}' has no unrolled trajectory: it has not stepped since its "
                "window started, or its estimator does not unroll"
            )
        return self._weights

    def reset_trajectory(self) -> None:
        """Drop the kept trajectory (and its graph); the next step starts a new window."""
        self._weights = None
        self._opt_state = None

    def on_inner_loop_start(self) -> None:
        """Betty's hook at the first step of each unroll window: start a new trajectory."""
        self.reset_trajectory()

    def descend(self, batch: Any = None) -> dict[str, float]:
        """Betty's step, or the functional step when the estimator unrolls."""
        if not self.unrolls:
            self.reset_trajectory()
            result: dict[str, float] = super().descend(batch)
            return result
        if batch is None:
            self.cur_batch = self.get_batch()
            batch = self.cur_batch
        return self._differentiable_step(batch)

    # -- the functional step ---------------------------------------------------------------------

    def _differentiable_step(self, batch: Any) -> dict[str, float]:
        if self.gas != 1:
            raise ConfigError(
                f"node '{self.name}': the unrolled estimator needs gradient_accumulation 1"
            )
        assert self.optimizer is not None, f"node '{self.name}' has no optimizer"
        check_supported(self.optimizer, self.name)
        params = self.trainable_parameters()
        if self._weights is None:
            self._weights = [p.detach().clone().requires_grad_(True) for p in params]
            self._opt_state = initial_state(self.optimizer, params)
        assert self._opt_state is not None
        names = trainable_names(self)
        replaced = {f"module.{n}": w for n, w in zip(names, self._weights, strict=True)}
        out = torch.func.functional_call(TrainingStep(self), replaced, (batch,))
        terms = out if isinstance(out, dict) else {"loss": out}
        metrics = self.record_metrics(terms)
        loss = loss_of(out)
        grads = torch.autograd.grad(loss, self._weights, create_graph=True, allow_unused=True)
        total = [
            torch.zeros_like(w) if g is None else g
            for g, w in zip(grads, self._weights, strict=True)
        ]
        explicit = [path for path in self._paths if not path[1].hypergradient_in_graph]
        composed: list[torch.Tensor] | None = None
        for path in explicit:  # this node's own lowers: their terms enter detached
            indirect = path_gradient(loss, path, retain_graph=True)
            total = [t + i.detach() for t, i in zip(total, indirect, strict=True)]
            composed = indirect if composed is None else add_lists(composed, indirect)
        if composed is not None:
            self.keep_hypergradient(composed)
        self._check_finite(total)
        self._weights, self._opt_state = differentiable_step(
            self.optimizer, params, self._weights, total, self._opt_state
        )
        with torch.no_grad():
            for param, w in zip(params, self._weights, strict=True):
                param.copy_(w)
        write_back(self.optimizer, params, self._opt_state)
        return metrics

    def _check_finite(self, grads: list[torch.Tensor]) -> None:
        if not grads:
            return
        norm = float(torch.stack([g.detach().double().pow(2).sum() for g in grads]).sum().sqrt())
        if not math.isfinite(norm):
            raise NonFiniteError(
                f"node '{self.name}', local step {self._count}: unrolled gradient is not finite"
            )
        self.last_metrics["grad_norm"] = norm


def check_estimator_support(node: Node) -> None:
    """Raise ConfigError, naming the node, if its estimator needs what the node cannot give.

    Call it when a graph is built, so that ``hypergradient: {type: unrolled}`` on a node type
    that does not record trajectories fails before training rather than at the first upper
    step.
    """
    estimator = get_estimator(node.estimator)
    supported = node.supported_estimators
    if supported is not None and estimator.name not in supported:
        raise ConfigError(
            f"node '{node.name}': {type(node).__name__} cannot pass gradients on with estimator "
            f"'{estimator.name}'; it supports {sorted(supported)}"
        )
    if estimator.needs_trajectory and not isinstance(node, DifferentiableNode):
        raise ConfigError(
            f"node '{node.name}': estimator '{estimator.name}' differentiates through the "
            f"node's optimizer steps, which {type(node).__name__} does not record (its class "
            "must derive from metamask.nodes.differentiable.DifferentiableNode)"
        )

"""The total Hessian of a node whose loss reads its own lowers' responses (nested shapes).

A node ``n`` with lowers ``c`` of its own (``u2l {n: [c, ...]}``) trains on
``l(w_n, theta) = L_n(w_n, c*(w_n, ...), theta)``. The implicit function theorem for ``n``'s
response to an upper ``theta`` needs the derivatives of ``l``, not of ``L_n`` with ``c`` held
fixed (Betty's convention, wrong here). With ``U_{c,x} = d c*/d x`` (each from ``c``'s own
estimator: :attr:`~metamask.hypergrad.registry.Estimator.fn` gives ``U^T y``,
:attr:`~metamask.hypergrad.registry.Estimator.jvp` gives ``U t``), the second derivatives of
``l`` are those of ``L_n`` pulled back by the tangent map ``T: (dw, dtheta) -> (dw,
U_{c,n} dw + U_{c,theta} dtheta, dtheta)``:

    H_total x          = y_n + sum_c U_{c,n}^T y_c
    (d2l/dtheta dw) x  = y_theta + sum_c U_{c,theta}^T y_c
    with (y_n, y_c, y_theta) = K (x, U_{c,n} x, 0),   K the joint Hessian of L_n

and the forward mixed product ``(d2l/dw dtheta) t`` is the ``n`` part of the same pull-back of
``K (0, U_{c,theta} t, t)``. ``K`` times a vector is one double backward through ``L_n``
(:class:`JointHessian`); each ``U`` product is one call of that lower's estimator (a linear
solve of its own, total again if it has lowers: the recursion ends at the leaves). The term
with the second derivative of ``c*`` (``(dU/dw x)^T dL_n/dc``) is left out: it vanishes where
``L_n`` is stationary in ``c`` or ``c*`` is affine (quadratics), and is the one approximation
of a nested node's implicit estimator (docs/hypergradients.md).

Cost of one total HVP: one joint HVP of ``L_n`` plus, per lower ``c``, one forward and one
backward response of ``c`` (two solves of ``c``'s system with ``c``'s estimator), against one
HVP for the partial Hessian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metamask.errors import ConfigError
from metamask.hypergrad.autodiff import (
    Tensors,
    grad_or_zeros,
    hvp,
    lower_gradient,
    mixed_vjp,
    node_loss,
    zeros_for_none,
)
from metamask.hypergrad.protocol import HypergradNode
from metamask.hypergrad.registry import get_estimator

Operator = Callable[[Sequence[torch.Tensor]], Tensors]


def nested_lowers(node: HypergradNode) -> list[HypergradNode]:
    """The lowers whose responses ``node``'s loss reads (empty: Betty's partial Hessian is
    the total one, or the node opted in to ``approximate``)."""
    return list(getattr(node, "nested_lowers", ()) or ())


def _options(node: HypergradNode) -> Any:
    estimator = get_estimator(node.estimator)
    options = node.estimator_options
    return estimator.default_options() if options is None else options


def response_vjp(
    lower: HypergradNode, upper: HypergradNode, vector: Sequence[torch.Tensor]
) -> Tensors:
    """``U_{lower,upper}^T vector`` by ``lower``'s estimator (its ordinary job)."""
    estimator = get_estimator(lower.estimator)
    return estimator.fn(vector, lower, upper, _options(lower))


def response_jvp(
    lower: HypergradNode, upper: HypergradNode, tangent: Sequence[torch.Tensor]
) -> Tensors:
    """``U_{lower,upper} tangent`` by ``lower``'s estimator's forward twin.

    Raises:
        ConfigError: the estimator has none (the graph builder refuses this shape first).
    """
    estimator = get_estimator(lower.estimator)
    if estimator.jvp is None:
        raise ConfigError(
            f"node '{lower.name}': estimator '{estimator.name}' gives no forward response, "
            f"which the total Hessian of node '{upper.name}' needs"
        )
    return estimator.jvp(tangent, lower, upper, _options(lower))


class JointHessian:
    """``K t``: the Hessian of a node's loss over several parameter groups, times a tangent.

    The loss is evaluated once (the node's latest batch, current parameters) and its gradient
    kept with its graph; each product is one double backward.
    """

    def __init__(self, node: HypergradNode, groups: Sequence[Sequence[torch.Tensor]]) -> None:
        self.flat = [p for group in groups for p in group]
        self.sizes = [len(group) for group in groups]
        loss = node_loss(node)
        grads = torch.autograd.grad(loss, self.flat, create_graph=True, allow_unused=True)
        self.grads = zeros_for_none(grads, self.flat)

    def product(self, tangents: Sequence[Sequence[torch.Tensor]]) -> list[Tensors]:
        flat_t = [t for group in tangents for t in group]
        out = [h.detach() for h in grad_or_zeros(self.grads, self.flat, flat_t)]
        groups, start = [], 0
        for size in self.sizes:
            groups.append(out[start : start + size])
            start += size
        return groups


def _add(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> Tensors:
    return [x + y for x, y in zip(a, b, strict=True)]


def _zeros(params: Sequence[torch.Tensor]) -> Tensors:
    return [torch.zeros_like(p) for p in params]


@dataclass
class TotalOperators:
    """A node's total second-order operators toward one upper (see the module docstring).

    ``matvec(x) = H_total x``; ``project(x) = -(d2l/dtheta dw) x`` (the indirect gradient on
    the upper's parameters from ``x ~ H_total^{-1} v``); ``forward_mixed(t) = (d2l/dw dtheta) t``
    (the right-hand side of the forward response).
    """

    matvec: Operator
    project: Operator
    forward_mixed: Operator


def total_operators(node: HypergradNode, upper: HypergradNode) -> TotalOperators:
    """The total operators of ``node`` toward ``upper``, through ``nested_lowers(node)``."""
    lowers = nested_lowers(node)
    own = node.trainable_parameters()
    theta = upper.trainable_parameters()
    joint = JointHessian(node, [own, *(c.trainable_parameters() for c in lowers), theta])

    def pull_back(
        tangent_own: Sequence[torch.Tensor],
        tangent_lowers: list[Tensors],
        t_theta: Sequence[torch.Tensor],
    ) -> tuple[Tensors, Tensors]:
        ys = joint.product([tangent_own, *tangent_lowers, t_theta])
        y_own, y_lowers, y_theta = ys[0], ys[1:-1], ys[-1]
        for c, y_c in zip(lowers, y_lowers, strict=True):
            y_own = _add(y_own, response_vjp(c, node, y_c))
            if _among(upper, responds_to(c)):
                y_theta = _add(y_theta, response_vjp(c, upper, y_c))
        return y_own, y_theta

    def matvec(x: Sequence[torch.Tensor]) -> Tensors:
        tangents = [response_jvp(c, node, x) for c in lowers]
        return pull_back(x, tangents, _zeros(theta))[0]

    def project(x: Sequence[torch.Tensor]) -> Tensors:
        tangents = [response_jvp(c, node, x) for c in lowers]
        return [-y for y in pull_back(x, tangents, _zeros(theta))[1]]

    def forward_mixed(t: Sequence[torch.Tensor]) -> Tensors:
        tangents = [
            response_jvp(c, upper, t)
            if _among(upper, responds_to(c))
            else _zeros(c.trainable_parameters())
            for c in lowers
        ]
        return pull_back(_zeros(own), tangents, t)[0]

    return TotalOperators(matvec, project, forward_mixed)


def responds_to(node: HypergradNode) -> list[HypergradNode]:
    """The nodes whose parameters ``node``'s response depends on (its uppers in the graph's
    paths: set by the graph builder; empty outside one)."""
    return list(getattr(node, "responds_to", ()) or ())


def _among(node: HypergradNode, nodes: Sequence[HypergradNode]) -> bool:
    return any(other is node for other in nodes)


def plain_operators(lower: HypergradNode, upper: HypergradNode) -> tuple[Operator, Operator]:
    """``(H x, -(d2L/dtheta dw) x)`` on the lower's own loss with its lowers held fixed (the
    two-level operators; the total ones when ``lower`` has no nested lowers)."""
    params = lower.trainable_parameters()
    _, grad_w = lower_gradient(lower)
    upper_params = upper.trainable_parameters()
    return (lambda x: hvp(grad_w, params, x)), (lambda x: mixed_vjp(grad_w, upper_params, x))


def operators(lower: HypergradNode, upper: HypergradNode) -> tuple[Operator, Operator]:
    """``(matvec, project)`` for an implicit estimator: total when ``lower`` has nested lowers,
    else exactly the two-level ones (the same autograd calls as before nested shapes existed)."""
    if nested_lowers(lower):
        ops = total_operators(lower, upper)
        return ops.matvec, ops.project
    return plain_operators(lower, upper)


def forward_response(
    solve: Callable[[Operator, Sequence[torch.Tensor]], Tensors],
    tangent: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
) -> Tensors:
    """``U t = -S (d2l/dw dtheta) t``: an implicit estimator's forward twin, ``S`` its solver
    (``solve(matvec, b) ~ H_total^{-1} b``; ``H`` symmetric, so the same solver as backward)."""
    ops = total_operators(lower, upper)
    rhs = ops.forward_mixed([t.detach() for t in tangent])
    return [-x for x in solve(ops.matvec, rhs)]

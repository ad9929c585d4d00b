"""Betty's four estimators (``darts``, ``sama``, ``neumann``, ``cg``), re-implemented in metamask.

Each returns the indirect gradient ``-(d2L/dtheta dw) x`` with ``x`` an approximation of
``H^{-1} v`` (``H = d2L/dw2`` of the lower loss at the lower's *current* parameters, Betty's
convention), and keeps Betty's option names and defaults (``darts_alpha`` becomes
``darts: {alpha: ...}``, and so on). Differences from betty-ml 0.2.1, all deliberate:

- every autograd call uses ``allow_unused`` (Betty's ``neumann``/``cg`` raise when an upper
  parameter does not reach the lower loss);
- ``cg`` is the textbook conjugate gradient: Betty's uses ``r`` where ``r_new`` is meant in the
  direction update (upstream issue #15) and, with ``alpha != 1``, scales ``H p`` in the step
  size but not in the residual update; both are fixed here (``alpha`` only rescales ``H``);
- the finite differences (``darts``, ``sama``) evaluate the perturbed losses functionally
  (no in-place change of the parameters, so they come back bit for bit) and with the same
  random numbers for ``+eps`` and ``-eps`` (dropout or masks drawn inside the step no longer
  corrupt the difference);
- on a lower node with lowers of its own, ``neumann`` and ``cg`` solve with its *total*
  Hessian (:mod:`metamask.hypergrad.nested`); ``darts`` and ``sama`` cannot (their finite
  difference holds the node's lowers fixed), so the graph builder refuses them there unless
  the node opts in with ``approximate: true`` (then they behave as Betty's).

``reinforce`` is not registered: Betty's is a stub (defined with 3 arguments, called with 4,
body returns None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from metamask.errors import ConfigError
from metamask.hypergrad.autodiff import (
    Tensors,
    common_random_numbers,
    conjugate_gradient,
    grad_or_zeros,
    node_device,
    node_loss,
    norm,
)
from metamask.hypergrad.nested import Operator, forward_response, operators
from metamask.hypergrad.protocol import HypergradNode
from metamask.hypergrad.registry import register_estimator
from metamask.ranges import Count, NonNegative, NonNegativeInt, Positive

# ----------------------------------------------------------------------------------------------
# finite differences: darts and sama
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DartsOptions:
    """Options of ``darts`` (Betty's ``darts_alpha``)."""

    alpha: Positive = 0.01  # perturbation radius R: the step is eps = R / ||v||


@dataclass(frozen=True)
class SamaOptions:
    """Options of ``sama`` (Betty's ``sama_adam_alpha``)."""

    alpha: Positive = 1.0  # perturbation radius R of the preconditioned vector


def central_difference(
    direction: Sequence[torch.Tensor], radius: float, lower: HypergradNode, upper: HypergradNode
) -> Tensors:
    """``-(d2L/dtheta dw) u`` by a central difference of ``dL/dtheta`` along ``u = direction``.

    ``eps = radius / ||u||``; the result is ``(g(w - eps u) - g(w + eps u)) / (2 eps)`` with
    ``g = dL/dtheta``, exact for losses quadratic in ``w`` up to rounding. When the lower's
    evaluations share their upstream forward (``lower.shares_upstream_forward``), the
    difference is taken before the upstream backward: ``d/dtheta [L(w-) - L(w+)] / (2 eps)``
    in one backward, so the shared upstream graph is walked once (the same number up to
    rounding: the gradient is linear in the loss).
    """
    upper_params = upper.trainable_parameters()
    eps = radius / (float(norm(direction)) + 1e-15)
    base = [p.detach() for p in lower.trainable_parameters()]
    merged = lower.shares_upstream_forward
    losses, grads = [], []
    with common_random_numbers(node_device(lower)) as replay:
        for sign in (1.0, -1.0):
            moved = [w + sign * eps * u for w, u in zip(base, direction, strict=True)]
            replay()
            loss = node_loss(lower, moved)
            if merged:
                losses.append(loss)
            else:
                grads.append(grad_or_zeros([loss], upper_params, [torch.ones_like(loss)], False))
    if merged:
        plus, minus = losses
        weight = torch.full_like(plus, 1.0 / (2 * eps))
        return grad_or_zeros([minus, plus], upper_params, [weight, -weight], False)
    plus_grad, minus_grad = grads
    return [(m - p) / (2 * eps) for p, m in zip(plus_grad, minus_grad, strict=True)]


@register_estimator(
    "darts",
    DartsOptions,
    "Betty's darts: H^{-1} replaced by the identity; mixed partials by central difference",
    dense_form=lambda h, v, options: v,  # the first term of the Neumann series (alpha 1)
)
def darts(
    vector: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: DartsOptions,
) -> Tensors:
    """``-(d2L/dtheta dw) v``: the implicit gradient with the inverse Hessian taken as ``I``."""
    return central_difference(vector, options.alpha, lower, upper)


def adam_preconditioner(vector: Sequence[torch.Tensor], lower: HypergradNode) -> Tensors:
    """SAMA's diagonal: ``lr * d(Adam update)/d(gradient)`` at the lower's last step, times v.

    With ``m = b1 m' + (1-b1) g`` and ``s = b2 s' + (1-b2) g^2`` (primes: before the step,
    ``g`` the gradient the step applied), the derivative of ``m / (sqrt(s) + eps)`` in ``g`` is
    ``((1-b1) b2 s' - b1 (1-b2) g m') / (sqrt(s) + eps)^3`` (no bias correction, as Betty).
    ``g`` comes from ``lower.applied_grads`` and ``lr`` from ``lower.applied_lrs``, both
    recorded by the node's optimizer step: the rate that step used, not the optimizer's
    current one, which the lower's scheduler has already moved on when the upper node runs
    this (Betty reads the moved one; at a cosine schedule's last step it is 0, and so was
    the whole hypergradient).
    """
    optimizer = lower.optimizer
    assert optimizer is not None, f"node '{lower.name}' has no optimizer"
    params = lower.trainable_parameters()
    applied = lower.applied_grads
    if applied is None:
        applied = [torch.zeros_like(p) for p in params]
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    lrs = lower.applied_lrs
    if lrs is None:  # no step recorded yet: the optimizer's current rate
        lrs = [float(groups[id(p)]["lr"]) for p in params]
    out = []
    for v, param, g, lr in zip(vector, params, applied, lrs, strict=True):
        group, state = groups[id(param)], optimizer.state.get(param, {})
        b1, b2 = group["betas"]
        m = state.get("exp_avg", torch.zeros_like(v))
        s = state.get("exp_avg_sq", torch.zeros_like(v))
        m_old = (m - (1 - b1) * g) / b1 if b1 != 0 else torch.zeros_like(v)
        s_old = (s - (1 - b2) * g * g) / b2
        scale = ((1 - b1) * b2 * s_old - b1 * (1 - b2) * g * m_old) / (s.sqrt() + group["eps"]) ** 3
        out.append(v * scale * lr)
    return out


@register_estimator(
    "sama",
    SamaOptions,
    "Betty's SAMA: darts on v preconditioned by the lower's Adam step (identity for SGD)",
    reads_applied_grads=True,
    dense_form=lambda h, v, options: v,  # with an SGD lower (D = I), as the contract tests'
)
def sama(
    vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: SamaOptions
) -> Tensors:
    """darts along ``D v``, ``D`` the derivative of the lower's Adam update (SGD: ``D = I``)."""
    kind = type(lower.optimizer).__name__.lower()
    if "adam" in kind:
        vector = adam_preconditioner(vector, lower)
    elif "sgd" not in kind:
        raise ConfigError(
            f"node '{lower.name}': sama preconditions SGD and Adam/AdamW steps only (as Betty); "
            f"its optimizer is {type(lower.optimizer).__name__}"
        )
    return central_difference(vector, options.alpha, lower, upper)


# ----------------------------------------------------------------------------------------------
# second-order: neumann and cg
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeumannOptions:
    """Options of ``neumann`` (Betty's ``neumann_iterations`` / ``neumann_alpha``).

    Betty's defaults are kept (one iteration, ``alpha`` 1: ``x = 2v - Hv``): the series is
    declared approximate, and no ``alpha`` is safe on every problem (it needs ``alpha <
    2 / lambda_max(H)``). At ``alpha`` 1 on a Hessian with ``lambda_max`` > 2 more terms diverge
    (measured, quadratic with ``lambda_max`` 10: relative error 7.7 after 1 term, 4.7e8 after
    10), so a larger default count would make the default worse; set ``alpha`` from your
    curvature and then ``iterations``.
    """

    iterations: NonNegativeInt = 1  # K: the series keeps K + 1 terms
    alpha: Positive = 1.0  # step size; the series converges only for alpha < 2 / lambda_max(H)


def neumann_solve(
    matvec: Operator, vector: Sequence[torch.Tensor], options: NeumannOptions
) -> Tensors:
    """``x = alpha sum_{k=0..K} (I - alpha H)^k v`` with ``H x`` from ``matvec``."""
    term = [v.detach() for v in vector]
    total = list(term)
    for _ in range(options.iterations):
        h = matvec(term)
        term = [t - options.alpha * ht for t, ht in zip(term, h, strict=True)]
        total = [s + t for s, t in zip(total, term, strict=True)]
    return [options.alpha * s for s in total]


def dense_neumann(h: torch.Tensor, v: torch.Tensor, iterations: int, alpha: float) -> torch.Tensor:
    """``alpha sum_{k=0..K} (I - alpha H)^k v`` on a dense ``H``: the series' stated form."""
    term, total = v, v
    for _ in range(iterations):
        term = term - alpha * (h @ term)
        total = total + term
    return alpha * total


def neumann_jvp(
    tangent: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: NeumannOptions,
) -> Tensors:
    """Forward twin of ``neumann``: ``-S (d2L/dw dtheta) t``, ``S`` the same series."""
    return forward_response(lambda m, b: neumann_solve(m, b, options), tangent, lower, upper)


@register_estimator(
    "neumann",
    NeumannOptions,
    "Betty's Neumann series: H^{-1} ~ alpha sum_k (I - alpha H)^k, K + 1 terms",
    nested=True,
    jvp=neumann_jvp,
    dense_form=lambda h, v, options: dense_neumann(h, v, options.iterations, options.alpha),
)
def neumann(
    vector: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: NeumannOptions,
) -> Tensors:
    """``-(d2L/dtheta dw) x`` with ``x = alpha sum_{k=0..K} (I - alpha H)^k v`` (``H``, ``d2L``:
    total on a node with lowers of its own, :mod:`metamask.hypergrad.nested`)."""
    matvec, project = operators(lower, upper)
    return project(neumann_solve(matvec, vector, options))


@dataclass(frozen=True)
class CGOptions:
    """Options of ``cg`` (Betty's ``cg_iterations`` / ``cg_alpha``), plus an early stop.

    The defaults solve: up to 50 steps, stopping at a relative residual of 1e-10 (as
    ``implicit_cg``'s ``rtol``). Betty's
    default of one step is ``v`` times ``v.v / v.Hv``, darts' direction rescaled (measured on
    a tiny MLO-MAE: cosine 1.0000 with darts); on the closed forms of
    :mod:`metamask.testing.closed_form` the relative error of the hypergradient is 0.09-0.92
    after 1 step, 0.015-0.15 after 10 and 1e-15-7e-6 after 50 (``benchmarks/
    solver_iterations.py``, docs/hypergradients.md). Set ``iterations`` lower to trade accuracy
    for Hessian-vector products.
    """

    iterations: Count = 50  # at most this many CG steps (exact after as many as parameters)
    alpha: Positive = 1.0  # solves (alpha H) y = v, returns alpha y: changes rounding only
    tol: NonNegative = 1e-10  # stop when ||r|| <= tol * ||v|| (0: always take every step)


def cg_solve(matvec: Operator, vector: Sequence[torch.Tensor], options: CGOptions) -> Tensors:
    """``x`` from ``iterations`` CG steps on ``(alpha H) y = v``, ``x = alpha y``."""

    def scaled_hvp(x: Sequence[torch.Tensor]) -> Tensors:
        return [options.alpha * h for h in matvec(x)]

    y = conjugate_gradient(scaled_hvp, vector, options.iterations, options.tol)
    return [options.alpha * yi for yi in y]


def cg_jvp(
    tangent: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: CGOptions
) -> Tensors:
    """Forward twin of ``cg``: ``-x``, ``x`` from CG on ``H x = (d2L/dw dtheta) t``."""
    return forward_response(lambda m, b: cg_solve(m, b, options), tangent, lower, upper)


@register_estimator(
    "cg",
    CGOptions,
    "conjugate gradient on H x = v (Betty's cg with its two update bugs fixed)",
    nested=True,
    jvp=cg_jvp,
    exact=True,  # with its defaults (up to 50 steps, residual 1e-10) on the closed forms
)
def cg(
    vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: CGOptions
) -> Tensors:
    """``-(d2L/dtheta dw) x`` with ``x`` from ``iterations`` CG steps on ``H x = v`` (``H``,
    ``d2L``: total on a node with lowers of its own, :mod:`metamask.hypergrad.nested`)."""
    matvec, project = operators(lower, upper)
    return project(cg_solve(matvec, vector, options))

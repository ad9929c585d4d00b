"""Implicit estimators through TorchOpt's linear solvers, on the lower optimality condition.

At a lower optimum ``dL/dw (w*, theta) = 0``; the implicit function theorem gives
``dw*/dtheta = -H^{-1} d2L/(dw dtheta)``, so the indirect gradient is
``-(d2L/dtheta dw) H^{-1} v``. The linear system ``H x = v`` is solved matrix-free (HVPs by
double backward) with ``torchopt.linear_solve``:

- ``implicit_cg``: :func:`torchopt.linear_solve.solve_cg` (exact after as many iterations as the
  lower has parameters, in exact arithmetic; ``ridge`` solves ``(H + ridge I) x = v``);
- ``implicit_neumann``: :func:`torchopt.linear_solve.solve_inv` with ``ns=True`` (Neumann series,
  the same series as ``neumann``, TorchOpt's defaults: 10 terms).

Like every implicit estimator these are evaluated at the lower's current iterate: they mean
something when the lower is near its optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchopt.linear_solve import solve_cg, solve_inv

from metamask.hypergrad.autodiff import Tensors
from metamask.hypergrad.betty_estimators import dense_neumann
from metamask.hypergrad.nested import Operator, forward_response, operators
from metamask.hypergrad.protocol import HypergradNode
from metamask.hypergrad.registry import register_estimator
from metamask.ranges import Count, NonNegative, NonNegativeInt, Positive


@dataclass(frozen=True)
class ImplicitCGOptions:
    """Options of ``implicit_cg`` (passed to ``torchopt.linear_solve.solve_cg``)."""

    iterations: Count = 50  # maximum CG iterations (as cg's: a solve, see CGOptions)
    rtol: NonNegative = 1e-10  # stop when ||r|| <= max(rtol ||v||, atol)
    atol: NonNegative = 0.0  # absolute residual tolerance
    ridge: NonNegative = 0.0  # solve (H + ridge I) x = v: damps ill-conditioned / indefinite H


@dataclass(frozen=True)
class ImplicitNeumannOptions:
    """Options of ``implicit_neumann`` (passed to ``torchopt.linear_solve.solve_inv(ns=True)``)."""

    iterations: NonNegativeInt = 10  # K: the series keeps K + 1 terms
    alpha: Positive = 1.0  # step size; converges only for alpha < 2 / lambda_max(H)


def _solve(solver: object, matvec: Operator, vector: Sequence[torch.Tensor]) -> Tensors:
    """``x ~ H^{-1} v`` with a TorchOpt solver and ``H x`` from ``matvec``."""

    def as_tuple(x: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(matvec(x))

    assert callable(solver)
    return list(solver(as_tuple, tuple(v.detach() for v in vector)))


def _solve_and_project(
    solver: object, vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode
) -> Tensors:
    """Solve ``H x = v`` with a TorchOpt solver; return ``-(d2L/dtheta dw) x`` (``H``, ``d2L``:
    total on a node with lowers of its own, :mod:`metamask.hypergrad.nested`)."""
    matvec, project = operators(lower, upper)
    return project(_solve(solver, matvec, vector))


def _cg_solver(options: ImplicitCGOptions) -> object:
    return solve_cg(
        maxiter=options.iterations,
        rtol=options.rtol,
        atol=options.atol,
        ridge=options.ridge or None,
    )


def _neumann_solver(options: ImplicitNeumannOptions) -> object:
    return solve_inv(ns=True, maxiter=options.iterations, alpha=options.alpha)


def implicit_cg_jvp(
    tangent: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: ImplicitCGOptions,
) -> Tensors:
    """Forward twin of ``implicit_cg``: ``-(H + ridge I)^{-1} (d2L/dw dtheta) t``."""
    solver = _cg_solver(options)
    return forward_response(lambda m, b: _solve(solver, m, b), tangent, lower, upper)


def implicit_neumann_jvp(
    tangent: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: ImplicitNeumannOptions,
) -> Tensors:
    """Forward twin of ``implicit_neumann``: the series applied to ``(d2L/dw dtheta) t``."""
    solver = _neumann_solver(options)
    return forward_response(lambda m, b: _solve(solver, m, b), tangent, lower, upper)


@register_estimator(
    "implicit_cg",
    ImplicitCGOptions,
    "implicit function theorem, H x = v by TorchOpt's conjugate gradient",
    nested=True,
    jvp=implicit_cg_jvp,
    exact=True,  # with its defaults (up to 50 steps, rtol 1e-10) on the closed forms
)
def implicit_cg(
    vector: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: ImplicitCGOptions,
) -> Tensors:
    """``-(d2L/dtheta dw) (H + ridge I)^{-1} v`` with TorchOpt's CG."""
    return _solve_and_project(_cg_solver(options), vector, lower, upper)


@register_estimator(
    "implicit_neumann",
    ImplicitNeumannOptions,
    "implicit function theorem, H^{-1} v by TorchOpt's Neumann series",
    nested=True,
    jvp=implicit_neumann_jvp,
    dense_form=lambda h, v, options: dense_neumann(h, v, options.iterations, options.alpha),
)
def implicit_neumann(
    vector: Sequence[torch.Tensor],
    lower: HypergradNode,
    upper: HypergradNode,
    options: ImplicitNeumannOptions,
) -> Tensors:
    """``-(d2L/dtheta dw) alpha sum_{k=0..K} (I - alpha H)^k v`` with TorchOpt's series."""
    return _solve_and_project(_neumann_solver(options), vector, lower, upper)

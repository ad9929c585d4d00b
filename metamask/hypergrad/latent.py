"""Latent solvers: how MetaMAE's inner node adapts a latent, and how gradients flow back.

The inner problem is per batch: z* ~ argmin_z L_support(z), started at the amortized latent
z0 = encoder(visible). Each solver returns the adapted z1 as a differentiable function of z0
and of the decoder, so the outer node's autograd carries the exact hypergradient of its
choice: the solver *is* the estimator of this edge.

- ``unrolled``: K steps z <- z - lr * grad, differentiated through (second order; the paper).
- ``first_order``: the same steps with the inner gradient detached (z1 moves with z0 only).
- ``implicit``: K steps on the proximal problem
  ``min_z L_support(z) + ||z - z0||^2 / (2 alpha)``, differentiated by the implicit function
  theorem at the last iterate: for an outer gradient ``g`` it solves ``(H + I/alpha) u = g``
  by conjugate gradient (``H`` the support loss's Hessian in z, by HVPs) and returns ``u/alpha``
  to z0 and ``-(d2L/d phi dz) u`` to the decoder's parameters ``phi``. Memory does not grow
  with K (the inner steps keep no graph); each backward costs ``iterations`` + 1 HVPs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metamask.config import EstimatorSpec, parse_dataclass
from metamask.config.origins import origin_of
from metamask.errors import ConfigError, did_you_mean
from metamask.hypergrad.autodiff import conjugate_gradient
from metamask.hypergrad.registry import ESTIMATORS
from metamask.precision import full_precision
from metamask.ranges import Count, NonNegative, Positive

SupportLoss = Callable[[torch.Tensor], torch.Tensor]
Solve = Callable[[Any, SupportLoss, torch.Tensor], torch.Tensor]


def in_fp32(solve: Solve) -> Solve:
    """A solver's ``__call__`` in fp32 whatever ``train.precision`` is: the support pass, its
    latent gradient and (recorded now, run in the outer backward) its double backward
    (:mod:`metamask.precision`). A bf16 / fp16 amortized latent enters as fp32."""

    @functools.wraps(solve)
    def wrapped(self: Any, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        with full_precision():
            return solve(self, loss_fn, _widened(z0))

    return wrapped


def _widened(t: torch.Tensor) -> torch.Tensor:
    """``t`` as fp32 when autocast left it in bf16 / fp16 (fp32 and fp64 stay as they are)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


@dataclass(frozen=True)
class LatentSolverOptions:
    """Options shared by the gradient-step latent solvers (from the inner node's own keys)."""

    steps: int = 1  # inner gradient steps
    lr: float = 0.1  # inner step size (per sample: the support loss is scaled by the batch)


@dataclass(frozen=True)
class NoSolverOptions:
    """This solver takes no `hypergradient` options beyond its type."""


class LatentSolver:
    """Base: adapt ``z0`` on a support loss.

    ``second_order`` says whether the support loss is differentiated twice (then the decoder's
    attention must use its twice-differentiable math path).
    """

    name = "base"
    second_order = False
    Options: type = NoSolverOptions  # the solver's own `hypergradient:` options

    def __init__(self, options: LatentSolverOptions, extra: Any = None) -> None:
        self.options = options
        self.extra = extra if extra is not None else self.Options()

    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class UnrolledLatent(LatentSolver):
    """Gradient steps kept in the graph: the outer gradient includes second-order terms."""

    name = "unrolled"
    second_order = True

    @in_fp32
    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        z = z0
        for _ in range(self.options.steps):
            (grad,) = torch.autograd.grad(loss_fn(z), z, create_graph=True)
            z = z - self.options.lr * grad
        return z


class FirstOrderLatent(LatentSolver):
    """Gradient steps with the inner gradient detached: dz1/dz0 = I, no second-order terms."""

    name = "first_order"

    @in_fp32
    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        z = z0
        for _ in range(self.options.steps):
            (grad,) = torch.autograd.grad(loss_fn(z), z)
            z = z - self.options.lr * grad.detach()
        return z


@dataclass(frozen=True)
class ImplicitLatentOptions:
    """Options of the ``implicit`` latent solver (keys under the adapt node's `hypergradient`)."""

    iterations: Count = 10  # CG iterations on (H + I/alpha) u = g in the backward pass
    alpha: Positive | None = None  # proximal radius alpha; None: the inner step size (inner_lr)
    tol: NonNegative = 1e-8  # stop CG when ||r|| <= tol * ||g||


class _ImplicitBridge(torch.autograd.Function):
    """Value 0; backward maps ``g`` to ``-(d residual/dz)^{-1} g`` (CG on HVPs at z*).

    ``z_out = z* + bridge(residual)`` then has the value z* and, through ``residual``'s graph
    (the optimality condition as a function of z0 and the decoder), the implicit gradient.
    """

    @staticmethod
    def forward(
        ctx: Any, residual: torch.Tensor, solve: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        ctx.solve = solve
        return torch.zeros_like(residual)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.solve(grad), None


class ImplicitLatent(LatentSolver):
    """Proximal inner problem solved by K steps, differentiated by the implicit function theorem."""

    name = "implicit"
    second_order = True  # HVPs through the decoder: its attention must be twice differentiable
    Options = ImplicitLatentOptions

    @property
    def alpha(self) -> float:
        """The proximal radius: the option, or the inner step size when unset."""
        alpha = self.extra.alpha
        return float(self.options.lr if alpha is None else alpha)

    @in_fp32
    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        alpha, lr = self.alpha, self.options.lr
        anchor = z0.detach()
        z = anchor
        for _ in range(self.options.steps):  # no graph: memory flat in K
            z = z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(z), z)
            z = z.detach() - lr * (grad + (z.detach() - anchor) / alpha)
        z_star = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(z_star), z_star, create_graph=True)
        residual = grad + (z_star - z0) / alpha  # d/dz of the proximal objective at z*

        def solve(g: torch.Tensor) -> torch.Tensor:
            def matvec(p: Sequence[torch.Tensor]) -> list[torch.Tensor]:
                (hp,) = torch.autograd.grad(residual, z_star, grad_outputs=p[0], retain_graph=True)
                return [hp.detach()]

            with full_precision():  # run in the outer backward: CG on fp32 HVPs
                (u,) = conjugate_gradient(
                    matvec, [_widened(g.detach())], self.extra.iterations, self.extra.tol
                )
            return u

        bridge: torch.Tensor = _ImplicitBridge.apply(residual, solve)
        return z_star.detach() + bridge


LATENT_SOLVERS: dict[str, type[LatentSolver]] = {
    UnrolledLatent.name: UnrolledLatent,
    FirstOrderLatent.name: FirstOrderLatent,
    ImplicitLatent.name: ImplicitLatent,
}


def get_latent_solver(
    spec: EstimatorSpec, options: LatentSolverOptions, source: str = "<spec>", where: str = ""
) -> LatentSolver:
    """The latent solver named by ``spec.type``, its own options validated from ``spec.options``."""
    if spec.type not in LATENT_SOLVERS:
        edge = (
            f" ({spec.type!r} is a graph edge's estimator, for hypergradient: on other nodes)"
            if spec.type in ESTIMATORS
            else ""
        )
        raise ConfigError(
            f"{origin_of(source, where + '.type')}: {where}.type: unknown latent solver "
            f"{spec.type!r}"
            f"{did_you_mean(spec.type, LATENT_SOLVERS)}{edge}; MetaMAE's inner node takes one "
            f"of {sorted(LATENT_SOLVERS)}"
        )
    cls = LATENT_SOLVERS[spec.type]
    return cls(options, parse_dataclass(cls.Options, dict(spec.options), source, where))

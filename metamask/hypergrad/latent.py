"""Latent solvers: how MetaMAE's inner node adapts a latent, and how gradients flow back.

The inner problem is per batch: z* ~ argmin_z L_support(z), started at the amortized latent
z0 = encoder(visible). Each solver returns the adapted z1 as a differentiable function of z0
and of the decoder, so the outer node's autograd carries the exact hypergradient of its
choice: the solver *is* the estimator of this edge.

- ``unrolled``: K steps z <- z - lr * grad, differentiated through (second order; the paper).
- ``first_order``: the same steps with the inner gradient detached (z1 moves with z0 only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from metamask.config import EstimatorSpec, parse_dataclass
from metamask.errors import ConfigError, did_you_mean

SupportLoss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LatentSolverOptions:
    """Options shared by the gradient-step latent solvers (from the inner node's own keys)."""

    steps: int = 1  # inner gradient steps
    lr: float = 0.1  # inner step size (per sample: the support loss is scaled by the batch)


@dataclass(frozen=True)
class NoSolverOptions:
    """This solver takes no `hypergradient` options beyond its type."""


class LatentSolver:
    """Base: adapt ``z0`` on a support loss; ``second_order`` says if the loss is differentiated twice."""

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

    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        z = z0
        for _ in range(self.options.steps):
            (grad,) = torch.autograd.grad(loss_fn(z), z, create_graph=True)
            z = z - self.options.lr * grad
        return z


class FirstOrderLatent(LatentSolver):
    """Gradient steps with the inner gradient detached: dz1/dz0 = I, no second-order terms."""

    name = "first_order"

    def __call__(self, loss_fn: SupportLoss, z0: torch.Tensor) -> torch.Tensor:
        z = z0
        for _ in range(self.options.steps):
            (grad,) = torch.autograd.grad(loss_fn(z), z)
            z = z - self.options.lr * grad.detach()
        return z


LATENT_SOLVERS: dict[str, type[LatentSolver]] = {
    UnrolledLatent.name: UnrolledLatent,
    FirstOrderLatent.name: FirstOrderLatent,
}


def get_latent_solver(
    spec: EstimatorSpec, options: LatentSolverOptions, source: str = "<spec>", where: str = ""
) -> LatentSolver:
    """The latent solver named by ``spec.type``, its own options validated from ``spec.options``."""
    if spec.type not in LATENT_SOLVERS:
        raise ConfigError(
            f"{source}: {where}.type: unknown latent solver {spec.type!r}"
            f"{did_you_mean(spec.type, LATENT_SOLVERS)}; MetaMAE's inner node takes one of "
            f"{sorted(LATENT_SOLVERS)}"
        )
    cls = LATENT_SOLVERS[spec.type]
    return cls(options, parse_dataclass(cls.Options, dict(spec.options), source, where))

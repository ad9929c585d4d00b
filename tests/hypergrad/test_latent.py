"""MetaMAE's ``implicit`` latent solver: the implicit-function-theorem gradient, checked.

The inner problem is ``z* = argmin_z L_s(z; phi) + ||z - z0||^2 / (2 alpha)`` on a tiny MLP
"decoder" ``phi`` (float64). With enough inner steps the solver's z_K is z*; its gradient for
an outer loss ``F(z*, phi)`` must equal the dense IFT solution

    dF/dz0 = u / alpha,   dF/dphi = dF/dphi|_direct - (d2 L_s / dphi dz) u,   (H + I/alpha) u = dF/dz

(1e-8 relative), and finite differences of re-solving the inner problem (1e-6). The adapt node
takes it as ``latent_solver: {type: implicit, ...}`` like ``first_order`` and ``unrolled``.
"""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.errors import ConfigError
from metamask.hypergrad.latent import ImplicitLatent, ImplicitLatentOptions, LatentSolverOptions

B, T, D, ALPHA = 2, 3, 4, 0.5


def tiny_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(
        torch.nn.Linear(D, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5)
    ).double()
    target = torch.randn(B, T, 5, dtype=torch.float64)
    weights = torch.randn(B, T, D, dtype=torch.float64)
    return decoder, target, weights


def solver(steps: int = 300) -> ImplicitLatent:
    return ImplicitLatent(
        LatentSolverOptions(steps=steps, lr=0.2),
        ImplicitLatentOptions(iterations=100, alpha=ALPHA, tol=1e-14),
    )


def test_implicit_latent_gradient_matches_the_dense_ift_solution() -> None:
    decoder, target, weights = tiny_problem()

    def support(z: torch.Tensor) -> torch.Tensor:
        return ((decoder(z) - target) ** 2).mean() * B

    def outer(z: torch.Tensor) -> torch.Tensor:
        return (z * weights).sum() + (decoder(z) ** 2).sum()

    z0 = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    params = list(decoder.parameters())
    z = solver()(support, z0)
    got = torch.autograd.grad(outer(z), [z0, *params])

    z_star = z.detach()
    anchor = z0.detach()

    def proximal(flat: torch.Tensor) -> torch.Tensor:
        zz = flat.view(B, T, D)
        return support(zz) + ((zz - anchor) ** 2).sum() / (2 * ALPHA)

    hessian = torch.autograd.functional.hessian(proximal, z_star.reshape(-1))
    z_req = z_star.clone().requires_grad_()
    g = torch.autograd.grad(outer(z_req), z_req)[0].reshape(-1)
    u = torch.linalg.solve(hessian, g)
    assert float((got[0].reshape(-1) - u / ALPHA).norm() / (u / ALPHA).norm()) < 1e-8

    z_req = z_star.clone().requires_grad_()
    grad_s = torch.autograd.grad(support(z_req), z_req, create_graph=True)[0]
    mixed = torch.autograd.grad(grad_s, params, grad_outputs=u.view(B, T, D))
    direct = torch.autograd.grad((decoder(z_star) ** 2).sum(), params)
    for ours, m, d in zip(got[1:], mixed, direct, strict=True):
        reference = d - m
        assert float((ours - reference).norm() / reference.norm()) < 1e-8


def test_implicit_latent_gradient_matches_finite_differences_of_the_solve() -> None:
    decoder, target, weights = tiny_problem()

    def support(z: torch.Tensor) -> torch.Tensor:
        return ((decoder(z) - target) ** 2).mean() * B

    def outer_value(z0: torch.Tensor) -> float:
        z = solver()(support, z0.detach().requires_grad_())
        return float((z.detach() * weights).sum())

    z0 = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    z = solver()(support, z0)
    (grad,) = torch.autograd.grad((z * weights).sum(), z0)
    h = 1e-5
    for index in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        e = torch.zeros_like(z0)
        e[index] = h
        fd = (outer_value(z0 + e) - outer_value(z0 - e)) / (2 * h)
        assert abs(fd - float(grad[index])) < 1e-6 * max(1.0, abs(fd))


def test_one_implicit_step_has_the_unrolled_value() -> None:
    """With alpha = lr and one step, z1 = z0 - lr grad L_s(z0): the same point, another gradient."""
    decoder, target, _ = tiny_problem()

    def support(z: torch.Tensor) -> torch.Tensor:
        return ((decoder(z) - target) ** 2).mean() * B

    z0 = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    implicit = ImplicitLatent(LatentSolverOptions(steps=1, lr=0.3), ImplicitLatentOptions())
    (grad,) = torch.autograd.grad(support(z0), z0)
    assert torch.allclose(implicit(support, z0), z0 - 0.3 * grad, atol=1e-14)
    assert implicit.alpha == 0.3  # alpha defaults to the inner step size


def metamae_graph(latent_solver: dict) -> dict:
    return {
        "nodes": {
            "adapt": {"type": "adapt", "inner_lr": 0.5, "latent_solver": latent_solver},
            "reconstruct": {"type": "reconstruct", "optimizer": {"type": "adamw", "lr": 1e-3}},
        },
        "u2l": {"reconstruct": ["adapt"]},
        "l2u": {"adapt": ["reconstruct"]},
    }


@pytest.mark.parametrize(
    "latent_solver",
    [
        {"type": "first_order"},
        {"type": "unrolled"},
        {"type": "implicit", "iterations": 3, "alpha": 0.2},
    ],
)
def test_adapt_node_takes_every_latent_solver(latent_solver: dict) -> None:
    spec = tiny_spec(metamae_graph(latent_solver))
    graph = build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))
    graph.train()
    before = [p.detach().clone() for p in graph.mae.encoder.parameters()]
    for _ in range(2):
        graph.step()
    assert torch.isfinite(torch.tensor(graph.nodes["reconstruct"].last_metrics["loss"]))
    after = graph.mae.encoder.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_unknown_latent_solver_option_is_named() -> None:
    spec = tiny_spec(metamae_graph({"type": "implicit", "iteratons": 3}))
    with pytest.raises(ConfigError, match=r"iteratons.*did you mean 'iterations'"):
        build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))

"""(c) A three-level chain: Betty's multi-level path composition, estimator by estimator.

Levels (``metamask.testing.closed_form.Chain``, float64): bottom ``a`` minimizes
``a^T Ha a/2 - a^T (Ba c + da)``, middle ``b`` minimizes ``b^T Hb b/2 - b^T (Bb a + db)``, top
``c`` minimizes ``F = ea^T a + ||b - tb||^2/2 + rho ||c||^2/2``. Graph: u2l {top: [bottom]},
l2u {bottom: [middle, top], middle: [top]}; the top's indirect gradient is the sum over
Betty's paths ``[top, middle, bottom, top]`` and ``[top, bottom, top]``:

    dF/dc = rho c + Ba^T Sa (ea + Bb^T Sb (b - tb))

with ``S = H^{-1}`` exactly. Each estimator replaces ``S`` by its own operator (darts: I;
neumann: ``alpha sum_k (I - alpha H)^k``), so each is checked twice: equal to its composed
definition (1e-8), and within the composed bound against the exact value,

    ||est - exact|| <= ||Ba|| ( ||Sa - Ha^{-1}|| ||ea + Bb^T Sb r|| + ||Ha^{-1}|| ||Bb|| ||Sb - Hb^{-1}|| ||r|| )

(``r = b - tb``; add and subtract ``Ba^T Ha^{-1} (ea + Bb^T Sb r)``), where ``||S - H^{-1}||_2``
is ``max |1 - 1/lambda|`` for darts and ``max |(1 - alpha lambda)^{K+1} / lambda|`` for neumann.
Exact estimators (cg / implicit_cg with as many iterations as dimensions; unrolled on the
unrolled objective) are within 1e-4.
"""

from __future__ import annotations

import pytest
import torch

from metamask.testing.closed_form import DTYPE, Chain
from metamask.testing.closed_form_graphs import chain_graph


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def operator(h: torch.Tensor, kind: str, iterations: int = 0, alpha: float = 1.0) -> torch.Tensor:
    """The estimator's stand-in for H^{-1}, as a dense matrix."""
    eye = torch.eye(len(h), dtype=DTYPE)
    if kind == "identity":
        return eye
    if kind == "neumann":
        return alpha * sum(
            torch.linalg.matrix_power(eye - alpha * h, k) for k in range(iterations + 1)
        )
    return torch.linalg.inv(h)


def composed_bound(chain: Chain, b: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor) -> float:
    spec = torch.linalg.matrix_norm
    r = b - chain.tb
    ia, ib = torch.linalg.inv(chain.ha), torch.linalg.inv(chain.hb)
    outer = spec(sa - ia, 2) * (chain.ea + chain.bb.T @ (sb @ r)).norm()
    inner = spec(ia, 2) * spec(chain.bb, 2) * spec(sb - ib, 2) * r.norm()
    return float(spec(chain.ba, 2) * (outer + inner))


@pytest.mark.parametrize("estimator", ["cg", "implicit_cg"])
def test_chain_exact_with_enough_cg_iterations(estimator: str) -> None:
    chain = Chain.make()
    graph = chain_graph(chain, estimator, iterations=len(chain.ha))
    assert rel(graph.run_top_step(), chain.exact_hypergradient(chain.theta0())) < 1e-4


@pytest.mark.parametrize(
    ("estimator", "kind", "options"),
    [
        ("darts", "identity", {}),
        ("sama", "identity", {}),
        ("neumann", "neumann", {"iterations": 5, "alpha": 0.1}),
        ("implicit_neumann", "neumann", {"iterations": 5, "alpha": 0.1}),
    ],
)
def test_chain_approximate_estimators_compose_and_stay_in_bound(
    estimator: str, kind: str, options: dict
) -> None:
    chain = Chain.make()
    graph = chain_graph(chain, estimator, **options)
    got = graph.run_top_step()
    c, b = chain.theta0(), graph.middle.module.value.detach()
    sa = operator(chain.ha, kind, **options)
    sb = operator(chain.hb, kind, **options)
    assert rel(got, chain.composed(c, b, sa, sb)) < 1e-8
    exact = chain.exact_hypergradient(c)
    assert float((got - exact).norm()) <= composed_bound(chain, b, sa, sb) + 1e-9


def test_chain_first_order_keeps_only_the_direct_term() -> None:
    chain = Chain.make()
    got = chain_graph(chain, "first_order").run_top_step()
    assert torch.allclose(got, chain.rho * chain.theta0(), atol=1e-12)


@pytest.mark.parametrize("bottom_unroll", [1, 3])
def test_chain_unrolled_matches_the_composed_step_jacobians(bottom_unroll: int) -> None:
    """Bottom: K SGD steps, D_a = Ha^{-1} (I - (I - lr Ha)^K) Ba; middle: one step, D_b = lr Bb."""
    chain, lr = Chain.make(), 0.1
    graph = chain_graph(chain, "unrolled", bottom_unroll=bottom_unroll, lr=lr, solve_exactly=False)
    got = graph.run_top_step()
    eye = torch.eye(len(chain.ha), dtype=DTYPE)
    step = torch.linalg.matrix_power(eye - lr * chain.ha, bottom_unroll)
    d_a = torch.linalg.solve(chain.ha, (eye - step) @ chain.ba)
    d_b = lr * chain.bb
    b = graph.middle.module.value.detach()
    expected = chain.rho * chain.theta0() + d_a.T @ (chain.ea + d_b.T @ (b - chain.tb))
    assert rel(got, expected) < 1e-4

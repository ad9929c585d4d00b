"""(d) The nested three-level problem: exact hypergradients through the public graph API.

``metamask.testing.closed_form.Nested`` (float64): ``theta`` tunes ``v``, ``v`` tunes ``u``,
and ``v``'s loss reads ``u*(v)``; graph ``u2l {v: [u], theta: [v, u]}``, ``l2u {u: [v], v:
[theta]}``, built with ``GraphBuilder`` and custom nodes (``nested_graph``). With ``H`` the total
Hessian of ``l(v) = L_v(v, u*(v), theta)``, ``M = d2l/dv dtheta`` (total), ``b = f + U^T (u* -
t)`` (F's total derivative in v) and ``x* = H^{-1} b``, the exact hypergradient is
``rho theta - M^T x*``. An estimator on ``v`` that returns ``rho theta - M^T x_hat`` (``u``
exact) is off by at most ``||M||_2 ||x_hat - x*||`` with ``||x_hat - x*|| <= g ||x*||``:
``g = max_i |1 - alpha lambda_i|^{K+1}`` (Neumann, ``lambda_i`` the eigenvalues of the total
``H``), ``g = 2 sqrt(kappa) q^K``, ``q = (sqrt(kappa) - 1)/(sqrt(kappa) + 1)`` (CG, K steps).
"""

from __future__ import annotations

import math

import pytest
import torch

from metamask.config import GraphSpec, node_spec_from_dict
from metamask.errors import GraphError
from metamask.testing.closed_form import DTYPE, Nested, central_differences
from metamask.testing.closed_form_graphs import nested_graph
from metamask.topology import hypergradient_paths, nested_nodes, silent_u2l_edges


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def problem() -> Nested:
    return Nested.make()


def test_the_exact_formula_matches_central_differences_of_the_nested_objective(
    problem: Nested,
) -> None:
    theta = problem.theta0()
    fd = central_differences(problem.nested_objective, theta)
    assert rel(problem.exact_hypergradient(theta), fd) < 1e-8


def test_the_partial_hypergradient_is_far_off(problem: Nested) -> None:
    """What Betty's paths and partial Hessian give here (75% at coupling 0.5)."""
    theta = problem.theta0()
    assert rel(problem.partial_hypergradient(theta), problem.exact_hypergradient(theta)) > 0.5


# -- paths ---------------------------------------------------------------------------------------

NESTED = GraphSpec(
    nodes=dict.fromkeys(["u", "v", "theta"]),  # type: ignore[arg-type]
    u2l={"v": ["u"], "theta": ["v", "u"]},
    l2u={"u": ["v"], "v": ["theta"]},
)


def test_paths_include_the_dependency_declared_by_a_u2l_edge_alone() -> None:
    assert hypergradient_paths(NESTED) == {
        "v": [["v", "u", "v"]],
        "theta": [["theta", "v", "theta"], ["theta", "u", "v", "theta"]],
    }
    assert nested_nodes(NESTED) == {"v": ["u"]}
    assert silent_u2l_edges(NESTED) == []


@pytest.mark.parametrize(
    ("u2l", "l2u", "paths"),
    [
        (  # MLO-MAE and the three-level chain
            {"mask": ["pretrain"]},
            {"pretrain": ["head", "mask"], "head": ["mask"]},
            {"mask": [["mask", "pretrain", "mask"], ["mask", "head", "pretrain", "mask"]]},
        ),
        (  # metamae+mask
            {"reconstruct": ["adapt"], "mask": ["reconstruct"]},
            {"adapt": ["reconstruct"], "reconstruct": ["head", "mask"], "head": ["mask"]},
            {
                "reconstruct": [["reconstruct", "adapt", "reconstruct"]],
                "mask": [
                    ["mask", "reconstruct", "mask"],
                    ["mask", "head", "reconstruct", "mask"],
                ],
            },
        ),
    ],
)
def test_paths_are_bettys_on_the_shipped_methods(
    u2l: dict[str, list[str]], l2u: dict[str, list[str]], paths: dict[str, list[list[str]]]
) -> None:
    names = sorted({*u2l, *l2u, *(n for v in u2l.values() for n in v)})
    graph = GraphSpec(nodes=dict.fromkeys(names), u2l=u2l, l2u=l2u)  # type: ignore[arg-type]
    assert hypergradient_paths(graph) == paths


# -- exact estimators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("middle", "bottom"),
    [
        ({"type": "cg", "iterations": 4}, {"type": "cg", "iterations": 5}),
        ({"type": "implicit_cg", "iterations": 10}, {"type": "implicit_cg", "iterations": 10}),
        ({"type": "cg", "iterations": 4}, {"type": "implicit_cg", "iterations": 10}),
        ({"type": "implicit_cg", "iterations": 10}, {"type": "cg", "iterations": 5}),
    ],
)
def test_exact_estimators_match_the_closed_form(
    problem: Nested, middle: dict, bottom: dict
) -> None:
    got = nested_graph(problem, middle, bottom).run_top_step()
    assert rel(got, problem.exact_hypergradient(problem.theta0())) < 1e-6


def test_neumann_converges_to_the_closed_form_with_enough_terms(problem: Nested) -> None:
    lam = torch.linalg.eigvalsh(problem.total_hessian())
    alpha = float(1 / lam.max())
    graph = nested_graph(
        problem,
        {"type": "implicit_neumann", "iterations": 400, "alpha": alpha},
        {"type": "cg", "iterations": 5},
    )
    assert rel(graph.run_top_step(), problem.exact_hypergradient(problem.theta0())) < 1e-6


# -- approximate estimators: within the derived bound, and equal to their definition -------------


def solve_quantities(problem: Nested) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    theta = problem.theta0()
    v = problem.solve_v(theta)
    b = problem.f + problem.response().T @ (problem.solve_u(v) - problem.t)
    return problem.total_hessian(), problem.total_mixed(), b


@pytest.mark.parametrize("name", ["neumann", "implicit_neumann"])
def test_neumann_on_the_total_hessian_stays_in_its_bound(problem: Nested, name: str) -> None:
    h, m, b = solve_quantities(problem)
    lam = torch.linalg.eigvalsh(h)
    k, alpha = 10, float(1 / lam.max())
    got = nested_graph(
        problem, {"type": name, "iterations": k, "alpha": alpha}, {"type": "cg", "iterations": 5}
    ).run_top_step()
    theta = problem.theta0()
    eye = torch.eye(len(h), dtype=DTYPE)
    series = alpha * sum(torch.linalg.matrix_power(eye - alpha * h, i) for i in range(k + 1))
    assert rel(got, problem.rho * theta - m.T @ (series @ b)) < 1e-8
    x_star = torch.linalg.solve(h, b)
    g = float((1 - alpha * lam).abs().max()) ** (k + 1)
    bound = float(torch.linalg.matrix_norm(m, 2)) * g * float(x_star.norm())
    exact = problem.exact_hypergradient(theta)
    assert 1e-6 < float((got - exact).norm()) <= bound + 1e-9


def test_cg_with_few_steps_stays_in_its_bound(problem: Nested) -> None:
    h, m, b = solve_quantities(problem)
    lam = torch.linalg.eigvalsh(h)
    kappa = float(lam.max() / lam.min())
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    got = nested_graph(
        problem, {"type": "cg", "iterations": 2}, {"type": "cg", "iterations": 5}
    ).run_top_step()
    exact = problem.exact_hypergradient(problem.theta0())
    x_star = torch.linalg.solve(h, b)
    bound = float(torch.linalg.matrix_norm(m, 2)) * 2 * math.sqrt(kappa) * q**2 * x_star.norm()
    assert 1e-6 < float((got - exact).norm()) <= float(bound) + 1e-9


def test_a_neumann_bottom_enters_the_total_hessian_as_its_own_series(problem: Nested) -> None:
    """u by Neumann: U ~ S C with S = alpha sum (I - alpha A)^k, in v's H, M and b alike."""
    k, alpha = 8, 0.05
    got = nested_graph(
        problem,
        {"type": "cg", "iterations": 4},
        {"type": "neumann", "iterations": k, "alpha": alpha},
    ).run_top_step()
    p = problem
    eye = torch.eye(len(p.a_mat), dtype=DTYPE)
    s = alpha * sum(torch.linalg.matrix_power(eye - alpha * p.a_mat, i) for i in range(k + 1))
    u_hat = s @ p.c
    h = p.p_mat + p.r @ u_hat + u_hat.T @ p.r.T + u_hat.T @ p.q @ u_hat
    m = -(p.d_mat + u_hat.T @ p.q @ p.e_mat)
    theta = p.theta0()
    b = p.f + u_hat.T @ (p.solve_u(p.solve_v(theta)) - p.t)
    assert rel(got, p.rho * theta - m.T @ torch.linalg.solve(h, b)) < 1e-8


@pytest.mark.parametrize(
    ("middle", "inverse"), [("darts", "identity"), ({"type": "cg", "iterations": 4}, "partial")]
)
def test_approximate_opt_in_holds_the_lowers_fixed(
    problem: Nested, middle: object, inverse: str
) -> None:
    """approximate: true: v's estimator on its partial Hessian P and partial mixed -D (Betty's
    behaviour); the paths stay complete. darts also uses S = I for u's response (U ~ C)."""
    p, theta = problem, problem.theta0()
    bottom = middle if inverse == "identity" else {"type": "cg", "iterations": 5}
    got = nested_graph(p, middle, bottom, approximate=True).run_top_step()  # type: ignore[arg-type]
    if inverse == "identity":
        b = p.f + p.c.T @ (p.solve_u(p.solve_v(theta)) - p.t)
        expected = p.rho * theta + p.d_mat.T @ b
    else:
        b = p.f + p.response().T @ (p.solve_u(p.solve_v(theta)) - p.t)
        expected = p.rho * theta + p.d_mat.T @ torch.linalg.solve(p.p_mat, b)
    assert rel(got, expected) < 1e-6


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("middle", "bottom", "message"),
    [
        (
            "darts",
            "cg",
            "<nested>: graph.nodes.v.hypergradient: estimator 'darts' cannot be exact on node "
            "'v' (nested shape: its loss reads the response of its lower(s) ['u']; it holds "
            "those lowers fixed)",
        ),
        ("sama", "cg", "estimator 'sama' cannot be exact on node 'v' (nested shape"),
        (
            "unrolled",
            "cg",
            "estimator 'unrolled' cannot be exact on node 'v' (nested shape: its loss reads the "
            "response of its lower(s) ['u']; it differentiates the engine's step order, not the "
            "nested objective (no nested mode))",
        ),
        (
            "cg",
            "unrolled",
            "graph.nodes.u.hypergradient: estimator 'unrolled' on node 'u' gives no forward "
            "response, which the total Hessian of node 'v' needs (nested shape",
        ),
        ("cg", "darts", "estimator 'darts' on node 'u' gives no forward response"),
    ],
)
def test_build_refuses_what_cannot_be_exact(
    problem: Nested, middle: str, bottom: str, message: str
) -> None:
    with pytest.raises(GraphError) as info:
        nested_graph(problem, middle, bottom)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "approximate: true on 'v'" in text


def test_build_refuses_a_u2l_edge_that_contributes_nothing(problem: Nested) -> None:
    """Without v: [u], u trains on v held fixed: u's response does not depend on theta's
    dependents through any declared edge, so theta: [u] adds zero (Betty ran it silently)."""
    with pytest.raises(GraphError) as info:
        nested_graph(problem, "cg", u2l={"theta": ["v", "u"]})
    assert str(info.value) == (
        "<nested>: graph.u2l.theta: 'theta' differentiates through 'u', but the response of "
        "'u' depends on no node that depends on 'theta' (no path; the edge adds zero): remove "
        "it, or make 'theta' an upper of 'u' (l2u: {u: [theta]}) if the loss of 'u' reads "
        "'theta'"
    )


def test_approximate_is_a_node_key_of_the_spec() -> None:
    spec = node_spec_from_dict({"type": "custom", "approximate": True}, "graph.nodes.v")
    assert spec.approximate is True and "approximate" not in spec.options
    assert node_spec_from_dict({"type": "custom"}, "graph.nodes.v").approximate is False

"""Every estimator against closed-form bilevel problems, through real nodes in a GraphEngine.

Problems (``metamask.testing.closed_form``, float64):
(a) ridge regression, the upper variable is the L2 weight lambda (n = 8 features);
(b) a quadratic lower ``w^T H w / 2 - w^T (B theta + c)`` with a random SPD ``H`` (eigenvalues
    log-spaced in [1, 10]) and a linear upper loss ``a^T w`` (n = p = 8, B = I).

The lower node jumps to its optimum ``w*(theta)`` at each step (``solve_exactly``), so the
implicit estimators are evaluated where the implicit function theorem holds; ``unrolled``
instead takes K plain SGD steps and is compared with the exact gradient of that unrolled
objective (forward recursion of the step Jacobian, no autograd).

Bounds for the approximate estimators. Every implicit-style estimator returns
``direct - J^T x_hat`` with ``x_hat ~ x* = H^{-1} v`` (``v = dF/dw``, ``J = d2L/dw dtheta``), so

    ||estimate - exact|| <= ||J||_2 ||x_hat - x*||      and      ||x_hat - x*|| <= f ||x*||

with f, from the spectrum ``lambda_i`` of ``H`` (all of these matrices commute with H):
- darts / sama with an SGD lower: ``x_hat = v = H x*``, ``f = max_i |lambda_i - 1|``;
- neumann (K iterations, step alpha): ``x_hat - x* = -(I - alpha H)^{K+1} x*``,
  ``f = max_i |1 - alpha lambda_i|^{K+1}``;
- cg (K iterations): ``||x_K - x*|| <= 2 sqrt(kappa) q^K ||x*||``, ``q = (sqrt(kappa)-1) /
  (sqrt(kappa)+1)`` (the energy-norm bound converted to the Euclidean norm);
- first_order: ``x_hat = 0``: the relative error is exactly 1 (no direct term here).
The relative bound is ``||J||_2 f ||x*|| / ||exact||`` (+1e-9 for rounding).
"""

from __future__ import annotations

import math

import pytest
import torch

from metamask.hypergrad import get_estimator
from metamask.testing.closed_form import (
    DTYPE,
    LowRankQuadratic,
    Quadratic,
    Ridge,
    exact_hypergradient,
    initial_lower,
    sgd_unrolled_jacobian,
    unrolled_hypergradient,
)
from metamask.testing.closed_form_graphs import bilevel_graph

PROBLEMS = {"ridge": Ridge.make, "quadratic": Quadratic.make}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def spectrum(problem: Ridge | Quadratic) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eigenvalues of H, x* = H^{-1} v, ||J||_2) at the optimum for theta0."""
    theta = problem.theta0()
    w = problem.solution(theta)
    h = problem.hessian(w, theta)
    v, _ = problem.upper_grads(w, theta)
    return (
        torch.linalg.eigvalsh(h),
        torch.linalg.solve(h, v),
        torch.linalg.matrix_norm(problem.mixed(w, theta), 2),
    )


def relative_bound(problem: Ridge | Quadratic, f: float) -> float:
    _, x_star, j_norm = spectrum(problem)
    exact = exact_hypergradient(problem, problem.theta0())
    return float(j_norm * f * x_star.norm() / exact.norm()) + 1e-9


def run(problem: Ridge | Quadratic, estimator: str, **options: object) -> float:
    graph = bilevel_graph(problem, estimator, **options)
    return rel(graph.run_upper_step(), exact_hypergradient(problem, problem.theta0()))


# -- exact estimators ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("estimator", ["cg", "implicit_cg"])
def test_implicit_cg_with_n_iterations_is_exact(name: str, estimator: str) -> None:
    problem = PROBLEMS[name]()
    assert run(problem, estimator, iterations=problem.sizes[0]) < 1e-4


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_unrolled_matches_the_unrolled_objective_exactly(name: str, steps: int) -> None:
    problem = PROBLEMS[name]()
    graph = bilevel_graph(problem, "unrolled", unroll_steps=steps, lr=0.1, solve_exactly=False)
    got = graph.run_upper_step()
    w0 = initial_lower(problem.sizes[0])
    assert rel(got, unrolled_hypergradient(problem, problem.theta0(), w0, 0.1, steps)) < 1e-4


@pytest.mark.parametrize("name", PROBLEMS)
def test_unrolled_is_exact_again_in_the_next_window(name: str) -> None:
    problem = PROBLEMS[name]()
    graph = bilevel_graph(problem, "unrolled", unroll_steps=2, lr=0.1, solve_exactly=False)
    graph.run_upper_step()
    w0 = graph.lower.module.value.detach().clone()  # the second window starts here
    got = graph.run_upper_step()
    assert rel(got, unrolled_hypergradient(problem, problem.theta0(), w0, 0.1, 2)) < 1e-4


# -- approximate estimators, within derived bounds -----------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("estimator", ["darts", "sama"])
def test_identity_hessian_estimators_within_spectral_bound(name: str, estimator: str) -> None:
    """darts / sama (SGD lower): f = max |lambda_i - 1|."""
    problem = PROBLEMS[name]()
    eig, _, _ = spectrum(problem)
    bound = relative_bound(problem, float((eig - 1).abs().max()))
    assert run(problem, estimator) <= bound


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("estimator", ["neumann", "implicit_neumann"])
@pytest.mark.parametrize("iterations", [1, 10, 50])
def test_neumann_within_series_bound(name: str, estimator: str, iterations: int) -> None:
    """neumann: f = max |1 - alpha lambda_i|^(K+1), with alpha = 1 / lambda_max."""
    problem = PROBLEMS[name]()
    eig, _, _ = spectrum(problem)
    alpha = float(1 / eig.max())
    f = float((1 - alpha * eig).abs().max()) ** (iterations + 1)
    err = run(problem, estimator, iterations=iterations, alpha=alpha)
    assert err <= relative_bound(problem, f)


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("iterations", [1, 2, 4])
def test_cg_within_convergence_bound(name: str, iterations: int) -> None:
    """cg: f = 2 sqrt(kappa) q^K."""
    problem = PROBLEMS[name]()
    eig, _, _ = spectrum(problem)
    kappa = float(eig.max() / eig.min())
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    err = run(problem, "cg", iterations=iterations)
    assert err <= relative_bound(problem, 2 * math.sqrt(kappa) * q**iterations)


@pytest.mark.parametrize("name", PROBLEMS)
def test_first_order_error_is_exactly_one(name: str) -> None:
    assert run(PROBLEMS[name](), "first_order") == pytest.approx(1.0, abs=1e-12)


# -- the estimator functions called directly: each equals its definition -------------------------


def lower_at_optimum(
    problem: Ridge | Quadratic, estimator: str
) -> tuple[object, object, torch.Tensor]:
    graph = bilevel_graph(problem, estimator)
    lower, upper = graph.lower, graph.upper
    theta = upper.module.value.detach()
    with torch.no_grad():
        lower.module.value.copy_(problem.solution(theta))
    lower.cur_batch = ()
    v, _ = problem.upper_grads(lower.module.value.detach(), theta)
    return lower, upper, v


def definition(problem: Ridge | Quadratic, x_hat: torch.Tensor) -> torch.Tensor:
    theta = problem.theta0()
    w = problem.solution(theta)
    return -problem.mixed(w, theta).T @ x_hat


def dense_cg(h: torch.Tensor, v: torch.Tensor, iterations: int) -> torch.Tensor:
    """Textbook CG on a dense matrix: the test's own reference."""
    x, r = torch.zeros_like(v), v.clone()
    p = r.clone()
    for _ in range(iterations):
        step = (r @ r) / (p @ h @ p)
        x = x + step * p
        r_new = r - step * (h @ p)
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
    return x


@pytest.mark.parametrize("name", PROBLEMS)
def test_estimator_functions_equal_their_definitions(name: str) -> None:
    problem = PROBLEMS[name]()
    theta = problem.theta0()
    h = problem.hessian(problem.solution(theta), theta)
    n = len(h)
    alpha, k = 0.05, 7
    cases = {
        "darts": ({}, lambda v: v),
        "sama": ({}, lambda v: v),
        "neumann": (
            {"iterations": k, "alpha": alpha},
            lambda v: (
                alpha
                * sum(
                    torch.linalg.matrix_power(torch.eye(n, dtype=DTYPE) - alpha * h, j) @ v
                    for j in range(k + 1)
                )
            ),
        ),
        "implicit_neumann": (
            {"iterations": k, "alpha": alpha},
            lambda v: (
                alpha
                * sum(
                    torch.linalg.matrix_power(torch.eye(n, dtype=DTYPE) - alpha * h, j) @ v
                    for j in range(k + 1)
                )
            ),
        ),
        "cg": ({"iterations": 3}, lambda v: dense_cg(h, v, 3)),
        "implicit_cg": ({"iterations": n}, lambda v: torch.linalg.solve(h, v)),
    }
    for estimator, (options, x_of) in cases.items():
        lower, upper, v = lower_at_optimum(problem, estimator)
        spec = get_estimator(estimator)
        (got,) = spec.fn([v], lower, upper, spec.options_type(**options))
        assert rel(got, definition(problem, x_of(v))) < 1e-8, estimator


def test_closed_forms_agree_with_each_other() -> None:
    """The matrix-free quadratic's Woodbury solve and the two unrolled closed forms."""
    small = LowRankQuadratic.make(n=12)
    dense_h = torch.diag(small.d) + small.u @ small.u.T
    dense = Quadratic(dense_h, torch.eye(12, dtype=DTYPE), small.c, small.a)
    theta = small.theta0()
    assert rel(exact_hypergradient(small, theta), exact_hypergradient(dense, theta)) < 1e-12
    assert (
        rel(
            unrolled_hypergradient(small, theta, initial_lower(12), 0.05, 4),
            unrolled_hypergradient(dense, theta, initial_lower(12), 0.05, 4),
        )
        < 1e-12
    )
    w, jac = sgd_unrolled_jacobian(dense, theta, initial_lower(12), 0.05, 4)  # forward recursion
    v, _ = dense.upper_grads(w, theta)
    assert rel(jac.T @ v, unrolled_hypergradient(dense, theta, initial_lower(12), 0.05, 4)) < 1e-12
    assert run(small, "implicit_cg", iterations=12) < 1e-4


# -- defaults: cg solves (docs/hypergradients.md, "Defaults") -------------------------------------


@pytest.mark.parametrize("estimator", ["cg", "implicit_cg"])
@pytest.mark.parametrize(
    ("problem", "tolerance"),
    [(Ridge.make(n=100, m=200), 1e-8), (Quadratic.make(n=100, condition=100.0), 1e-5)],
    ids=["ridge-100", "quadratic-100-kappa-100"],
)
def test_cg_with_its_default_options_solves(
    estimator: str, problem: Ridge | Quadratic, tolerance: float
) -> None:
    """Measured: 7.4e-6 at condition 100, 1.1e-15 on the ridge (one step: 0.92 and 0.088)."""
    assert run(problem, estimator) < tolerance
    assert run(problem, estimator, iterations=1) > 0.05  # one step was Betty's default


def test_one_cg_step_is_the_darts_direction_rescaled() -> None:
    """Why one step cannot be the default: x_1 = (v.v / v.Hv) v, the darts vector times a scalar."""
    problem = Quadratic.make(n=8, condition=10.0)
    one_step = bilevel_graph(problem, "cg", iterations=1).run_upper_step()
    darts = bilevel_graph(problem, "darts").run_upper_step()
    theta = problem.theta0()
    w = problem.solution(theta)
    v, _ = problem.upper_grads(w, theta)
    scale = float(v @ v / (v @ problem.hessian(w, theta) @ v))
    assert rel(one_step, scale * darts) < 1e-8

"""Every registered estimator held to its own stated contract, without anyone listing it.

The tests are parametrized over the registry (``estimator_names()``, installed entry points
loaded first), so an estimator someone registers is tested too. Each states its contract when
it registers (:class:`metamask.hypergrad.Estimator`):

- ``exact=True``: with its default options, the hypergradient equals the closed form of
  :mod:`metamask.testing.closed_form` (float64) within 1e-8 on the two-level problems (ridge,
  quadratic at the optimum); an estimator that ``needs_trajectory`` is exact for the unrolled
  objective (K plain SGD steps) instead. On the nested problem, one that declares ``nested``
  must be exact there too.
- ``dense_form=f``: approximate, and stated: with its default options it returns ``-J^T x``,
  ``x = f(H, v, options)`` (darts: ``v``, the first term of the Neumann series) within 1e-8; on
  the nested problem (when it declares ``nested``) with ``H`` the total Hessian.
- neither: it must refuse the problems in one line (a MetamaskError), not run silently.
An estimator without ``nested`` must be refused on the nested shape in one line, naming it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metamask.errors import GraphError, MetamaskError
from metamask.hypergrad import estimator_names, get_estimator
from metamask.hypergrad.registry import load_installed_estimators
from metamask.testing.closed_form import (
    Nested,
    Quadratic,
    Ridge,
    exact_hypergradient,
    initial_lower,
    unrolled_hypergradient,
)
from metamask.testing.closed_form_graphs import bilevel_graph, nested_graph

load_installed_estimators()  # an installed estimator is held to its contract too
NAMES = estimator_names()
PROBLEMS = {"ridge": lambda: Ridge.make(n=8), "quadratic": lambda: Quadratic.make(n=8)}
TOLERANCE = 1e-8
STEPS, LR = 3, 0.1  # the unrolled objective: K SGD steps from a fixed start


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def stated(name: str, problem: Ridge | Quadratic) -> torch.Tensor:
    """``-J^T x`` with the estimator's stated ``x = dense_form(H, v, defaults)`` at the optimum
    (the closed forms' upper losses read only ``w``: no direct term)."""
    estimator = get_estimator(name)
    assert estimator.dense_form is not None
    theta = problem.theta0()
    w = problem.solution(theta)
    v, _ = problem.upper_grads(w, theta)
    x = estimator.dense_form(problem.hessian(w, theta), v, estimator.default_options())
    return -problem.mixed(w, theta).T @ x


def one_line_refusal(run: Any) -> str:
    with pytest.raises(MetamaskError) as info:
        run()
    text = str(info.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("problem_name", PROBLEMS)
@pytest.mark.parametrize("name", NAMES)
def test_two_level_contract(name: str, problem_name: str) -> None:
    estimator = get_estimator(name)
    problem = PROBLEMS[problem_name]()
    if estimator.needs_trajectory:
        assert estimator.exact, f"{name} keeps a trajectory but does not declare exact=True"
        graph = bilevel_graph(problem, name, unroll_steps=STEPS, lr=LR, solve_exactly=False)
        target = unrolled_hypergradient(
            problem, problem.theta0(), initial_lower(problem.sizes[0]), LR, STEPS
        )
        assert rel(graph.run_upper_step(), target) < TOLERANCE
    elif estimator.exact:
        got = bilevel_graph(problem, name).run_upper_step()
        assert rel(got, exact_hypergradient(problem, problem.theta0())) < TOLERANCE
    elif estimator.dense_form is not None:
        got = bilevel_graph(problem, name).run_upper_step()
        expected = stated(name, problem)
        scale = max(float(expected.norm()), 1e-12)  # first_order states zero
        assert float((got - expected).norm()) / scale < TOLERANCE
    else:
        one_line_refusal(lambda: bilevel_graph(problem, name).run_upper_step())


@pytest.fixture(scope="module")
def nested() -> Nested:
    return Nested.make()


def total_quantities(problem: Nested) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total H, total M, b) of the middle node (tests/hypergrad/test_nested.py's notation)."""
    v = problem.solve_v(problem.theta0())
    b = problem.f + problem.response().T @ (problem.solve_u(v) - problem.t)
    return problem.total_hessian(), problem.total_mixed(), b


@pytest.mark.parametrize("name", NAMES)
def test_nested_contract(nested: Nested, name: str) -> None:
    """On the middle node of the nested shape (the lowest node solved by cg, exactly)."""
    estimator = get_estimator(name)
    build = lambda: nested_graph(nested, name, {"type": "cg"})  # noqa: E731
    if not estimator.nested:
        text = one_line_refusal(build)
        assert f"estimator {name!r} cannot be exact on node 'v' (nested shape" in text
        with pytest.raises(GraphError):
            build()
        return
    got = build().run_top_step()
    theta = nested.theta0()
    if estimator.exact:
        assert rel(got, nested.exact_hypergradient(theta)) < TOLERANCE
    elif estimator.dense_form is not None:
        h, m, b = total_quantities(nested)
        x = estimator.dense_form(h, b, estimator.default_options())
        assert rel(got, nested.rho * theta - m.T @ x) < TOLERANCE
    else:
        pytest.fail(f"{name} declares nested=True but neither exact=True nor a dense_form")


def test_the_registry_is_what_is_tested() -> None:
    """The parametrization is the registry's, built-ins included (nobody lists them here)."""
    assert {"first_order", "darts", "sama", "neumann", "cg", "implicit_cg"} <= set(NAMES)
    assert {"implicit_neumann", "unrolled"} <= set(NAMES)

"""Pins the betty-ml 0.2.1 facts metamask's estimators correct (docs/hypergradients.md).

Betty's own functions are run on the same metamask nodes as ours:
- its ``cg`` is wrong (``r`` for ``r_new``; ``alpha`` scaling) and ours is right;
- its ``neumann`` and ``cg`` raise when an upper parameter does not reach the lower loss;
  ours return zeros for it;
- its ``reinforce`` is a stub that raises TypeError when called as Betty calls it; metamask
  does not register it;
- its ``darts`` re-draws dropout between the two evaluations; ours replays the same draws;
- where Betty is right (``darts``, ``sama``, ``neumann``) ours agrees with it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from betty.hypergradient import cg as betty_cg
from betty.hypergradient import darts as betty_darts
from betty.hypergradient import neumann as betty_neumann
from betty.hypergradient import reinforce as betty_reinforce
from betty.hypergradient import sama as betty_sama

from metamask.errors import ConfigError
from metamask.hypergrad import estimator_names, get_estimator
from metamask.nodes.base import Node
from metamask.testing.closed_form import DTYPE, Quadratic, Ridge, exact_hypergradient
from metamask.testing.closed_form_graphs import LowerNode, Value, bilevel_graph


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def at_optimum(problem: Ridge | Quadratic) -> tuple[LowerNode, Any, torch.Tensor]:
    graph = bilevel_graph(problem, "first_order")
    lower, upper = graph.lower, graph.upper
    theta = upper.module.value.detach()
    with torch.no_grad():
        lower.module.value.copy_(problem.solution(theta))
    lower.cur_batch = ()
    v, _ = problem.upper_grads(lower.module.value.detach(), theta)
    return lower, upper, v


def ours(name: str, lower: Node, upper: Any, v: torch.Tensor, **options: Any) -> torch.Tensor:
    spec = get_estimator(name)
    return spec.fn([v], lower, upper, spec.options_type(**options))[0]


@pytest.mark.parametrize("make", [Ridge.make, Quadratic.make])
def test_betty_cg_is_wrong_and_ours_is_exact(make: Any) -> None:
    problem = make()
    n = problem.sizes[0]
    exact = exact_hypergradient(problem, problem.theta0())
    lower, upper, v = at_optimum(problem)
    lower.config.cg_iterations = n
    betty = betty_cg([v], lower, upper, False)[0]
    mine = ours("cg", lower, upper, v, iterations=n)
    assert rel(mine, exact) < 1e-8
    assert rel(betty, exact) > 0.1  # measured: 0.42 (ridge) and 1.22 (quadratic)
    lower.config.cg_alpha = 0.5  # the second bug: step size and residual disagree
    assert rel(betty_cg([v], lower, upper, False)[0], exact) > 1.0
    assert rel(ours("cg", lower, upper, v, iterations=n, alpha=0.5), exact) < 1e-8


def test_betty_neumann_agrees_with_ours_where_both_run() -> None:
    problem = Quadratic.make()
    lower, upper, v = at_optimum(problem)
    lower.config.neumann_iterations, lower.config.neumann_alpha = 12, 0.08
    betty = betty_neumann([v], lower, upper, False)[0]
    assert rel(ours("neumann", lower, upper, v, iterations=12, alpha=0.08), betty) < 1e-12


@pytest.mark.parametrize("make", [Ridge.make, Quadratic.make])
def test_betty_darts_agrees_with_ours_on_deterministic_losses(make: Any) -> None:
    lower, upper, v = at_optimum(make())
    mine = ours("darts", lower, upper, v)
    assert rel(mine, betty_darts([v], lower, upper, False)[0]) < 1e-6


def test_sama_preconditioner_matches_betty_with_an_adam_lower() -> None:
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "sama", solve_exactly=False, optimizer="adam", lr=0.05)
    for _ in range(3):
        graph.run_upper_step()
    lower, upper = graph.lower, graph.upper
    assert lower.applied_grads is not None  # recorded by Node.optimizer_step for sama
    (param,) = lower.trainable_parameters()
    lower.optimizer.state[param]["last_grad"] = lower.applied_grads[0]  # where Betty reads it
    v, _ = problem.upper_grads(param.detach(), upper.module.value.detach())
    mine = ours("sama", lower, upper, v)
    assert rel(mine, betty_sama([v], lower, upper, False)[0]) < 1e-6


def test_sama_preconditions_with_the_learning_rate_its_step_used() -> None:
    """A cosine schedule over the lower's 3 steps: the optimizer's lr after the last step is 0.

    Betty's sama reads the optimizer's lr when the upper steps, after the lower's scheduler
    moved it on: one step late throughout, and 0 (a zero hypergradient) at the schedule's end.
    Ours preconditions with the rate each step applied (``Node.applied_lrs``): it equals
    Betty's run with that rate put back, at every step, and is not zero at the last.
    """
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "sama", solve_exactly=False, optimizer="adam", lr=0.05)
    lower, upper = graph.lower, graph.upper
    lower.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(lower.optimizer, T_max=3)
    (param,) = lower.trainable_parameters()
    group = lower.optimizer.param_groups[0]
    for step in range(3):
        used = 0.05 * (1 + math.cos(math.pi * step / 3)) / 2  # the cosine rate of step `step`
        total = graph.run_upper_step()  # no direct term: the indirect gradient alone
        assert lower.applied_lrs == [pytest.approx(used, rel=1e-12)]
        moved = group["lr"]
        assert moved == pytest.approx(0.05 * (1 + math.cos(math.pi * (step + 1) / 3)) / 2)
        lower.optimizer.state[param]["last_grad"] = lower.applied_grads[0]  # Betty reads it here
        v, _ = problem.upper_grads(param.detach(), upper.module.value.detach())
        group["lr"] = used
        expected = betty_sama([v], lower, upper, False)[0]
        group["lr"] = moved
        if step == 0:  # Adam's first step: no moments before it, so D = 0 (as Betty)
            assert float(total.norm()) == 0.0 == float(expected.norm())
            continue
        assert float(expected.norm()) > 1e-6
        assert rel(total, expected) < 1e-6
    assert group["lr"] == pytest.approx(0.0, abs=1e-15)  # Betty would return exactly zero


class _UpperWithUnused:
    """An upper whose second parameter never reaches the lower loss (MLO-MAE's decoder)."""

    def __init__(self, theta: torch.Tensor) -> None:
        self.theta = theta
        self.unused = torch.nn.Parameter(torch.ones(3, dtype=DTYPE))
        self.name = "upper"

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [self.theta, self.unused]


@pytest.mark.parametrize(("betty_fn", "name"), [(betty_neumann, "neumann"), (betty_cg, "cg")])
def test_betty_raises_on_unused_upper_parameters_and_ours_does_not(
    betty_fn: Any, name: str
) -> None:
    lower, upper, v = at_optimum(Quadratic.make())
    fake = _UpperWithUnused(upper.module.value)
    with pytest.raises(RuntimeError, match="not have been used"):
        betty_fn([v], lower, fake, False)
    spec = get_estimator(name)
    theta_grad, unused_grad = spec.fn([v], lower, fake, spec.options_type())  # type: ignore[arg-type]
    assert torch.equal(unused_grad, torch.zeros(3, dtype=DTYPE))
    assert theta_grad.abs().sum() > 0


def test_betty_reinforce_is_a_stub_and_not_registered() -> None:
    lower, upper, v = at_optimum(Quadratic.make())
    with pytest.raises(TypeError):
        betty_reinforce([v], lower, upper, False)  # Betty's get_grads passes 4 arguments
    assert betty_reinforce([v], lower, upper) is None  # and the body computes nothing
    assert "reinforce" not in estimator_names()
    with pytest.raises(ConfigError, match="'reinforce'"):
        get_estimator("reinforce")


class _DropoutLower(Node):
    """``L = ||w||^2 / 2 - dropout(theta) . w``: darts must be 2 * mask * v, one mask."""

    def __init__(self, theta: Value) -> None:
        module = Value(torch.linspace(1.0, 2.0, 6, dtype=DTYPE))
        super().__init__("lower", module, torch.optim.SGD(module.parameters(), lr=0.1))
        self.theta = theta
        self.cur_batch = ()

    def training_step(self, batch: Any) -> torch.Tensor:
        w = self.module.value
        return 0.5 * w @ w - torch.nn.functional.dropout(self.theta.value, 0.5) @ w


def test_darts_replays_random_draws_where_betty_redraws() -> None:
    theta = Value(torch.ones(6, dtype=DTYPE))
    lower = _DropoutLower(theta)
    upper = _UpperWithUnused(theta.value)
    upper.trainable_parameters = lambda: [theta.value]  # type: ignore[method-assign]
    v = torch.linspace(0.5, 1.0, 6, dtype=DTYPE)
    torch.manual_seed(3)
    mine = ours("darts", lower, upper, v)
    ratio = (mine / v).tolist()  # one mask for both evaluations: each entry is 0 or 2 v_i
    assert all(abs(r) < 1e-6 or abs(r - 2) < 1e-6 for r in ratio), ratio
    torch.manual_seed(3)
    betty = betty_darts([v], lower, upper, False)[0]
    assert float((betty - mine).abs().max()) > 100 * float(v.norm())  # redrawn mask / eps

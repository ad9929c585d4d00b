"""The ``unrolled`` estimator's machinery: differentiable optimizer steps and DifferentiableNode.

- ``differentiable_step`` reproduces ``torch.optim`` SGD / Adam / AdamW step for step (1e-12 in
  float64) and leaves the torch optimizer's state as torch would;
- with an Adam lower, the unrolled hypergradient equals central finite differences of the
  unrolled objective computed by running the real ``torch.optim.Adam`` (h = 1e-6: truncation
  ~h^2, rounding ~1e-16/h, so agreement to 1e-6 relative);
- a node whose estimator does not unroll steps exactly like a plain node;
- the errors name the node and the fix.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from metamask.errors import ConfigError
from metamask.hypergrad import get_estimator, use_estimator
from metamask.hypergrad.diffopt import differentiable_step, initial_state, write_back
from metamask.testing.closed_form import DTYPE, Quadratic, initial_lower
from metamask.testing.closed_form_graphs import bilevel_graph

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "sgd_dampening": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.1),
    "adam_wd": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1, betas=(0.8, 0.9)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_differentiable_step_matches_torch_optim(name: str) -> None:
    problem = Quadratic.make()
    theta = problem.theta0()
    reference = torch.nn.Parameter(initial_lower(8))
    ours = torch.nn.Parameter(initial_lower(8))
    ref_opt, our_opt = OPTIMIZERS[name]([reference]), OPTIMIZERS[name]([ours])
    state = initial_state(our_opt, [ours])
    weight = ours.detach()
    for _ in range(4):
        ref_opt.zero_grad()
        problem.lower_loss(reference, theta).backward()
        ref_opt.step()
        grad = problem.lower_grad(weight, theta)
        (weight,), state = differentiable_step(our_opt, [ours], [weight], [grad], state)
        write_back(our_opt, [ours], state)
        assert torch.allclose(weight, reference.detach(), rtol=0, atol=1e-12)
    for key, value in ref_opt.state[reference].items():
        assert torch.allclose(our_opt.state[ours][key].to(DTYPE), value.to(DTYPE), atol=1e-12), key


def test_a_scheduler_takes_the_functional_step_for_a_step() -> None:
    """torch warns when a scheduler steps before its optimizer did; a run whose lower unrolls
    steps only through ``differentiable_step``, so ``write_back`` must count as the step."""
    problem, theta = Quadratic.make(), Quadratic.make().theta0()
    param = torch.nn.Parameter(initial_lower(8))
    optimizer = torch.optim.AdamW([param], lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    state = initial_state(optimizer, [param])
    _, state = differentiable_step(
        optimizer, [param], [param.detach()], [problem.lower_grad(param.detach(), theta)], state
    )
    write_back(optimizer, [param], state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def _adam_unrolled_objective(
    problem: Quadratic, theta: torch.Tensor, steps: int, lr: float
) -> float:
    w = torch.nn.Parameter(initial_lower(problem.sizes[0]))
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        problem.lower_loss(w, theta).backward()
        opt.step()
    return float(problem.upper_loss(w.detach(), theta))


def test_unrolled_through_adam_matches_finite_differences_of_torch_adam() -> None:
    problem, steps, lr, h = Quadratic.make(n=5), 3, 0.05, 1e-6
    graph = bilevel_graph(
        problem, "unrolled", unroll_steps=steps, lr=lr, solve_exactly=False, optimizer="adam"
    )
    got = graph.run_upper_step()
    theta = problem.theta0()
    fd = torch.zeros_like(theta)
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = h
        plus = _adam_unrolled_objective(problem, theta + e, steps, lr)
        minus = _adam_unrolled_objective(problem, theta - e, steps, lr)
        fd[i] = (plus - minus) / (2 * h)
    assert float((got - fd).norm() / fd.norm()) < 1e-6


def test_non_unrolling_differentiable_node_steps_like_a_plain_node() -> None:
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "darts", solve_exactly=False, lr=0.1)
    graph.run_upper_step()
    theta = problem.theta0()
    w0 = initial_lower(8)
    expected = w0 - 0.1 * problem.lower_grad(w0, theta)
    assert torch.allclose(graph.lower.module.value.detach(), expected, atol=1e-14)
    with pytest.raises(RuntimeError, match="no unrolled trajectory"):
        graph.lower.unrolled_parameters()


def test_switching_to_unrolled_keeps_the_optimizer_state() -> None:
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "darts", solve_exactly=False, optimizer="adam", lr=0.05)
    graph.run_upper_step()
    (param,) = graph.lower.trainable_parameters()
    step_before = float(graph.lower.optimizer.state[param]["step"])
    use_estimator(graph.lower, "unrolled")
    graph.run_upper_step()
    assert float(graph.lower.optimizer.state[param]["step"]) == step_before + 1


def test_unrolled_on_a_plain_node_names_the_node() -> None:
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "first_order")
    spec = get_estimator("unrolled")
    v = torch.ones(8, dtype=DTYPE)
    with pytest.raises(ConfigError, match=r"node 'upper'.*DifferentiableNode"):
        spec.fn([v], graph.upper, graph.lower, spec.options_type())


def test_build_time_check_names_a_node_that_cannot_unroll() -> None:
    from metamask.nodes.differentiable import check_estimator_support

    graph = bilevel_graph(Quadratic.make(), "first_order")
    graph.upper.estimator = "unrolled"
    with pytest.raises(ConfigError, match=r"node 'upper': estimator 'unrolled'.*UpperNode"):
        check_estimator_support(graph.upper)
    use_estimator(graph.lower, "unrolled")
    check_estimator_support(graph.lower)  # a DifferentiableNode: fine


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: torch.optim.Adam(p, amsgrad=True), "amsgrad"),
        (lambda p: torch.optim.RMSprop(p), "RMSprop"),
    ],
)
def test_unsupported_optimizer_options_are_named(make: Any, match: str) -> None:
    problem = Quadratic.make()
    graph = bilevel_graph(problem, "unrolled", solve_exactly=False)
    graph.lower.optimizer = make(graph.lower.module.parameters())
    with pytest.raises(ConfigError, match=match):
        graph.run_upper_step()

"""The estimator registry as an interface: names, options, errors, user registration, docs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from metamask.config import EstimatorSpec
from metamask.errors import ConfigError
from metamask.hypergrad import (
    estimator_names,
    estimator_options,
    get_estimator,
    register_estimator,
    unregister_estimator,
    use_estimator,
)
from metamask.hypergrad.autodiff import lower_gradient, mixed_vjp
from metamask.hypergrad.betty_estimators import CGOptions
from metamask.testing.closed_form import Quadratic, exact_hypergradient
from metamask.testing.closed_form_graphs import bilevel_graph

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hypergradients.md"


def test_builtin_estimators_are_registered() -> None:
    assert set(estimator_names()) >= {
        "first_order", "unrolled", "darts", "sama", "neumann", "cg", "implicit_cg", "implicit_neumann",
    }  # fmt: skip


def test_unknown_estimator_names_the_name_and_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown hypergradient estimator 'cgg' \(did you mean 'cg'\?\)"
    ):
        get_estimator("cgg")


def test_unknown_option_key_names_the_key() -> None:
    spec = EstimatorSpec("cg", {"iteratons": 3})
    with pytest.raises(
        ConfigError, match=r"iteratons: unknown key \(did you mean 'iterations'\?\)"
    ):
        estimator_options(spec, "run.yaml", "graph.nodes.pretrain.hypergradient")


def test_wrong_option_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"hypergradient\.iterations: expected an integer"):
        estimator_options(EstimatorSpec("cg", {"iterations": "ten"}), "run.yaml", "hypergradient")


def test_options_parse_into_the_estimators_dataclass() -> None:
    options = estimator_options(EstimatorSpec("cg", {"iterations": 10, "alpha": 1.0}))
    assert options == CGOptions(iterations=10, alpha=1.0)


def test_use_estimator_validates_and_sets_the_node() -> None:
    graph = bilevel_graph(Quadratic.make(), "first_order")
    use_estimator(graph.lower, "neumann", iterations=4, alpha=0.1)
    assert graph.lower.estimator == "neumann"
    assert graph.lower.estimator_options.iterations == 4
    with pytest.raises(ConfigError, match=r"node 'lower'\.hypergradient\.alpah"):
        use_estimator(graph.lower, "neumann", alpah=0.1)


def test_options_of_another_estimator_are_refused_by_type() -> None:
    graph = bilevel_graph(Quadratic.make(), "darts")
    graph.lower.estimator_options = CGOptions()
    with pytest.raises(TypeError, match="node 'lower': estimator 'darts' takes DartsOptions"):
        graph.run_upper_step()


def test_user_estimator_registers_and_runs_in_a_graph() -> None:
    @dataclass(frozen=True)
    class ExactOptions:
        ridge: float = 0.0  # solve (H + ridge I) x = v densely

    @register_estimator("test_dense_exact", ExactOptions, "dense H^{-1} (tiny lowers only)")
    def dense_exact(vector, lower, upper, options):  # type: ignore[no-untyped-def]
        params = lower.trainable_parameters()
        _, grad_w = lower_gradient(lower)
        (p,) = params
        h = torch.stack(
            [torch.autograd.grad(grad_w[0][i], p, retain_graph=True)[0] for i in range(p.numel())]
        )
        x = torch.linalg.solve(h + options.ridge * torch.eye(len(h), dtype=h.dtype), vector[0])
        return mixed_vjp(grad_w, upper.trainable_parameters(), [x])

    try:
        assert register_estimator("test_dense_exact", ExactOptions)(dense_exact) is dense_exact
        problem = Quadratic.make()
        graph = bilevel_graph(problem, "test_dense_exact", ridge=0.0)
        got = graph.run_upper_step()
        exact = exact_hypergradient(problem, problem.theta0())
        assert float((got - exact).norm() / exact.norm()) < 1e-10
    finally:
        unregister_estimator("test_dense_exact")
    assert "test_dense_exact" not in estimator_names()


def _cell() -> object:
    """A notebook cell: each call defines a new function object with the same qualified name."""

    @register_estimator("test_rerun", description="zero, defined in a cell")
    def rerun(vector, lower, upper, options):  # type: ignore[no-untyped-def]
        return [torch.zeros_like(p) for p in upper.trainable_parameters()]

    return rerun


def test_registering_the_same_function_again_is_accepted_and_replaces_it() -> None:
    try:
        first, second = _cell(), _cell()  # the cell run twice
        assert first is not second
        assert get_estimator("test_rerun").fn is second  # the newer definition is used
    finally:
        unregister_estimator("test_rerun")


def test_a_different_function_under_a_taken_name_is_refused_naming_both() -> None:
    def impostor(vector, lower, upper, options):  # type: ignore[no-untyped-def]
        return []

    darts = get_estimator("darts").fn
    with pytest.raises(ValueError) as info:
        register_estimator("darts")(impostor)
    message = str(info.value)
    assert (
        "estimator 'darts' is already registered by metamask.hypergrad.betty_estimators.darts"
        in message
    )
    assert "test_registry.test_a_different_function_under_a_taken_name_is_refused" in message
    assert "unregister_estimator('darts')" in message and "\n" not in message
    assert get_estimator("darts").fn is darts  # the registry is unchanged


def test_docs_page_snippets_run() -> None:
    code = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert code, "docs/hypergradients.md has no python snippet"
    try:
        for block in code:
            exec(compile(block, str(DOCS), "exec"), {})
    finally:
        unregister_estimator("scaled_darts")


def test_swap_example_runs_and_its_exact_estimators_match_the_closed_form() -> None:
    import runpy

    example = runpy.run_path(str(DOCS.parents[1] / "examples" / "swap_hypergradient.py"))
    darts, cg, unrolled = example["main"]()
    assert cg["first"] == pytest.approx(cg["closed"], rel=1e-6)
    assert unrolled["first"] == pytest.approx(unrolled["closed"], rel=1e-6)
    assert darts["first"] != pytest.approx(darts["closed"], rel=0.5)  # identity-Hessian bias

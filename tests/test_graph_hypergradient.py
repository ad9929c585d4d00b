"""graph.hypergradient: the composed indirect gradient of a node built with compose."""

from __future__ import annotations

import pytest
import torch

from metamask.testing.closed_form import Nested
from metamask.testing.closed_form_graphs import nested_graph


def test_hypergradient_is_the_total_gradient_minus_the_direct_one() -> None:
    problem = Nested.make()
    built = nested_graph(problem, "cg")
    graph = built.graph
    with pytest.raises(RuntimeError, match="has not stepped yet"):
        graph.hypergradient("theta")
    graph.train()
    total = built.run_top_step()
    indirect = graph.hypergradient("theta")
    assert list(indirect) == ["value"]
    theta = graph.nodes["theta"].module.value
    v, u = graph.nodes["v"].module.value, graph.nodes["u"].module.value
    direct = torch.autograd.grad(problem.top_loss(theta, v, u), theta)[0]
    assert torch.allclose(indirect["value"], total - direct, rtol=1e-10, atol=1e-12)
    assert float(indirect["value"].norm()) > 0


def test_hypergradient_refuses_unknown_nodes_and_nodes_without_lowers() -> None:
    graph = nested_graph(Nested.make(), "cg").graph
    with pytest.raises(KeyError, match=r"no node 'nope'.*theta"):
        graph.hypergradient("nope")
    with pytest.raises(ValueError, match="node 'u' has no hypergradient"):
        graph.hypergradient("u")


def test_a_node_type_overrides_the_hooks_not_the_step_templates() -> None:
    from metamask.nodes.base import Node

    for template, hook in (("one_step_descent", "descend"), ("backward", "compute_gradients")):
        with pytest.raises(TypeError, match=f"overrides Node.{template}.*Node.{hook} instead"):
            type("Bad", (Node,), {template: lambda self, *a, **k: None})
    assert Node.one_step_descent is not Node.descend  # the template runs the hook

"""The Python API for graphs (metamask.compose): a custom graph trains, its upper node's
hypergradient matches finite differences, and every invalid graph is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_bundle, tiny_spec
from torch import nn
from torch.utils.data import Subset

from metamask.compose import GraphBuilder, new_graph, train
from metamask.errors import ConfigError, GraphError
from metamask.nodes.custom import CustomNode

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
SGD = {"type": "sgd", "lr": 0.5, "weight_decay": 0.0}


class Scale(nn.Module):
    """The upper node's parameters: one scale per input value (a learned feature weighting)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.linspace(0.5, 1.5, size, dtype=torch.float64))


def bilevel(steps: int = 2, estimator: str = "unrolled") -> tuple[GraphBuilder, dict[str, Any]]:
    """A two-node graph of custom nodes in float64: a linear classifier (lower) trained on
    inputs scaled by theta (upper); theta minimises the classifier's loss on held-out data."""
    bundle = tiny_bundle("signal1d", n=24, dtype=torch.float64)
    size = 3 * 16
    lower, upper = nn.Linear(size, 3).double(), Scale(size)
    seen: dict[str, Any] = {"lower": [], "upper": [], "w0": None}

    def classify(batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(lower(x.flatten(1) * upper.theta), y)

    def lower_loss(batch: Any) -> torch.Tensor:
        seen["lower"].append(batch)
        return classify(batch)

    def upper_loss(batch: Any) -> torch.Tensor:
        seen["upper"].append(batch)
        return classify(batch)

    g = new_graph(bundle, steps=steps, batch_size=8, log_every=1)
    g.node(
        "classifier",
        module=lower,
        loss=lower_loss,
        data=Subset(bundle.train, range(16)),
        optimizer=SGD,
        hypergradient=estimator,
        unroll_steps=2,
    )
    g.node(
        "scale",
        module=upper,
        loss=upper_loss,
        data=Subset(bundle.train, range(16, 24)),
        optimizer={**SGD, "lr": 1e-3},
    )
    g.u2l("scale", "classifier").l2u("classifier", "scale")
    seen.update(lower_module=lower, upper_module=upper, classify=classify)
    return g, seen


def test_custom_graph_trains_through_the_trainer(tmp_path: Path) -> None:
    g, _ = bilevel(steps=6)
    graph = g.build()
    assert isinstance(graph.nodes["classifier"], CustomNode)
    before = graph.nodes["scale"].module.theta.detach().clone()
    summary = train(graph, tmp_path)
    assert summary.steps == 6
    assert set(summary.final) == {"classifier", "scale"}
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "checkpoint.pt").is_file()
    assert not torch.equal(before, graph.nodes["scale"].module.theta)


def test_upper_hypergradient_matches_finite_differences_float64() -> None:
    """The scale node's gradient (direct + unrolled through the classifier's two SGD steps)
    against central differences of the same function of theta; tolerance 1e-6 relative."""
    g, seen = bilevel()
    graph = g.build()
    lower, upper = seen["lower_module"], seen["upper_module"]
    w0 = [p.detach().clone() for p in lower.parameters()]
    theta0 = upper.theta.detach().clone()
    grads: list[torch.Tensor] = []
    graph.nodes["scale"].optimizer.register_step_pre_hook(
        lambda *_: grads.append(upper.theta.grad.detach().clone())
    )
    graph.step()
    graph.step()
    assert len(grads) == 1 and len(seen["lower"]) == 2 and len(seen["upper"]) == 1

    def objective(theta: torch.Tensor) -> float:
        weight, bias = (w.clone() for w in w0)
        with torch.no_grad():
            upper.theta.copy_(theta)
        for batch in seen["lower"]:  # the classifier's two SGD steps, lr 0.5
            x, y = batch
            weight.requires_grad_(True)
            bias.requires_grad_(True)
            loss = F.cross_entropy(F.linear(x.flatten(1) * theta, weight, bias), y)
            gw, gb = torch.autograd.grad(loss, (weight, bias))
            weight, bias = (weight - 0.5 * gw).detach(), (bias - 0.5 * gb).detach()
        x, y = seen["upper"][0]
        return float(F.cross_entropy(F.linear(x.flatten(1) * theta, weight, bias), y))

    eps = 1e-6
    numeric = torch.zeros_like(theta0)
    for i in range(theta0.numel()):
        step = torch.zeros_like(theta0)
        step[i] = eps
        numeric[i] = (objective(theta0 + step) - objective(theta0 - step)) / (2 * eps)
    hyper = grads[0]
    assert float(hyper.norm()) > 1e-3
    error = float((hyper - numeric).norm() / numeric.norm())
    assert error < 1e-6, error


def test_spec_graphs_and_composed_graphs_are_the_same_build() -> None:
    """A YAML spec goes through GraphBuilder: the same spec composed in Python builds the
    same nodes, edges and parameters."""
    from metamask.compose import build_graph

    spec = tiny_spec()
    bundle = tiny_bundle("signal1d")
    torch.manual_seed(0)
    from_spec = build_graph(spec, bundle, torch.device("cpu"))
    torch.manual_seed(0)
    g = GraphBuilder(spec.__class__(**{**spec.__dict__, "graph": spec.graph.__class__({})}), bundle)
    g.node("adapt", "adapt", inner_lr=0.5, s_ratio=0.5, latent_solver="unrolled")
    g.node("reconstruct", "reconstruct", reg_weight=0.5, optimizer={"type": "adamw", "lr": 1e-3})
    g.u2l("reconstruct", "adapt").l2u("adapt", "reconstruct")
    composed = g.build()
    assert list(composed.nodes) == list(from_spec.nodes)
    for a, b in zip(
        composed.mae.state_dict().values(), from_spec.mae.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def _head(g: GraphBuilder, data: Any = None) -> GraphBuilder:
    bundle = g.bundle
    head = nn.Linear(g.mae().width, 3)
    return g.node(
        "head",
        module=head,
        loss=lambda batch: F.cross_entropy(head(g.mae().features(batch[0])), batch[1]),
        data=data if data is not None else bundle.train,
        hypergradient="darts",
        optimizer={"lr": 1e-3},
    )


def masked_graph(**pretrain: Any) -> GraphBuilder:
    """MAE + learned masker + a custom head (the API's README example, tiny)."""
    g = new_graph(tiny_bundle("image2d"), model={"backbone": "tiny"}, batch_size=4, steps=2)
    g.node(
        "pretrain",
        "pretrain",
        **{
            "masker": {"type": "token_mlp", "hidden": 8},
            "hypergradient": "darts",
            "optimizer": {"lr": 1e-3},
            **pretrain,
        },
    )
    _head(g)
    return g


def test_a_custom_head_under_a_mask_node_trains_the_masker() -> None:
    g = masked_graph(unroll_steps=2)
    g.node("mask", "mask", data=g.bundle.val, optimizer={"lr": 1e-3})
    g.u2l("mask", "pretrain").l2u("pretrain", "head", "mask").l2u("head", "mask")
    graph = g.build()
    before = [p.detach().clone() for p in graph.nodes["mask"].trainable_parameters()]
    for _ in range(2):
        graph.step()
    after = graph.nodes["mask"].trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _with_mask(g: GraphBuilder, data: Any = None) -> GraphBuilder:
    g.node("mask", "mask", data=data, optimizer={"lr": 1e-3})
    return g.u2l("mask", "pretrain").l2u("pretrain", "head", "mask").l2u("head", "mask")


def _metamae(data_on: str) -> GraphBuilder:
    g = new_graph(tiny_bundle("signal1d"), model={"backbone": "tiny"}, batch_size=4)
    data = {data_on: g.bundle.train}
    g.node("adapt", "adapt", latent_solver="unrolled", data=data.get("adapt"))
    g.node("reconstruct", "reconstruct", optimizer={"lr": 1e-3}, data=data.get("reconstruct"))
    return g.u2l("reconstruct", "adapt").l2u("adapt", "reconstruct")


REFUSED = {
    "cycle": (
        lambda: _with_mask(masked_graph(), []).l2u("mask", "pretrain"),
        GraphError,
        r"<graph>: graph.l2u: the edges form a cycle through 'pretrain'",
    ),
    "edge to an unknown node": (
        lambda: masked_graph().u2l("mask", "pretrian"),
        GraphError,
        r"graph.u2l.mask: unknown node 'mask'",
    ),
    "edge to a misspelt node": (
        lambda: _with_mask(masked_graph(), []).l2u("head", "maks"),
        GraphError,
        r"graph.l2u.head: unknown node 'maks' \(did you mean 'mask'\?\)",
    ),
    "mask node without data": (
        lambda: _with_mask(masked_graph()),
        GraphError,
        r"<graph>: graph.nodes.mask: node has no data; declare it with GraphBuilder.node",
    ),
    "data on a node that reads none": (
        lambda: _metamae(data_on="reconstruct"),
        GraphError,
        r"graph.nodes.reconstruct: its node type reads no data= \(it takes its batches",
    ),
    "unknown estimator": (
        lambda: _with_mask(masked_graph(hypergradient="dart"), []),
        ConfigError,
        r"graph.nodes.pretrain.hypergradient: unknown hypergradient estimator 'dart' "
        r"\(did you mean 'darts'\?\)",
    ),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_invalid_composed_graphs_are_refused_with_one_line(kind: str) -> None:
    make, error, message = REFUSED[kind]
    with pytest.raises(error, match=message) as info:
        g = make()
        g.build()
    assert "\n" not in str(info.value)


def test_a_graph_without_a_dataset_trains_custom_nodes_that_read_no_data() -> None:
    """new_graph(None): no DatasetInfo to invent; a node without data= gets the batch ()."""
    g = new_graph(None, steps=40, log_every=40)
    weight = nn.Parameter(torch.zeros(2))
    module = nn.ParameterList([weight])
    seen: list[object] = []

    def loss(batch: object) -> torch.Tensor:
        seen.append(batch)
        return ((weight - torch.tensor([3.0, -1.0])) ** 2).sum()

    g.node("w", module=module, loss=loss, optimizer={"type": "sgd", "lr": 0.1})
    graph = g.build()
    summary = train(graph)
    assert summary.steps == 40 and set(map(repr, seen)) == {"()"}
    assert torch.allclose(weight.detach(), torch.tensor([3.0, -1.0]), atol=1e-3)
    state = graph.nodes["w"].state_dict()  # checkpoints hold an (empty) data position
    assert state["data"]["positions"] == [{}]


def test_a_graph_without_a_dataset_refuses_node_types_that_need_one() -> None:
    g = new_graph(None)
    g.node("reconstruct", "reconstruct")
    with pytest.raises(
        GraphError, match=r"this graph was made without a dataset \(new_graph\(None\)\)"
    ):
        g.build()


def test_declaration_mistakes_are_named() -> None:
    g = new_graph(tiny_bundle("signal1d"), model={"backbone": "tiny"})
    with pytest.raises(GraphError, match=r"unknown node type 'pretrian' \(did you mean"):
        g.node("pretrain", "pretrian")
    with pytest.raises(GraphError, match="either a registered type or module \\+ loss"):
        g.node("x", "pretrain", module=nn.Linear(2, 2), loss=lambda b: b, data=[])
    g.node("pretrain", "pretrain", masker={"type": "token_mlp"})
    with pytest.raises(GraphError, match="a node named 'pretrain' is already declared"):
        g.node("pretrain", "pretrain")
    with pytest.raises(ConfigError, match=r"graph.nodes.p2.unroll_steps: expected an integer"):
        g.node("p2", "pretrain", unroll_steps="two")  # type: ignore[arg-type]


def test_estimator_a_node_type_cannot_use_is_refused() -> None:
    # the bilevel's classifier is a custom node (any estimator); a plain reconstruct under
    # a mask node takes first derivatives only, and no node without DifferentiableNode unrolls
    g, _ = bilevel()
    g.build()
    from helpers import metamae_mask_graph

    from metamask.compose import build_graph

    for estimator, message in (
        ("neumann", r"node 'reconstruct': Reconstruct cannot pass gradients on with estimator "),
        ("unrolled", r"node 'reconstruct': Reconstruct cannot pass gradients on with estimator "),
    ):
        spec = tiny_spec(
            metamae_mask_graph(reconstruct={"hypergradient": {"type": estimator}}),
            data={"batch_size": 4},
        )
        with pytest.raises(ConfigError, match=message):
            build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))


def test_a_node_draws_its_own_batch_size() -> None:
    """g.node(..., batch_size=) overrides data.batch_size for that node: a small validation
    node (6 examples) trains under a graph whose data.batch_size (32) exceeds it."""
    g, seen = _small_nodes(batch_sizes=(8, 3))
    graph = g.build()
    graph.step()
    graph.step()
    # (darts evaluates the lower loss again on the same batch: several calls per step)
    assert seen["upper"] and {len(batch[1]) for batch in seen["upper"]} == {3}
    assert seen["lower"] and {len(batch[1]) for batch in seen["lower"]} == {8}
    assert graph.context.spec.graph.nodes["reweight"].batch_size == 3


def test_without_its_own_batch_size_a_small_node_is_refused_with_the_way_out() -> None:
    g, _ = _small_nodes(batch_sizes=(8, None))
    with pytest.raises(
        Exception,
        match=r"data.batch_size 32 exceeds the 6 examples node 'reweight' trains on .*, or give "
        r"'reweight' its own batch_size",
    ):
        g.build()


def _small_nodes(batch_sizes: tuple[int | None, int | None]) -> tuple[GraphBuilder, Any]:
    bundle = tiny_bundle("signal1d")
    size = bundle.info.input_shape[0] * bundle.info.input_shape[1]
    lower, upper = nn.Linear(size, 2), nn.Linear(size, 1)  # classifier, per-example weights
    seen: dict[str, list[Any]] = {"lower": [], "upper": []}

    def loss(kind: str) -> Any:
        def run(batch: Any) -> torch.Tensor:
            seen[kind].append(batch)
            x, y = batch
            weights = torch.sigmoid(upper(x.flatten(1))).squeeze(1)
            return (weights * F.cross_entropy(lower(x.flatten(1)), y % 2, reduction="none")).mean()

        return run

    g = new_graph(bundle, batch_size=32, steps=2)
    g.node(
        "classifier",
        module=lower,
        loss=loss("lower"),
        data=Subset(bundle.train, range(16)),
        optimizer=SGD,
        hypergradient="darts",
        batch_size=batch_sizes[0],
    )
    g.node(
        "reweight",
        module=upper,
        loss=loss("upper"),
        data=Subset(bundle.train, range(16, 22)),
        optimizer=SGD,
        batch_size=batch_sizes[1],
    )
    g.u2l("reweight", "classifier").l2u("classifier", "reweight")
    return g, seen

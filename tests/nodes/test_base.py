"""Betty integration: what metamask's node layer fixes, and that training does train."""

from __future__ import annotations

import pytest
import torch
from betty.configs import Config
from betty.problems import ImplicitProblem
from helpers import MAE_GRAPH, tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.config import OptimizerSpec
from metamask.errors import GraphError, NonFiniteError
from metamask.nodes.base import Node
from metamask.optim import build_optimizer


class Quadratic(Node):
    def training_step(self, batch):
        return (self.module.weight**2).sum()


def test_raw_betty_breaks_adamw_and_param_groups_but_nodes_keep_them() -> None:
    module = torch.nn.Linear(3, 2)
    optimizer, _ = build_optimizer(module, OptimizerSpec(no_decay_bias_norm=True), 10)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]

    class Raw(ImplicitProblem):
        def training_step(self, batch):
            return 0

    raw = Raw("raw", Config(), module, optimizer, train_data_loader=[0])
    raw._strategy = "default"
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        raw.patch_optimizer()  # betty-ml 0.2.1 rebuilds type(opt)(**defaults)

    node = Quadratic("q", module, optimizer, loader=[0])
    node._strategy = "default"
    node.patch_optimizer()
    assert node.optimizer is optimizer and len(node.optimizer.param_groups) == 2


def test_nan_loss_names_node_step_and_term() -> None:
    spec = tiny_spec(MAE_GRAPH)
    graph = build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))
    with torch.no_grad():
        graph.mae.decoder.head.bias.fill_(float("nan"))
    graph.train()
    with pytest.raises(
        NonFiniteError, match=r"node 'reconstruct', local step 1: loss term 'loss' is nan"
    ):
        graph.step()


def test_engine_edges_and_order_follow_the_spec() -> None:
    graph = build_graph(tiny_spec(), tiny_bundle("image2d"), torch.device("cpu"))
    adapt, outer = graph.nodes["adapt"], graph.nodes["reconstruct"]
    assert graph.engine.leaves == [adapt]
    assert adapt.parents == [outer] and outer.children == [adapt]
    assert [[n.name for n in path] for path in outer.paths] == [
        ["reconstruct", "adapt", "reconstruct"]
    ]
    assert outer.inner is adapt  # the explicit handle, not Betty's name injection
    stepped = graph.step()
    assert [n.name for n in stepped] == ["adapt", "reconstruct"]


@pytest.mark.parametrize("graph_spec", ["mae", "metamae"])
@pytest.mark.parametrize("modality", ["signal1d", "image2d", "tokens"])
def test_training_lowers_the_reconstruction_loss(graph_spec: str, modality: str) -> None:
    spec = tiny_spec(MAE_GRAPH if graph_spec == "mae" else None, train={"steps": 40})
    graph = build_graph(spec, tiny_bundle(modality, n=8), torch.device("cpu"))
    graph.train()
    losses = []
    for _ in range(40):
        graph.step()
        losses.append(graph.nodes["reconstruct"].last_metrics["reconstruction"])
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5]), losses


def test_invalid_graphs_are_refused_with_clear_messages() -> None:
    bundle = tiny_bundle("signal1d")
    bad_edge = {"nodes": {"reconstruct": {"type": "reconstruct"}}, "u2l": {"reconstruct": ["adpt"]}}
    with pytest.raises(GraphError, match="unknown node 'adpt'"):
        build_graph(tiny_spec(bad_edge), bundle, torch.device("cpu"))
    no_path = {
        "nodes": {"adapt": {"type": "adapt"}, "reconstruct": {"type": "reconstruct"}},
        "u2l": {"reconstruct": ["adapt"]},
    }
    with pytest.raises(GraphError, match="no l2u path leads from 'adapt' up to 'reconstruct'"):
        build_graph(tiny_spec(no_path), bundle, torch.device("cpu"))
    cycle = {
        "nodes": {"adapt": {"type": "adapt"}, "reconstruct": {"type": "reconstruct"}},
        "l2u": {"adapt": ["reconstruct"], "reconstruct": ["adapt"]},
    }
    with pytest.raises(GraphError, match="cycle"):
        build_graph(tiny_spec(cycle), bundle, torch.device("cpu"))
    unknown_type = {"nodes": {"reconstruct": {"type": "reconstrct"}}}
    with pytest.raises(
        GraphError, match=r"unknown node type 'reconstrct'.*did you mean 'reconstruct'"
    ):
        build_graph(tiny_spec(unknown_type), bundle, torch.device("cpu"))
    contrast_without_inner = {"nodes": {"reconstruct": {"type": "reconstruct", "reg_weight": 0.1}}}
    with pytest.raises(GraphError, match="reg_weight: the contrastive term needs an adapt node"):
        build_graph(tiny_spec(contrast_without_inner), bundle, torch.device("cpu"))


def test_unknown_latent_solver_and_option_are_named() -> None:
    from metamask.errors import ConfigError

    graph = tiny_spec().graph
    nodes = {k: {"type": v.type, **dict(v.options)} for k, v in graph.nodes.items()}
    nodes["adapt"]["latent_solver"] = {"type": "unroled"}
    spec = tiny_spec({"nodes": nodes, "u2l": dict(graph.u2l), "l2u": dict(graph.l2u)})
    with pytest.raises(
        ConfigError, match=r"unknown latent solver 'unroled'.*did you mean 'unrolled'"
    ):
        build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))
    nodes["adapt"]["latent_solver"] = {"type": "unrolled"}
    nodes["adapt"]["inner_rate"] = 0.1
    spec = tiny_spec({"nodes": nodes, "u2l": dict(graph.u2l), "l2u": dict(graph.l2u)})
    with pytest.raises(
        ConfigError,
        match=r"graph\.nodes\.adapt\.inner_rate: unknown key \(did you mean 'inner_lr'\?\)",
    ):
        build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))


def test_batch_larger_than_dataset_is_refused() -> None:
    from metamask.errors import DataError

    with pytest.raises(DataError, match=r"data.batch_size 64 exceeds the 24 examples"):
        build_graph(
            tiny_spec(data={"batch_size": 64}), tiny_bundle("signal1d"), torch.device("cpu")
        )

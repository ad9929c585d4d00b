"""MLO-MAE's graph: the published edges and order, typed handles, the MAE baseline, errors."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import ADAMW, MLO_GRAPH, mlo_graph, mlo_spec, tiny_bundle

from metamask.compose import build_graph
from metamask.config import load_spec
from metamask.data.base import LoadOptions
from metamask.data.labelled_splits import split_labelled
from metamask.data.registry import load_dataset
from metamask.errors import ConfigError, GraphError
from metamask.models.maskers import FlatMLPMasker, TokenMLPMasker
from metamask.nodes.head import Head
from metamask.nodes.mask import Mask
from metamask.nodes.pretrain import Pretrain

PUBLISHED_U2L = {"mask": ["pretrain"]}
PUBLISHED_L2U = {"pretrain": ["head", "mask"], "head": ["mask"]}
ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def names(nodes: Any) -> list[str]:
    return [node.name for node in nodes]


def test_the_digits_spec_has_exactly_the_published_edges_and_step_order() -> None:
    spec = load_spec(ROOT / "problems" / "mlomae-digits.yaml")
    assert spec.graph.u2l == PUBLISHED_U2L and spec.graph.l2u == PUBLISHED_L2U
    assert [spec.graph.nodes[n].unroll_steps for n in ("pretrain", "head", "mask")] == [2, 1, 1]
    bundle = load_dataset("digits", LoadOptions())
    graph = build_graph(spec, bundle, torch.device("cpu"))
    pretrain, head_node, mask = (graph.nodes[n] for n in ("pretrain", "head", "mask"))
    assert graph.engine.leaves == [pretrain]
    assert names(pretrain.parents) == ["head", "mask"] and names(head_node.parents) == ["mask"]
    assert names(mask.children) == ["pretrain", "head"]
    assert sorted(names(p) for p in mask.paths) == [
        ["mask", "head", "pretrain", "mask"],
        ["mask", "pretrain", "mask"],
    ]
    assert head_node.paths == [] and pretrain.paths == []
    # typed handles, not Betty's name injection
    assert isinstance(mask, Mask) and mask.pretrain is pretrain and mask.head is head_node
    assert isinstance(head_node, Head) and head_node.pretrain is pretrain
    assert isinstance(pretrain, Pretrain) and mask.masker is pretrain.masker
    assert not hasattr(mask, "mask") and not hasattr(graph.engine, "pretrain")
    order: list[str] = []
    for node in graph.nodes.values():
        step = node.one_step_descent

        def recorded(batch: Any = None, _step: Any = step, _name: str = node.name) -> Any:
            order.append(_name)
            return _step(batch)

        node.one_step_descent = recorded  # type: ignore[method-assign]
    graph.train()
    for _ in range(4):
        graph.step()
    # one cycle: 2 pretrain steps, then the head, then the masker (after both lowers)
    assert order == ["pretrain", "pretrain", "head", "mask"] * 2


def test_nodes_named_like_handles_build_without_betty_name_injection() -> None:
    graph_spec = copy.deepcopy(MLO_GRAPH)
    renamed = {"pretrain": "masker", "head": "pretrain", "mask": "train"}
    graph_spec["nodes"] = {renamed[k]: v for k, v in graph_spec["nodes"].items()}
    graph_spec["u2l"] = {"train": ["masker"]}
    graph_spec["l2u"] = {"masker": ["pretrain", "train"], "pretrain": ["train"]}
    graph = build_graph(mlo_spec(graph_spec), tiny_bundle("image2d"), torch.device("cpu"))
    graph.train()
    graph.step()
    graph.step()
    assert isinstance(graph.nodes["train"], Mask) and graph.nodes["train"].local_step == 1


def test_upper_nodes_are_built_after_their_feeders_whatever_the_spec_order() -> None:
    graph_spec = copy.deepcopy(MLO_GRAPH)
    graph_spec["nodes"] = dict(reversed(list(graph_spec["nodes"].items())))  # mask first
    graph = build_graph(mlo_spec(graph_spec), tiny_bundle("image2d"), torch.device("cpu"))
    assert list(graph.nodes) == ["mask", "head", "pretrain"]  # the spec's order is kept
    assert graph.nodes["mask"].head is graph.nodes["head"]


def mlomae_cifar_example() -> Any:
    example = importlib.util.spec_from_file_location("mlomae_cifar", ROOT / "examples/mlomae_cifar.py")
    assert example is not None and example.loader is not None
    module = importlib.util.module_from_spec(example)
    example.loader.exec_module(module)
    return module


@pytest.mark.parametrize("modality", ["signal1d", "image2d", "tokens"])
def test_the_mae_baseline_is_the_reconstruct_node_on_mlomaes_pretraining_batches(
    modality: str,
) -> None:
    """One MAE: the baseline of an MLO-MAE graph is the reconstruct node alone, under the
    pretrain node's name, so that it draws the batches MLO-MAE's pretraining draws."""
    mlo = mlo_spec(mlo_graph())
    mae = mlomae_cifar_example().mae_baseline(mlo)
    assert list(mae.graph.nodes) == ["pretrain"]
    assert mae.graph.nodes["pretrain"].type == "reconstruct"
    batches = {}
    for name, spec in (("mlomae", mlo), ("mae", mae)):
        graph = build_graph(spec, tiny_bundle(modality), torch.device("cpu"))
        batches[name] = [x for x, _ in graph.nodes["pretrain"].loaders[0]]  # one epoch
    assert len(batches["mae"]) == 6
    for a, b in zip(batches["mlomae"], batches["mae"], strict=True):
        assert torch.equal(a, b)


def test_the_mae_baseline_spec_differs_from_mlomae_only_in_its_graph() -> None:
    mlo = load_spec(ROOT / "problems" / "mlomae-digits.yaml")
    mae = load_spec(ROOT / "problems" / "mae-digits-mlo.yaml")
    for section in ("data", "model", "train", "eval", "seed"):
        assert getattr(mae, section) == getattr(mlo, section), section
    pretrain = mae.graph.nodes["pretrain"]
    assert list(mae.graph.nodes) == ["pretrain"] and pretrain.type == "reconstruct"
    assert pretrain.options == {} and pretrain.optimizer == mlo.graph.nodes["pretrain"].optimizer


def test_learned_masks_hide_the_most_probable_tokens_and_weight_the_loss() -> None:
    spec = mlo_spec(mlo_graph(), model={"mask_ratio": 0.75})
    graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    pretrain = graph.nodes["pretrain"]
    graph.train()
    graph.step()
    batch = pretrain.cur_batch
    prob = pretrain.masker.probabilities(pretrain.mae.embed(batch.x)).detach()
    assert batch.masks.num_keep == 4  # 16 tokens, 75% masked
    kept = prob.gather(1, batch.masks.ids_keep).max(dim=1).values
    hidden = prob.gather(1, batch.masks.ids_mask).min(dim=1).values
    assert (kept <= hidden).all()
    metrics = pretrain.last_metrics
    assert 0.0 < metrics["masked_prob"] < 1.0
    assert metrics["loss"] < metrics["reconstruction"]  # each masked loss times p < 1


def test_masks_stay_fixed_when_a_batch_is_evaluated_at_other_parameters() -> None:
    from metamask.hypergrad.autodiff import node_loss

    graph = build_graph(mlo_spec(mlo_graph()), tiny_bundle("image2d"), torch.device("cpu"))
    pretrain = graph.nodes["pretrain"]
    graph.train()
    graph.step()
    masks = pretrain.cur_batch.masks
    moved = [p.detach() + 3.0 * torch.randn_like(p) for p in pretrain.trainable_parameters()]
    node_loss(pretrain, moved)
    assert pretrain.cur_batch.masks is masks  # darts' evaluations reuse the step's masks
    with torch.no_grad():
        for param, value in zip(pretrain.trainable_parameters(), moved, strict=True):
            param.copy_(value)
        redrawn = pretrain.masker(pretrain.mae.embed(pretrain.cur_batch.x))
    assert not torch.equal(redrawn.mask, masks.mask)  # a fresh draw would have differed


def test_split_a_and_b_partition_the_labelled_training_split() -> None:
    bundle = load_dataset("digits", LoadOptions())
    splits = split_labelled(bundle, 0.2, seed=0)
    a, b = set(splits.a.indices.tolist()), set(splits.b.indices.tolist())  # type: ignore[attr-defined]
    assert not a & b and len(a | b) == len(bundle.train)  # type: ignore[arg-type]
    assert abs(len(b) / len(bundle.train) - 0.2) < 0.01  # type: ignore[arg-type]


def test_the_token_masker_works_for_any_length_and_the_flat_one_names_its_length() -> None:
    token = TokenMLPMasker(width=16, mask_ratio=0.5, hidden=8, attention_layers=1, heads=2)
    for length in (6, 40):
        masks = token(torch.randn(3, length, 16))
        assert masks.mask.shape == (3, length) and masks.num_keep == length // 2
    flat = FlatMLPMasker(num_tokens=6, width=16, mask_ratio=0.5, hidden=8)
    assert sum(p.numel() for p in flat.parameters()) == 6 * 16 * 8 + 8 + 8 * 6 + 6
    with pytest.raises(ConfigError, match="built for 6 tokens of width 16, got 40 x 16"):
        flat(torch.randn(3, 40, 16))


@pytest.mark.parametrize("modality", ["signal1d", "tokens"])
def test_the_per_token_masker_trains_on_other_modalities(modality: str) -> None:
    graph_spec = mlo_graph(pretrain={"masker": {"type": "token_mlp", "hidden": 8}})
    graph = build_graph(mlo_spec(graph_spec), tiny_bundle(modality), torch.device("cpu"))
    before = [p.detach().clone() for p in graph.nodes["mask"].trainable_parameters()]
    graph.train()
    for _ in range(4):
        graph.step()
    after = graph.nodes["mask"].trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


GRAPH_ERRORS = [
    (
        {"nodes": {"pretrain": {"type": "pretrain", "optimizer": ADAMW}}},
        r"graph.nodes.pretrain.masker: a learned masker \(flat_mlp\) needs a mask node above",
    ),
    (
        mlo_graph(pretrain={"masker": {"type": "random"}}),
        r"graph.nodes.pretrain.masker: pretrain learns where to mask .* the reconstruct node alone",
    ),
    (
        mlo_graph(pretrain={"hypergradient": {"type": "first_order"}}),
        "'pretrain' uses the first_order estimator, so the masker would get no gradient",
    ),
    (
        mlo_graph(mask={"hypergradient": {"type": "darts"}}),
        "graph.nodes.mask.hypergradient: mask is the top node",
    ),
    (
        {**mlo_graph(), "l2u": {"pretrain": ["mask"]}},
        r"graph.nodes.head: a head node reads the encoder of exactly one pretrain node",
    ),
    (
        {**mlo_graph(), "l2u": {"pretrain": ["head", "mask"]}},
        r"graph.nodes.mask: a mask node reads the head of exactly one head node below it",
    ),
    (
        mlo_graph(pretrain={"masker": {"type": "flat_mlp", "hiden": 3}}),
        r"graph.nodes.pretrain.masker.hiden: unknown key \(did you mean 'hidden'\?\)",
    ),
]


@pytest.mark.parametrize(("graph_spec", "message"), GRAPH_ERRORS)
def test_wrong_mlomae_graphs_are_refused_with_clear_messages(
    graph_spec: dict[str, Any], message: str
) -> None:
    with pytest.raises((GraphError, ConfigError), match=message):
        build_graph(mlo_spec(graph_spec), tiny_bundle("image2d"), torch.device("cpu"))


def test_the_head_needs_class_labels() -> None:
    bundle = tiny_bundle("image2d")
    bundle.info = bundle.info.__class__(**{**bundle.info.__dict__, "num_classes": 0})
    with pytest.raises(GraphError, match="MLO-MAE's head classifies whole inputs"):
        build_graph(mlo_spec(mlo_graph()), bundle, torch.device("cpu"))


def test_the_derived_mae_baseline_is_the_baseline_spec_file() -> None:
    derived = mlomae_cifar_example().mae_baseline(load_spec(ROOT / "problems" / "mlomae-digits.yaml"))
    written = load_spec(ROOT / "problems" / "mae-digits-mlo.yaml")
    assert derived.name == written.name == "mae-digits-mlo"
    assert dataclasses.replace(derived, description="") == dataclasses.replace(
        written, description=""
    )


def test_the_controlled_tasks_mae_baseline_is_its_derived_baseline() -> None:
    derived = mlomae_cifar_example().mae_baseline(
        load_spec(ROOT / "problems" / "mlomae-controlled_patches.yaml")
    )
    written = load_spec(ROOT / "problems" / "mae-controlled_patches.yaml")
    assert written.name == "mae-controlled_patches"
    assert dataclasses.replace(derived, name="", description="") == dataclasses.replace(
        written, name="", description=""
    )

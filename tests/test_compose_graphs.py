"""metamae+mask (MetaMAE's inner/outer nodes under a learned masker) and MAE + masker on every
modality: they train, the masker learns, the outer loss re-solves exactly, the specs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    METAMAE_MASK,
    metamae_mask_graph,
    mlo_graph,
    tiny_bundle,
    tiny_spec,
)

from metamask.compose import build_graph
from metamask.config import load_spec
from metamask.errors import GraphError
from metamask.nodes.adapt import Adapt
from metamask.nodes.head import Head
from metamask.nodes.mask import Mask
from metamask.nodes.reconstruct import Reconstruct

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
ADAMW = {"type": "adamw", "lr": 1e-3}


@pytest.mark.parametrize("modality", ["signal1d", "image2d", "tokens"])
def test_metamae_mask_trains_the_masker_on_every_modality(modality: str) -> None:
    spec = tiny_spec(METAMAE_MASK, data={"batch_size": 4})
    graph = build_graph(spec, tiny_bundle(modality), torch.device("cpu"))
    adapt, reconstruct, head_node, mask = (graph.nodes[n] for n in METAMAE_MASK["nodes"])
    assert isinstance(adapt, Adapt) and isinstance(reconstruct, Reconstruct)
    assert isinstance(head_node, Head) and isinstance(mask, Mask)
    assert mask.masker is adapt.masker and head_node.pretrain is reconstruct
    before = [p.detach().clone() for p in mask.trainable_parameters()]
    for _ in range(4):
        graph.step()
    assert mask.local_step == 2 and reconstruct.local_step == 4
    metrics = reconstruct.last_metrics
    assert 0.25 <= metrics["mask_ratio"] <= 0.75 and 0.0 < metrics["masked_prob"] < 1.0
    assert {"reconstruction", "contrastive"} <= set(metrics)
    after = mask.trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_the_outer_loss_resolved_at_the_same_parameters_is_the_same() -> None:
    """darts re-evaluates reconstruct's loss: with masks and support kept, the re-solved task
    gives the fresh loss and the same masker gradient (float64, tiny backbone, no dropout)."""
    spec = tiny_spec(METAMAE_MASK, data={"batch_size": 4})
    bundle = tiny_bundle("signal1d", dtype=torch.float64)
    graph = build_graph(spec, bundle, torch.device("cpu"))
    reconstruct_module = graph.nodes["reconstruct"].module
    reconstruct_module.double()
    adapt, reconstruct = graph.nodes["adapt"], graph.nodes["reconstruct"]
    assert isinstance(adapt, Adapt) and isinstance(reconstruct, Reconstruct)
    adapt.masker.double()
    x = torch.stack([bundle.train[i][0] for i in range(4)])
    task, _ = adapt.solve(x)
    masker = list(adapt.masker.parameters())
    fresh = reconstruct.training_step(task)["loss"]
    again = reconstruct.training_step(task)["loss"]  # not fresh any more: re-solved
    assert not task.fresh
    torch.testing.assert_close(again, fresh, rtol=1e-12, atol=1e-12)
    g_fresh = torch.autograd.grad(fresh, masker)
    g_again = torch.autograd.grad(again, masker)
    for a, b in zip(g_again, g_fresh, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_metamae_mask_graph_mistakes_are_refused() -> None:
    bundle = tiny_bundle("signal1d")
    alone = {
        "nodes": {k: METAMAE_MASK["nodes"][k] for k in ("adapt", "reconstruct")},
        "u2l": {"reconstruct": ["adapt"]},
        "l2u": {"adapt": ["reconstruct"]},
    }
    alone["nodes"]["reconstruct"] = {"type": "reconstruct", "optimizer": ADAMW}
    with pytest.raises(GraphError, match="learned masker needs a mask node above 'reconstruct'"):
        build_graph(tiny_spec(alone, data={"batch_size": 4}), bundle, torch.device("cpu"))
    random = metamae_mask_graph(adapt={"masker": {"type": "random"}})
    with pytest.raises(GraphError, match=r"differentiate through 'reconstruct', but its masks"):
        build_graph(tiny_spec(random, data={"batch_size": 4}), bundle, torch.device("cpu"))


@pytest.mark.parametrize("method", ["metamae+mask", "mae+mask"])
def test_specs_exist_for_every_metamae_dataset_with_the_same_budget(method: str) -> None:
    for metamae in sorted((ROOT / "problems").glob("metamae-*.yaml")):
        dataset = metamae.stem.removeprefix("metamae-")
        path = ROOT / "problems" / f"{method}-{dataset}.yaml"
        if not (ROOT / "problems" / f"mae-{dataset}.yaml").is_file():
            continue
        reference = load_spec(metamae)
        from metamask.data.registry import get_dataset

        entry = get_dataset(reference.data.dataset)
        if entry.source != "embedded" or not entry.info.labelled:
            continue
        spec = load_spec(path)
        assert spec.model == reference.model, path
        assert spec.data == reference.data and spec.train == reference.train, path
        assert spec.eval == reference.eval, path
        pretrain = "reconstruct" if method == "metamae+mask" else "pretrain"
        assert spec.graph.nodes[pretrain].optimizer == (
            reference.graph.nodes["reconstruct"].optimizer
        ), path
        assert path.read_text().startswith("#"), f"{path}: header comment"


@pytest.mark.parametrize("modality", ["signal1d", "image2d", "tokens"])
def test_mae_mask_runs_on_every_modality(modality: str) -> None:
    graph_spec = mlo_graph(pretrain={"masker": {"type": "token_mlp", "hidden": 8}})
    graph = build_graph(
        tiny_spec(graph_spec, data={"batch_size": 4}), tiny_bundle(modality), torch.device("cpu")
    )
    for _ in range(2):
        graph.step()
    assert graph.nodes["mask"].local_step == 1

"""MetaMAE's inner node: the random decisions of a step (kept tokens, nearby-S support) are
published on its task and can be drawn from a generator the caller passes."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import METAMAE_GRAPH, tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.errors import ConfigError, GraphError
from metamask.losses import nearby_support
from metamask.models.masking import RandomMasker

pytestmark = pytest.mark.usefixtures("one_thread")


def step_with_generator(seed: int, global_seed: int) -> object:
    torch.manual_seed(global_seed)
    spec = tiny_spec(METAMAE_GRAPH)
    graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    adapt = graph.nodes["adapt"]
    adapt.generator = torch.Generator().manual_seed(seed)
    graph.train()
    graph.step()
    return adapt


@pytest.mark.parametrize("global_seed", [0, 1])
def test_a_generator_draws_the_kept_tokens_and_the_support(global_seed: int) -> None:
    adapt = step_with_generator(7, global_seed)
    task = adapt.task
    b, length = task.masks.mask.shape
    g = torch.Generator().manual_seed(7)
    masks = RandomMasker(adapt.masker.mask_ratio)(torch.empty(b, length, 0), generator=g)
    support = nearby_support(masks.mask, adapt.model.grid, adapt.options.s_ratio, generator=g)
    assert torch.equal(task.masks.ids_keep, masks.ids_keep)
    assert torch.equal(task.masks.mask, masks.mask)
    assert torch.equal(task.support, support)
    assert bool((task.support > task.masks.mask.eq(0).float()).any())  # some nearby-S tokens


def test_the_decisions_do_not_depend_on_the_global_generator() -> None:
    a, b = step_with_generator(3, global_seed=0), step_with_generator(3, global_seed=1)
    assert torch.equal(a.task.masks.ids_keep, b.task.masks.ids_keep)
    assert torch.equal(a.task.support, b.task.support)
    c = step_with_generator(4, global_seed=0)
    assert not torch.equal(a.task.masks.ids_keep, c.task.masks.ids_keep)


def no_adaptation_graph(solver: str, reg_weight: float = 0.5) -> dict:
    """MetaMAE with ``inner_steps: 0``: the latent-adaptation ablation."""
    return {
        "nodes": {
            "adapt": {"type": "adapt", "inner_steps": 0, "latent_solver": {"type": solver}},
            "reconstruct": {"type": "reconstruct", "reg_weight": reg_weight},
        },
        "u2l": {"reconstruct": ["adapt"]},
        "l2u": {"adapt": ["reconstruct"]},
    }


@pytest.mark.parametrize("solver", ["unrolled", "first_order"])
def test_inner_steps_zero_passes_the_amortized_latent_on_and_logs_its_support_loss(
    solver: str,
) -> None:
    torch.manual_seed(0)
    bundle = tiny_bundle("signal1d")
    graph = build_graph(tiny_spec(no_adaptation_graph(solver)), bundle, torch.device("cpu"))
    adapt = graph.nodes["adapt"]
    x = torch.stack([bundle.train[i][0] for i in range(8)])
    task, support = adapt.solve(x)  # at the parameters the model holds now
    assert task.adapted is task.amortized  # z1 = z0: no step was taken
    with torch.no_grad():
        expected = adapt.model.reconstruction_loss(
            task.amortized, task.masks, task.target, task.support
        )
    assert float(support) == pytest.approx(float(expected), rel=1e-6)
    graph.train()
    graph.step()  # the whole graph steps: the outer node reads z0 twice (query, contrast)
    assert adapt.task.adapted is adapt.task.amortized
    assert set(adapt.last_metrics) == {"support"}
    outer = graph.nodes["reconstruct"].last_metrics
    assert outer["contrastive"] > 0 and outer["loss"] > outer["reconstruction"]


def test_inner_steps_zero_is_refused_with_the_implicit_solver() -> None:
    spec = tiny_spec(no_adaptation_graph("implicit"))
    with pytest.raises(GraphError, match=r"graph\.nodes\.adapt\.inner_steps: 0 .*implicit"):
        build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))


def test_negative_inner_steps_are_refused() -> None:
    graph = no_adaptation_graph("unrolled")
    graph["nodes"]["adapt"]["inner_steps"] = -1
    with pytest.raises(ConfigError, match=r"graph\.nodes\.adapt\.inner_steps"):
        build_graph(tiny_spec(graph), tiny_bundle("signal1d"), torch.device("cpu"))


def test_with_decoder_depth_zero_the_encoder_learns_only_from_the_contrast() -> None:
    """Depth 0 (the paper's ablation, as in the published code): a hidden position's prediction
    is the head of its mask token and position alone, so the query loss gives the encoder no
    gradient; the task contrast still does."""
    grads = {}
    for reg_weight in (0.0, 0.5):
        torch.manual_seed(0)
        graph_spec = copy.deepcopy(METAMAE_GRAPH)
        graph_spec["nodes"]["reconstruct"]["reg_weight"] = reg_weight
        model = {"backbone": "tiny", "mask_ratio": 0.5, "decoder": {"depth": 0}}
        spec = tiny_spec(graph_spec, model=model)
        graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
        outer = graph.nodes["reconstruct"]
        assert len(outer.mae.decoder.blocks) == 0
        seen: dict[str, torch.Tensor] = {}

        def capture(outer=outer, seen=seen) -> None:
            for name, p in outer.module.named_parameters():
                if name.startswith("mae.encoder.blocks") and p.grad is not None:
                    seen[name] = p.grad.detach().clone()

        outer.grad_callback = capture
        graph.train()
        graph.step()
        grads[reg_weight] = max((g.abs().max().item() for g in seen.values()), default=0.0)
    assert grads[0.0] == 0.0
    assert grads[0.5] > 1e-6

"""MetaMAE's inner node: the random decisions of a step (kept tokens, nearby-S support) are
published on its task and can be drawn from a generator the caller passes."""

from __future__ import annotations

import pytest
import torch
from helpers import METAMAE_GRAPH, tiny_bundle, tiny_spec

from metamask.compose import build_graph
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

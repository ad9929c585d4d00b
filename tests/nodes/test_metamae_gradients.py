"""MetaMAE through the Betty graph computes exactly the gradients of the method.

The reference below is written from docs/methods.md §2 with plain autograd and no Betty: encode the
visible tokens, take one gradient step on the latent over the support set (loss pooled over
the batch's support tokens, x batch size), reconstruct the masked tokens from the adapted
latent, add reg_weight x the symmetric InfoNCE between the projected pooled latents.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.models.transformer import twice_differentiable
from metamask.nodes.adapt import Adapt, LatentTask

MODALITIES = ["signal1d", "image2d", "tokens"]


def graph_gradients(
    modality: str, solver: str
) -> tuple[dict[str, torch.Tensor], LatentTask, torch.nn.Module, torch.Tensor]:
    """One engine iteration in float64; the outer node's gradients before its optimizer step."""
    spec = tiny_spec(
        graph={
            "nodes": {
                "adapt": {
                    "type": "adapt",
                    "inner_lr": 0.5,
                    "s_ratio": 0.5,
                    "latent_solver": {"type": solver},
                },
                "reconstruct": {
                    "type": "reconstruct",
                    "reg_weight": 0.5,
                    "optimizer": {"type": "adamw", "lr": 1e-3},
                },
            },
            "u2l": {"reconstruct": ["adapt"]},
            "l2u": {"adapt": ["reconstruct"]},
        }
    )
    bundle = tiny_bundle(modality, dtype=torch.float64)
    graph = build_graph(spec, bundle, torch.device("cpu"))
    outer = graph.nodes["reconstruct"]
    outer.module.double()
    before = copy.deepcopy(outer.module)  # the parameters the step differentiates at
    captured: dict[str, torch.Tensor] = {}

    def capture() -> None:
        for name, p in outer.module.named_parameters():
            captured[name] = p.grad.detach().clone()

    outer.grad_callback = capture  # Betty calls it after backward, before the optimizer step
    graph.train()
    graph.step()
    adapt = graph.nodes["adapt"]
    assert isinstance(adapt, Adapt)
    x = adapt.cur_batch[0]
    return captured, adapt.task, before, x


def reference_gradients(
    module: torch.nn.Module, task: LatentTask, x: torch.Tensor, first_order: bool
) -> dict[str, torch.Tensor]:
    mae, projector = module.mae, module.projector
    masks, support = task.masks, task.support
    batch = x.shape[0]

    def losses(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if mae.tokenizer.discrete:
            return F.cross_entropy(pred.transpose(1, 2), target, reduction="none")
        return ((pred - target) ** 2).mean(-1)

    target = mae.targets(x)
    tokens = mae.tokenizer(x) + mae.encoder.pos_embed
    z0 = mae.encoder(tokens, masks.ids_keep)
    with twice_differentiable(mae.decoder):
        support_loss = (losses(mae.decode(z0, masks), target) * support).sum() / support.sum()
    (grad,) = torch.autograd.grad(support_loss * batch, z0, create_graph=not first_order)
    if first_order:
        grad = grad.detach()
    z1 = z0 - 0.5 * grad
    rec = (losses(mae.decode(z1, masks), target) * masks.mask).sum() / masks.mask.sum()
    # symmetric InfoNCE, temperature 0.5, written out pair by pair
    a = F.normalize(projector(z0[:, 1:].mean(1)), dim=1)
    b = F.normalize(projector(z1[:, 1:].mean(1)), dim=1)
    views = torch.cat([a, b])
    terms = []
    for i in range(2 * batch):
        positive = (i + batch) % (2 * batch)
        sims = torch.stack([views[i] @ views[j] / 0.5 for j in range(2 * batch) if j != i])
        others = [j for j in range(2 * batch) if j != i]
        terms.append(-(sims[others.index(positive)] - torch.logsumexp(sims, 0)))
    loss = rec + 0.5 * torch.stack(terms).mean()
    loss.backward()
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("modality", MODALITIES)
def test_second_order_grad_matches_reference(modality: str) -> None:
    got, task, before, x = graph_gradients(modality, "unrolled")
    ref = reference_gradients(before, task, x, first_order=False)
    assert set(got) == set(ref), "every parameter receives a gradient"
    worst = max(rel_err(got[k], ref[k]) for k in ref)
    assert worst < 1e-5, worst


@pytest.mark.parametrize("modality", MODALITIES)
def test_first_order_grad_matches_detached_reference_and_differs_from_second_order(
    modality: str,
) -> None:
    got, task, before, x = graph_gradients(modality, "first_order")
    ref_first = reference_gradients(copy.deepcopy(before), task, x, first_order=True)
    ref_second = reference_gradients(copy.deepcopy(before), task, x, first_order=False)
    assert max(rel_err(got[k], ref_first[k]) for k in ref_first) < 1e-5
    # the second-order terms are not negligible: the decoder's gradient changes
    differs = max(rel_err(got[k], ref_second[k]) for k in ref_second if k.startswith("mae.decoder"))
    assert differs > 1e-3, differs

"""The methods' loss math (metamask.losses): MetaMAE's support set (nearby-S) and task-contrastive
loss, MLO-MAE's probability-weighted reconstruction, classification terms, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from metamask.losses import (
    classification_terms,
    nearby_support,
    probability_weighted_loss,
    task_contrastive_loss,
    visible_neighbours,
)


def test_1d_neighbours_are_left_and_right_without_wraparound() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    near = visible_neighbours(mask, (7,))
    assert near.tolist() == [[0, 1, 0, 1, 0, 1, 0]]


def test_2d_neighbours_are_the_4_neighbourhood() -> None:
    mask = torch.ones(1, 9)
    mask[0, 4] = 0  # the centre of a 3x3 grid is visible
    near = visible_neighbours(mask, (3, 3)).reshape(3, 3)
    assert near.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    mask = torch.ones(1, 9)
    mask[0, 0] = 0  # a corner: no wrap to the opposite edge
    near = visible_neighbours(mask, (3, 3)).reshape(3, 3)
    assert near.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


def test_support_is_visible_plus_nearby_with_probability_s_ratio() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert nearby_support(mask, (7,), 0.0).tolist() == [[0, 0, 1, 0, 0, 0, 1]]
    assert nearby_support(mask, (7,), 1.0).tolist() == [[0, 1, 1, 1, 0, 1, 1]]
    big = (torch.rand(2000, 64) < 0.75).float()
    nearby = big * visible_neighbours(big, (8, 8))
    share = ((nearby_support(big, (8, 8), 0.1) - (1 - big)).sum() / nearby.sum()).item()
    assert share == pytest.approx(0.1, abs=0.01)


def test_contrastive_loss_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    tau = 0.5
    views = [v / v.norm() for v in [*a, *b]]
    total = 0.0
    for i in range(4):
        positive = (i + 2) % 4
        logits = {j: float(views[i] @ views[j]) / tau for j in range(4) if j != i}
        total += -(logits[positive] - math.log(sum(math.exp(v) for v in logits.values())))
    assert task_contrastive_loss(a, b, tau).item() == pytest.approx(total / 4, rel=1e-6)


def test_contrastive_loss_is_low_for_aligned_views() -> None:
    a = torch.randn(16, 8)
    assert task_contrastive_loss(a, a + 1e-3 * torch.randn(16, 8)) < task_contrastive_loss(
        a, torch.randn(16, 8)
    )


def test_classification_terms_are_cross_entropy_and_accuracy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    terms = classification_terms(logits, torch.tensor([0, 0]))
    by_hand = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(1 / (1 + math.e))) / 2
    assert terms["loss"].item() == pytest.approx(by_hand, rel=1e-6)
    assert terms["accuracy"].item() == 0.5


@pytest.mark.parametrize("modality", ["signal1d", "tokens"])
def test_probability_weighted_loss_weights_each_masked_token_by_its_probability(
    modality: str,
) -> None:
    """At p = 1 it is the plain reconstruction loss over the masked tokens; d loss / d p_i is
    token i's own loss over the number masked, and zero where nothing is masked."""
    from helpers import MAE_GRAPH, tiny_bundle, tiny_spec

    from metamask.models.mae import MaskedAutoencoder
    from metamask.models.masking import RandomMasker

    bundle = tiny_bundle(modality)
    mae = MaskedAutoencoder(bundle.info, tiny_spec(MAE_GRAPH).model).eval()
    x = torch.stack([bundle.train[i][0] for i in range(4)])
    tokens = mae.embed(x)
    masks = RandomMasker(0.5)(tokens)
    latent, target = mae.encode(tokens, masks), mae.targets(x)
    prob = torch.ones(masks.mask.shape, requires_grad=True)
    terms = probability_weighted_loss(mae, latent, masks, target, prob)
    plain = mae.reconstruction_loss(latent, masks, target, masks.mask)
    assert terms["loss"].item() == pytest.approx(plain.item(), rel=1e-6)
    assert terms["reconstruction"].item() == pytest.approx(plain.item(), rel=1e-6)
    assert terms["masked_prob"].item() == 1.0
    (grad,) = torch.autograd.grad(terms["loss"], prob)
    select = masks.mask > 0
    own = mae.token_losses(mae.decode(latent, masks, select), target[select])
    assert torch.allclose(grad[select], own / select.sum(), rtol=1e-5, atol=1e-7)
    assert torch.all(grad[~select] == 0)

"""The methods' loss math as functions of tensors: MetaMAE's support set and task contrast,
MLO-MAE's probability-weighted reconstruction, and a classification head's terms.

MetaMAE (docs/methods.md): the visible tokens are the support set, the masked tokens the
query set. The support set is widened by "nearby-S" masked tokens next to a visible one, each
kept with probability ``s_ratio``. The task-contrastive loss aligns the amortized latent z0
with the adapted z1. MLO-MAE: each masked token's reconstruction loss is weighted by its
masking probability, the one path by which gradient reaches the masking network. Node types
(:mod:`metamask.nodes`) call these; nothing here knows of Betty or of nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from metamask import distributed
from metamask.models.mae import masked_mean

if TYPE_CHECKING:
    from metamask.models.mae import MaskedAutoencoder
    from metamask.models.masking import Masks


def visible_neighbours(mask: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """(B, L) float: 1 where a position has a visible neighbour on the token grid.

    1-D grids use the left/right neighbours, 2-D grids the 4-neighbourhood; the grid's edges
    are padded with "masked" (no wrap-around).
    """
    visible = 1.0 - mask
    if len(grid) == 1:
        v = F.pad(visible, (1, 1))  # (B, L + 2)
        near = torch.maximum(v[:, :-2], v[:, 2:])
    elif len(grid) == 2:
        v = F.pad(visible.reshape(-1, *grid), (1, 1, 1, 1))  # (B, H + 2, W + 2)
        near = torch.stack([v[:, :-2, 1:-1], v[:, 2:, 1:-1], v[:, 1:-1, :-2], v[:, 1:-1, 2:]]).amax(
            dim=0
        )
        near = near.reshape(mask.shape)
    else:
        raise ValueError(f"token grids are 1-D or 2-D, got {grid}")
    return near


def nearby_support(
    mask: torch.Tensor,
    grid: tuple[int, ...],
    s_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Support weights (B, L): visible tokens, plus masked neighbours of one w.p. ``s_ratio``.

    One uniform draw per position, as in the published code.
    """
    if generator is None:  # rows of the global batch under data parallelism
        draw = distributed.uniform(*mask.shape, device=mask.device) < s_ratio
    else:
        draw = torch.rand(mask.shape, device=mask.device, generator=generator) < s_ratio
    nearby = mask * visible_neighbours(mask, grid) * draw
    return (1.0 - mask) + nearby


def task_contrastive_loss(
    amortized: torch.Tensor, adapted: torch.Tensor, temperature: float = 0.5
) -> torch.Tensor:
    """Symmetric InfoNCE over 2B projected vectors; positives are a sample's two latents.

    Args:
        amortized: (B, d) projection of the pooled z0.
        adapted: (B, d) projection of the pooled z1.
        temperature: softmax temperature (0.5 in MetaMAE).
    """
    b = amortized.shape[0]
    z = F.normalize(torch.cat([amortized, adapted]), dim=1)  # (2B, d)
    logits = (z @ z.t()) / temperature
    self_pairs = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, positives)


def pool_tokens(latent: torch.Tensor) -> torch.Tensor:
    """Mean over the non-CLS tokens of a latent (B, 1 + K, D) -> (B, D)."""
    return latent[:, 1:].mean(dim=1)


def probability_weighted_loss(
    mae: MaskedAutoencoder,
    latent: torch.Tensor,
    masks: Masks,
    target: torch.Tensor,
    prob: torch.Tensor,
    weighting: str = "count",
) -> dict[str, torch.Tensor]:
    """A learned masker's reconstruction loss: each masked token's loss times its masking
    probability, the only path by which gradient reaches the masker. ``weighting="count"``
    (MLO-MAE, docs/methods.md): ``sum(p * loss) / number masked``; ``"normalised"``:
    ``sum(p * loss) / sum(p)`` over the batch's masked tokens, a weighted mean whose value and
    gradient do not change when every ``p`` is scaled alike (so lowering every probability
    no longer lowers the loss, and the reconstruction keeps its scale as ``p`` shrinks).
    Also the plain reconstruction loss and the mean probability of the masked tokens (both
    detached, for the logs).

    Args:
        latent: (B, 1 + K, D) the encoder's (or an adapted) latent of the kept tokens.
        target: (B, L, P) reconstruction targets or (B, L) token ids.
        prob: (B, L) masking probabilities, in autograd's graph back to the masker.
    """
    select = masks.mask > 0  # (B, L): decode the masked positions only
    losses = mae.token_losses(mae.decode(latent, masks, select), target[select])  # (N,)
    ones = masks.mask[select]
    weighted = masked_mean(losses * prob[select], ones)
    if weighting == "normalised":
        weighted = weighted / masked_mean(prob[select], ones).clamp_min(1e-12)
    elif weighting != "count":
        raise ValueError(f"weighting: expected 'count' or 'normalised', got {weighting!r}")
    return {
        "loss": weighted,
        "reconstruction": masked_mean(losses.detach(), ones),
        "masked_prob": masked_mean(prob.detach()[select], ones),
        "mask_ratio": masks.mask.mean(),  # the share masked (learned within bounds, or fixed)
    }


def classification_terms(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy (the loss) and accuracy (logged) of logits (B, K) for labels (B,)."""
    loss = F.cross_entropy(logits, y.long())
    accuracy = (logits.detach().argmax(-1) == y).float().mean()
    return {"loss": loss, "accuracy": accuracy}

"""Masks as index sets, and the random masker.

A :class:`Masks` says which tokens the encoder sees (``ids_keep``) and how the decoder puts
the sequence back in order (``ids_restore``). Any masker -- random here, the learned MLO-MAE
masker elsewhere -- produces one, so the encoder never needs to know how masks were chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from metamask import distributed


def num_kept(num_tokens: int, mask_ratio: float) -> int:
    """round_down(L * (1 - r)), computed exactly (the published float version can lose one)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = math.floor(num_tokens * (1 - Fraction(str(mask_ratio))))
    return max(keep, 1)


@dataclass(frozen=True)
class Masks:
    """One batch's masks. Kept tokens come first in ``order``; masked ones after."""

    ids_keep: torch.Tensor  # (B, K) kept token positions, in encoder order
    ids_mask: torch.Tensor  # (B, L-K) masked token positions, in decoder order
    ids_restore: torch.Tensor  # (B, L) index of each position in [kept..., masked...]
    mask: torch.Tensor  # (B, L) float: 1 where masked, 0 where kept

    @classmethod
    def from_order(cls, order: torch.Tensor, num_keep: int) -> Masks:
        """Masks from a per-sample permutation of positions whose first ``num_keep`` are kept."""
        ids_restore = torch.argsort(order, dim=1)
        mask = torch.ones_like(order, dtype=torch.float32)
        mask[:, :num_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return cls(order[:, :num_keep], order[:, num_keep:], ids_restore, mask)

    @classmethod
    def from_scores(cls, scores: torch.Tensor, num_keep: int) -> Masks:
        """Keep the ``num_keep`` lowest-scoring positions per sample (ties broken by position)."""
        order = torch.argsort(scores.detach(), dim=1, stable=True)
        return cls.from_order(order, num_keep)

    @property
    def num_keep(self) -> int:
        return self.ids_keep.shape[1]


class RandomMasker:
    """Uniformly random masks: each sample keeps ``round_down(L (1 - r))`` tokens."""

    def __init__(self, mask_ratio: float) -> None:
        num_kept(2, mask_ratio)  # validates the ratio
        self.mask_ratio = mask_ratio

    def __call__(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> Masks:
        """Masks for tokens of shape (B, L, D), drawn from ``generator`` when given (on the
        tokens' device), else from torch's global RNG (under data parallelism: this process's
        rows of one draw for the global batch, metamask.distributed)."""
        b, length = tokens.shape[:2]
        if generator is not None:
            noise = torch.rand(b, length, device=tokens.device, generator=generator)
        else:
            noise = distributed.uniform(b, length, device=tokens.device)
        return Masks.from_scores(noise, num_kept(length, self.mask_ratio))

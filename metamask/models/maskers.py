"""Learned maskers: networks that score every token and mask the most probable ones (MLO-MAE).

The seam is the one :class:`~metamask.models.masking.RandomMasker` already uses: a masker is
a callable ``tokens (B, L, D) -> Masks``. A learned masker adds
``probabilities(tokens) -> p (B, L)``, the masking probability of every token, which MLO-MAE
multiplies into each masked token's reconstruction loss: the only path by which gradient
reaches the masker (choosing the top ``r L`` tokens is an argsort, which has no gradient).

Two networks:

- :class:`FlatMLPMasker`, the published one: flatten the whole image's positioned patch
  embeddings, one hidden layer with ReLU, a logit per patch, sigmoid. Its first layer has
  ``L D x hidden`` weights (100.7M at ViT-B / patch 2 on 32 x 32 images), and it only works for
  the sequence length it was built for.
- :class:`TokenMLPMasker`: the same MLP applied to each token on its own (optionally after a
  few self-attention blocks for context), so its parameters do not depend on ``L``: any
  modality, any sequence length.

Knows nothing of Betty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from timm.models.vision_transformer import Block
from torch import nn

from metamask.errors import ConfigError
from metamask.models.attention import Attention
from metamask.models.masking import Masks, RandomMasker, num_kept
from metamask.ranges import Count, NonNegativeInt, Rate


class Masker(Protocol):
    """Anything that turns positioned tokens (B, L, D) into :class:`Masks`."""

    def __call__(self, tokens: torch.Tensor) -> Masks: ...


class LearnedMasker(nn.Module):
    """A masking network: ``p = probabilities(tokens)``; the ``L - keep`` most probable tokens are
    masked (ties by position), where ``keep = round_down(L (1 - r))``.

    ``r`` is ``mask_ratio``, or, with ``ratio_bounds = (lo, hi)``, learned: the batch's mean
    masking probability clamped to ``[lo, hi]``. The network then decides how much to mask as
    well as where (its probabilities, which weight the loss, also set the count).
    """

    def __init__(self, mask_ratio: float, ratio_bounds: tuple[float, float] | None = None) -> None:
        super().__init__()
        num_kept(2, mask_ratio)  # validates the ratio
        if ratio_bounds is not None:
            lo, hi = ratio_bounds
            if not 0.0 <= lo <= hi < 1.0:
                raise ConfigError(
                    f"masker.ratio_bounds: expected 0 <= low <= high < 1, got {list(ratio_bounds)}"
                )
        self.mask_ratio = mask_ratio
        self.ratio_bounds = ratio_bounds

    def ratio(self, probabilities: torch.Tensor) -> float:
        """The share of tokens to mask in this batch: fixed, or the clamped mean probability."""
        if self.ratio_bounds is None:
            return self.mask_ratio
        lo, hi = self.ratio_bounds
        return min(hi, max(lo, float(probabilities.detach().mean())))

    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        """Masking probability (B, L) in (0, 1) of every token; differentiable."""
        raise NotImplementedError

    def masks_from(self, probabilities: torch.Tensor) -> Masks:
        """Keep the lowest-probability tokens: mask the top ``L - keep`` (argsort, no gradient)."""
        keep = num_kept(probabilities.shape[1], self.ratio(probabilities))
        return Masks.from_scores(probabilities, keep)

    def forward(self, tokens: torch.Tensor) -> Masks:
        return self.masks_from(self.probabilities(tokens))


class FlatMLPMasker(LearnedMasker):
    """The published MLO-MAE masker: Linear(L D, hidden) -> ReLU -> Linear(hidden, L) -> sigmoid
    over the flattened positioned patch embeddings of one input (PyTorch's default init)."""

    def __init__(
        self,
        num_tokens: int,
        width: int,
        mask_ratio: float,
        hidden: int = 512,
        ratio_bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(mask_ratio, ratio_bounds)
        self.num_tokens, self.width = num_tokens, width
        self.hidden = nn.Linear(num_tokens * width, hidden)
        self.out = nn.Linear(hidden, num_tokens)

    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        b, length, width = tokens.shape
        if (length, width) != (self.num_tokens, self.width):
            raise ConfigError(
                f"FlatMLPMasker was built for {self.num_tokens} tokens of width {self.width}, "
                f"got {length} x {width} (use the token_mlp masker for other lengths)"
            )
        h = torch.relu(self.hidden(tokens.reshape(b, length * width)))  # (B, hidden)
        return torch.sigmoid(self.out(h))  # (B, L)


class TokenMLPMasker(LearnedMasker):
    """Per-token masker: [attention blocks ->] LayerNorm -> Linear(D, hidden) -> GELU ->
    Linear(hidden, 1) -> sigmoid, applied to every token; parameters independent of ``L``."""

    def __init__(
        self,
        width: int,
        mask_ratio: float,
        hidden: int = 64,
        attention_layers: int = 0,
        heads: int = 4,
        ratio_bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(mask_ratio, ratio_bounds)
        if attention_layers and width % heads:
            raise ConfigError(f"token_mlp masker: {heads} heads do not divide width {width}")
        self.context = nn.Sequential(
            *[
                Block(width, heads, mlp_ratio=2.0, qkv_bias=False, attn_layer=Attention)
                for _ in range(attention_layers)
            ]
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.hidden = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, 1)

    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.context(tokens))  # (B, L, D)
        logits = self.out(nn.functional.gelu(self.hidden(h)))  # (B, L, 1)
        return torch.sigmoid(logits.squeeze(-1))  # (B, L)


MaskerType = Literal["random", "flat_mlp", "token_mlp"]


@dataclass(frozen=True)
class MaskerSpec:
    """Which masker the pretrain node uses (YAML: ``masker: {type: ..., ...}`` on the node)."""

    type: MaskerType = "flat_mlp"  # flat_mlp (published) | token_mlp (any length) | random (MAE)
    hidden: Count = 512  # hidden width of the MLP (published: 512)
    attention_layers: NonNegativeInt = 0  # token_mlp: attention blocks before the per-token MLP
    heads: Count = 4  # token_mlp: attention heads (must divide the token width)
    ratio_bounds: tuple[Rate, Rate] | None = None  # learn the mask ratio within [low, high]


def build_masker(
    spec: MaskerSpec, mask_ratio: float, num_tokens: int, width: int
) -> RandomMasker | LearnedMasker:
    """The masker ``spec`` names, for ``num_tokens`` tokens of width ``width``."""
    if spec.type == "random":
        return RandomMasker(mask_ratio)
    if spec.type == "flat_mlp":
        return FlatMLPMasker(num_tokens, width, mask_ratio, spec.hidden, spec.ratio_bounds)
    return TokenMLPMasker(
        width, mask_ratio, spec.hidden, spec.attention_layers, spec.heads, spec.ratio_bounds
    )

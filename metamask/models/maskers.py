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

Options that keep a learned masker alive (issue 23; each off by default and in the published
settings): ``temperature`` divides the logits before the sigmoid; ``keep_mean`` shifts each
input's logits so that its mean masking probability is exactly the mask ratio (the masker can
move probability between tokens, not push every token down); ``weighting`` chooses how the
probability-weighted reconstruction is normalised
(:func:`metamask.losses.probability_weighted_loss`).

Knows nothing of Betty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from timm.models.vision_transformer import Block
from torch import nn

from metamask.errors import ConfigError
from metamask.models.attention import Attention
from metamask.models.masking import Masks, RandomMasker, num_kept
from metamask.ranges import Count, NonNegativeInt, Positive, Rate

#: how the probability-weighted reconstruction is normalised: ``count`` (published):
#: ``sum(p loss) / number masked``; ``normalised``: ``sum(p loss) / sum(p)``, a weighted mean
#: that does not change when every probability is scaled alike
Weighting = Literal["count", "normalised"]

_BISECTIONS = 64  # halvings of the shift's bracket in keep_mean (then one Newton step)


def mean_matched_probabilities(
    logits: torch.Tensor, ratio: float, temperature: float = 1.0
) -> torch.Tensor:
    """``sigmoid((z - b) / T)`` with one shift ``b`` per row (B, L) such that every row's mean
    probability is exactly ``ratio``; differentiable in ``logits``.

    ``b`` is found by bisection without gradient, then one Newton step with its derivative
    held fixed gives it the exact first derivative of the implicit solution,
    ``db / dz_i = s'_i / sum_j s'_j`` (``s' = sigmoid'``), at the same value. The shift does
    not change any row's order, so the top-k masks are those of the unshifted logits.
    """
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"masker.keep_mean: the mask ratio must be in (0, 1), got {ratio}")
    margin = temperature * (abs(math.log(ratio / (1.0 - ratio))) + 1.0)
    with torch.no_grad():
        z = logits.detach()
        low = z.min(dim=1, keepdim=True).values - margin  # mean p > ratio there
        high = z.max(dim=1, keepdim=True).values + margin  # mean p < ratio there
        for _ in range(_BISECTIONS):
            mid = 0.5 * (low + high)
            above = torch.sigmoid((z - mid) / temperature).mean(dim=1, keepdim=True) > ratio
            low = torch.where(above, mid, low)
            high = torch.where(above, high, mid)
        shift = 0.5 * (low + high)
        p0 = torch.sigmoid((z - shift) / temperature)
        slope = (p0 * (1.0 - p0)).mean(dim=1, keepdim=True) / temperature  # -g'(b), > 0
    gap = torch.sigmoid((logits - shift) / temperature).mean(dim=1, keepdim=True) - ratio
    return torch.sigmoid((logits - (shift + gap / slope)) / temperature)


class Masker(Protocol):
    """Anything that turns positioned tokens (B, L, D) into :class:`Masks`."""

    def __call__(self, tokens: torch.Tensor) -> Masks: ...


class LearnedMasker(nn.Module):
    """A masking network: ``p = probabilities(tokens)``; the ``L - keep`` most probable tokens are
    masked (ties by position), where ``keep = round_down(L (1 - r))``.

    ``r`` is ``mask_ratio``, or, with ``ratio_bounds = (lo, hi)``, learned: the batch's mean
    masking probability clamped to ``[lo, hi]``. The network then decides how much to mask as
    well as where (its probabilities, which weight the loss, also set the count).

    A subclass computes one logit per token (:meth:`logits`); ``p = sigmoid(z / temperature)``,
    or with ``keep_mean`` the same after each input's logits are shifted so that its mean
    ``p`` is ``mask_ratio`` (:func:`mean_matched_probabilities`). ``weighting`` is read by the
    node that weights its reconstruction with ``p``.
    """

    def __init__(
        self,
        mask_ratio: float,
        ratio_bounds: tuple[float, float] | None = None,
        *,
        temperature: float = 1.0,
        keep_mean: bool = False,
        weighting: Weighting = "count",
    ) -> None:
        super().__init__()
        num_kept(2, mask_ratio)  # validates the ratio
        if ratio_bounds is not None:
            lo, hi = ratio_bounds
            if not 0.0 <= lo <= hi < 1.0:
                raise ConfigError(
                    f"masker.ratio_bounds: expected 0 <= low <= high < 1, got {list(ratio_bounds)}"
                )
            if keep_mean:
                raise ConfigError(
                    "masker.keep_mean: holds each input's mean probability at the mask ratio, "
                    "so it cannot learn the ratio too; drop ratio_bounds or keep_mean"
                )
        if not temperature > 0.0:
            raise ConfigError(f"masker.temperature: expected a number > 0, got {temperature}")
        if weighting not in ("count", "normalised"):
            raise ConfigError(
                f"masker.weighting: expected 'count' or 'normalised', got {weighting!r}"
            )
        if keep_mean and not 0.0 < mask_ratio < 1.0:
            raise ConfigError(
                f"masker.keep_mean: the mask ratio must be in (0, 1), got {mask_ratio}"
            )
        self.mask_ratio = mask_ratio
        self.ratio_bounds = ratio_bounds
        self.temperature = temperature
        self.keep_mean = keep_mean
        self.weighting: Weighting = weighting

    def ratio(self, probabilities: torch.Tensor) -> float:
        """The share of tokens to mask in this batch: fixed, or the clamped mean probability."""
        if self.ratio_bounds is None:
            return self.mask_ratio
        lo, hi = self.ratio_bounds
        return min(hi, max(lo, float(probabilities.detach().mean())))

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """One logit (B, L) per token; differentiable."""
        raise NotImplementedError

    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        """Masking probability (B, L) in (0, 1) of every token; differentiable."""
        logits = self.logits(tokens)
        if self.keep_mean:
            return mean_matched_probabilities(logits, self.mask_ratio, self.temperature)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return torch.sigmoid(logits)

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
        **alive: Any,
    ) -> None:
        super().__init__(mask_ratio, ratio_bounds, **alive)
        self.num_tokens, self.width = num_tokens, width
        self.hidden = nn.Linear(num_tokens * width, hidden)
        self.out = nn.Linear(hidden, num_tokens)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        b, length, width = tokens.shape
        if (length, width) != (self.num_tokens, self.width):
            raise ConfigError(
                f"FlatMLPMasker was built for {self.num_tokens} tokens of width {self.width}, "
                f"got {length} x {width} (use the token_mlp masker for other lengths)"
            )
        h = torch.relu(self.hidden(tokens.reshape(b, length * width)))  # (B, hidden)
        return self.out(h)  # (B, L)


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
        **alive: Any,
    ) -> None:
        super().__init__(mask_ratio, ratio_bounds, **alive)
        if attention_layers and width % heads:
            raise ConfigError(
                f"masker.heads: {heads} attention heads do not divide the token width {width} "
                "(token_mlp masker)"
            )
        self.context = nn.Sequential(
            *[
                Block(width, heads, mlp_ratio=2.0, qkv_bias=False, attn_layer=Attention)
                for _ in range(attention_layers)
            ]
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.hidden = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, 1)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.context(tokens))  # (B, L, D)
        return self.out(nn.functional.gelu(self.hidden(h))).squeeze(-1)  # (B, L)


MaskerType = Literal["random", "flat_mlp", "token_mlp"]


@dataclass(frozen=True)
class MaskerSpec:
    """Which masker the pretrain node uses (YAML: ``masker: {type: ..., ...}`` on the node)."""

    type: MaskerType = "flat_mlp"  # flat_mlp (published) | token_mlp (any length) | random (MAE)
    hidden: Count = 512  # hidden width of the MLP (published: 512)
    attention_layers: NonNegativeInt = 0  # token_mlp: attention blocks before the per-token MLP
    heads: Count = 4  # token_mlp: attention heads (must divide the token width)
    ratio_bounds: tuple[Rate, Rate] | None = None  # learn the mask ratio within [low, high]
    # keeping the masker alive (issue 23; docs/mlomae.md), all off as published:
    temperature: Positive = 1.0  # p = sigmoid(logit / temperature); > 1 flattens, slows saturation
    keep_mean: bool = False  # shift each input's logits so that its mean p is the mask ratio
    weighting: Weighting = "count"  # count: sum(p loss) / number masked; normalised: / sum(p)


def build_masker(
    spec: MaskerSpec, mask_ratio: float, num_tokens: int, width: int
) -> RandomMasker | LearnedMasker:
    """The masker ``spec`` names, for ``num_tokens`` tokens of width ``width``."""
    if spec.type == "random":
        if (spec.temperature, spec.keep_mean, spec.weighting) != (1.0, False, "count"):
            raise ConfigError(
                "masker: temperature, keep_mean and weighting shape a learned masker's "
                "probabilities; a random masker has none (use flat_mlp or token_mlp)"
            )
        return RandomMasker(mask_ratio)
    alive: dict[str, Any] = {
        "temperature": spec.temperature,
        "keep_mean": spec.keep_mean,
        "weighting": spec.weighting,
    }
    if spec.type == "flat_mlp":
        return FlatMLPMasker(num_tokens, width, mask_ratio, spec.hidden, spec.ratio_bounds, **alive)
    return TokenMLPMasker(
        width,
        mask_ratio,
        spec.hidden,
        spec.attention_layers,
        spec.heads,
        spec.ratio_bounds,
        **alive,
    )

"""The modality-agnostic masked auto-encoder (docs/methods.md §1), readable top to bottom.

Steps, each a method: ``embed`` (tokens + positions), ``encode`` (visible tokens -> latent),
``decode`` (latent -> per-position predictions), ``token_losses`` (per-token reconstruction
error), ``features`` (frozen representations for evaluation). Masks come in from outside as
:class:`~metamask.models.masking.Masks`, so any masker plugs in. Knows nothing of Betty.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from metamask import distributed
from metamask.config import ModelSpec
from metamask.data.base import DatasetInfo
from metamask.errors import ConfigError
from metamask.models.masking import Masks
from metamask.models.posembed import sincos_grid, with_cls_row
from metamask.models.tokenizers import Tokenizer, TokenTokenizer, build_tokenizer
from metamask.models.transformer import Decoder, Encoder


class MaskedAutoencoder(nn.Module):
    """Tokenizer -> encoder (visible tokens) -> decoder (all positions)."""

    def __init__(self, info: DatasetInfo, spec: ModelSpec) -> None:
        super().__init__()
        if spec.patch is not None:
            info = dataclasses.replace(info, patch=tuple(spec.patch))  # re-checks the tiling
        self.info = info
        self.spec = spec
        self.tokenizer: Tokenizer = build_tokenizer(info, spec.encoder.width)
        self.encoder = Encoder(self.tokenizer.grid, spec.encoder)
        # discrete tokens: the decoder predicts a D-wide vector, tied to the embedding table
        if spec.norm_pix and not self.tokenizer.discrete and self.tokenizer.target_dim < 2:
            raise ConfigError(
                f"model.norm_pix: tokens of {info.name} hold one value each (patch {info.patch}), "
                "which per-token normalisation would turn into NaN; set norm_pix: false"
            )
        out_dim = spec.encoder.width if self.tokenizer.discrete else self.tokenizer.target_dim
        self.decoder = Decoder(self.tokenizer.grid, spec.encoder.width, spec.decoder, out_dim)

    @property
    def width(self) -> int:
        return self.encoder.width

    @property
    def grid(self) -> tuple[int, ...]:
        return self.tokenizer.grid

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters (float32, or float64 after :meth:`to_dtype`)."""
        return self.encoder.cls_token.dtype

    def to_dtype(self, dtype: torch.dtype) -> MaskedAutoencoder:
        """Parameters and buffers in ``dtype``, the sin-cos positions computed anew in it (a
        cast of the float32 ones would keep their float32 rounding)."""
        self.to(dtype)
        device = self.encoder.pos_embed.device
        enc, dec = self.encoder, self.decoder
        enc.pos_embed = sincos_grid(enc.width, enc.grid, dtype)[None].to(device)
        dec.pos_embed = with_cls_row(sincos_grid(dec.width, dec.grid, dtype))[None].to(device)
        return self

    def _typed(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued inputs in the model's dtype (token ids stay integers)."""
        return x.to(self.dtype) if x.is_floating_point() and x.dtype != self.dtype else x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs -> positioned tokens (B, L, D): what maskers look at and the encoder eats."""
        return self.tokenizer(self._typed(x)) + self.encoder.pos_embed

    def encode(self, tokens: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
        """Positioned tokens (B, L, D) -> latent (B, 1 + K, D) of the kept tokens (all if None)."""
        return self.encoder(tokens, None if masks is None else masks.ids_keep)

    def decode(
        self, latent: torch.Tensor, masks: Masks, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Latent (B, 1 + K, D) -> predictions (B, L, target_dim) or logits (B, L, V).

        With a (B, L) bool ``select``, only the selected positions: (N, target_dim) / (N, V).
        """
        out = self.decoder(latent, masks.ids_restore, select)
        if isinstance(self.tokenizer, TokenTokenizer):
            return self.tokenizer.logits(out)
        return out

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction targets (B, L, P), per-token normalised when ``norm_pix`` is on."""
        target = self.tokenizer.targets(self._typed(x))
        if self.spec.norm_pix and not self.tokenizer.discrete:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True, unbiased=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def token_losses(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-token loss, shaped like ``target`` without its value dimension: mean squared
        error over a token's values, or cross-entropy of its logits."""
        if self.tokenizer.discrete:
            flat = F.cross_entropy(
                pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none"
            )
            return flat.reshape(target.shape)
        return (pred - target).pow(2).mean(dim=-1)

    def reconstruction_loss(
        self, latent: torch.Tensor, masks: Masks, target: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """sum(w * loss) / sum(w) over the tokens of the batch; decodes only where w > 0."""
        select = weights > 0  # (B, L)
        pred = self.decode(latent, masks, select)  # (N, P) or (N, V)
        return masked_mean(self.token_losses(pred, target[select]), weights[select])

    def features(
        self, x: torch.Tensor, pool: Literal["global", "tokens", "cls"] = "global"
    ) -> torch.Tensor:
        """Frozen-encoder features on all tokens: global pool (B, D), per token (B, L, D) or CLS."""
        latent = self.encode(self.embed(x))  # (B, 1 + L, D), already LayerNorm-ed
        if pool == "global":
            return latent[:, 1:].mean(dim=1)
        if pool == "tokens":
            return latent[:, 1:]
        return latent[:, 0]


def masked_mean(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(losses * weights) / sum(weights): one mean over every selected token of the batch.

    Under data parallelism the batch is the global one: each process returns its share of
    the numerator over the global denominator, times the number of processes, so that the
    average over processes (of the value and of the gradients) is the single-process mean.
    """
    if distributed.current() is None:
        return (losses * weights).sum() / weights.sum().clamp_min(1e-12)
    denominator = distributed.total_with_grad(weights.sum()).clamp_min(1e-12)
    return (losses * weights).sum() * distributed.world_size() / denominator

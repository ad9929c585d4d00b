"""Tokenizers: turn one modality's input into a sequence of D-wide tokens, and back into targets.

Three kinds cover every DABS modality:
- 1-D signals (C, T): non-overlapping windows of p steps, projected by a strided Conv1d;
  tabular rows are 1-D signals with C=1, p=1 (each feature is a token).
- 2-D images (C, H, W): p x q patches, projected by a strided Conv2d.
- discrete tokens (L,) over a vocabulary V: an embedding table, also used (tied) to turn the
  decoder's outputs into logits.
"""

from __future__ import annotations

import torch
from torch import nn

from metamask.data.base import DatasetInfo, check_patch
from metamask.errors import DataError


class Tokenizer(nn.Module):
    """Common interface; see the subclasses."""

    input_shape: tuple[int, ...]
    grid: tuple[int, ...]  # token grid: (L,) or (H/p, W/q)
    target_dim: int  # values per token the decoder predicts (continuous) or V (discrete)
    discrete: bool = False

    @property
    def num_tokens(self) -> int:
        n = 1
        for g in self.grid:
            n *= g
        return n

    def check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"{type(self).__name__}: expected inputs of shape (batch, "
                f"{', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction targets: (B, L, target_dim) values, or (B, L) token ids."""
        raise NotImplementedError


class SignalTokenizer(Tokenizer):
    """(B, C, T) -> (B, T/p, D). Targets per token are ordered (p, C)."""

    def __init__(self, channels: int, length: int, patch: int, width: int) -> None:
        super().__init__()
        self.input_shape = (channels, length)
        self.patch = patch
        self.grid = (length // patch,)
        self.target_dim = patch * channels
        self.proj = nn.Conv1d(channels, width, kernel_size=patch, stride=patch)
        nn.init.xavier_uniform_(self.proj.weight.view(width, -1))
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.proj(x).transpose(1, 2)  # (B, L, D)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _ = x.shape
        x = x.reshape(b, c, self.grid[0], self.patch)  # (B, C, L, p)
        return x.permute(0, 2, 3, 1).reshape(b, self.grid[0], self.target_dim)  # (B, L, p*C)


class ImageTokenizer(Tokenizer):
    """(B, C, H, W) -> (B, (H/p)(W/q), D), row-major. Targets per token are ordered (p, q, C)."""

    def __init__(
        self, channels: int, height: int, width_px: int, patch: tuple[int, int], width: int
    ) -> None:
        super().__init__()
        self.input_shape = (channels, height, width_px)
        self.patch = patch
        self.grid = (height // patch[0], width_px // patch[1])
        self.target_dim = patch[0] * patch[1] * channels
        self.proj = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        nn.init.xavier_uniform_(self.proj.weight.view(width, -1))
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, L, D)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        (gh, gw), (p, q) = self.grid, self.patch
        x = x.reshape(b, c, gh, p, gw, q)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, self.target_dim)  # (B, L, p*q*C)


class TokenTokenizer(Tokenizer):
    """(B, L) int64 ids -> (B, L, D). Logits are tied to the embedding table."""

    discrete = True

    def __init__(self, vocab_size: int, length: int, width: int) -> None:
        super().__init__()
        self.input_shape = (length,)
        self.grid = (length,)
        self.target_dim = vocab_size
        self.embedding = nn.Embedding(vocab_size, width)
        nn.init.xavier_uniform_(self.embedding.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if x.dtype not in (torch.int64, torch.int32):
            raise DataError(f"TokenTokenizer: expected integer token ids, got {x.dtype}")
        return self.embedding(x)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, D) decoder outputs -> (B, L, V) logits through the tied embedding table."""
        return h @ self.embedding.weight.t()


def build_tokenizer(info: DatasetInfo, width: int) -> Tokenizer:
    """The tokenizer for a dataset's modality, shape and patch."""
    check_patch(info.name, info.modality, info.input_shape, info.patch, info.vocab_size)
    if info.modality == "signal1d":
        c, t = info.input_shape
        return SignalTokenizer(c, t, info.patch[0], width)
    if info.modality == "image2d":
        c, h, w = info.input_shape
        return ImageTokenizer(c, h, w, (info.patch[0], info.patch[1]), width)
    return TokenTokenizer(info.vocab_size, info.input_shape[0], width)

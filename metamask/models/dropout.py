"""Dropout whose masks cost a third of ``torch.nn.Dropout``'s on a CPU: 16-bit random thresholds.

Why: at the dabs backbone the encoder draws 37 dropout masks per step, and on a CPU PyTorch's
``bernoulli_`` spends about a quarter of an MAE step on them (docs/performance.md). Here one
64-bit draw from the default generator gives four 16-bit numbers, each compared with a fixed
threshold, so a mask of ``n`` elements takes ``ceil(n / 4)`` 64-bit draws and one comparison.

What changes, exactly:

- An element is kept with probability ``round((1 - p) * 65536) / 65536`` (``p = 0.1``: 0.899994,
  not 0.9; the rounding is at most 2**-17) and scaled by ``65536 / threshold``, so the expected
  output equals the input exactly (up to float rounding of the scale).
- The random stream is torch's default CPU generator, as before, so seeding, checkpoints
  (``seeding.rng_state``) and bitwise resume are unchanged; the draws themselves differ from
  ``nn.Dropout``'s: a seeded run's masks (and therefore its numbers) are not the ones metamask
  drew before this module existed.
- Autograd keeps a bool mask (one byte per element; ``nn.Dropout`` on a CPU keeps a float mask,
  four). The backward is made of differentiable ops, so a second derivative through it works.
- On devices other than the CPU (where PyTorch's fused dropout kernel is already cheap), and
  inside ``torch.compile``d code (``train.compile``: the compiler draws the mask in its own
  kernel, from a seed it takes from the default generator), the module calls
  ``torch.nn.functional.dropout``: the keep-probability is then exactly ``1 - p``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_LANES = 65536  # 16-bit random numbers per threshold comparison


def keep_mask(shape: torch.Size, threshold: int, device: torch.device) -> torch.Tensor:
    """A bool mask of ``shape``: each element True with probability ``threshold / 65536``.

    ``ceil(numel / 4)`` full-range 64-bit draws from ``device``'s default generator, read as
    16-bit lanes (signed, hence the shifted threshold).
    """
    n = 1
    for size in shape:
        n *= size
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None)  # the full 64-bit range: every 16-bit lane is uniform
    return words.view(torch.int16)[:n].view(shape) < threshold - _LANES // 2


class _MaskedScale(torch.autograd.Function):
    """``x * keep * scale`` that saves only the bool ``keep`` for its backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


class Dropout(nn.Module):
    """Inverted dropout with 16-bit thresholds on the CPU (see the module docstring)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self.threshold = max(1, round((1.0 - p) * _LANES))
        self.scale = _LANES / self.threshold

    def extra_repr(self) -> str:
        return f"p={self.p}, keep={self.threshold}/{_LANES}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            # torch's fused kernel on a GPU; inside compiled code (train.compile) the compiler
            # generates the mask with its own generator, seeded from the default one
            return nn.functional.dropout(x, self.p, True)
        keep = keep_mask(x.shape, self.threshold, x.device)
        return _MaskedScale.apply(x, keep, self.scale)


def use_fast_dropout(module: nn.Module, fast: bool = True) -> int:
    """Swap every ``nn.Dropout`` with p > 0 inside ``module`` for :class:`Dropout` (``fast``),
    or back (``fast=False``: PyTorch's own, e.g. for a benchmark of the old step). Returns how
    many modules were swapped."""
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            p = getattr(child, "p", 0.0)
            replacement: nn.Module
            if fast and type(child) is nn.Dropout and p > 0.0:
                replacement = Dropout(p)
            elif not fast and isinstance(child, Dropout):
                replacement = nn.Dropout(p)
            else:
                continue
            setattr(parent, name, replacement.train(child.training))
            swapped += 1
    return swapped

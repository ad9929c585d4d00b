"""Self-attention that picks its kernel by sequence length: the math path for short CPU sequences.

Why: PyTorch's fused CPU attention kernel (``scaled_dot_product_attention``'s flash path) is
built for long sequences. On the token counts an MAE encoder sees (the visible tokens: 11 at
pamap2, 17 at CIFAR, CLS included), plain ``softmax(q k^T) v`` with batched matrix products is
about 1.2 x faster per attention module, forward + backward (docs/performance.md). Beyond
:data:`SHORT_SEQUENCE` keys and on any other device the fused kernel stays. Compiled code
(``train.compile``) makes the same choice.

The price is memory: the math path keeps the probabilities (N x N per head) where the fused
kernel keeps one log-sum-exp per row, so N <= 32 keeps that price at a few MiB per step.

:class:`Attention` is timm's ``Attention`` with the same parameters and state-dict keys (a
drop-in ``attn_layer`` for timm's ``Block``); only the kernel choice in ``forward`` differs.
:func:`attend` is the choice itself, shared with the decoder's last-block row selection
(``metamask.models.transformer.block_rows``). ``fused_attn = False`` (set by
``twice_differentiable`` for passes differentiated twice) forces the math path everywhere;
``math_when_short = False`` keeps the fused kernel at every length (timm's own choice: the
benchmarks' step before issue 17).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention

# the longest key sequence that takes the math path on a CPU: faster up to ~70 keys at 1 thread
# and ~128 at 2, but the probabilities it keeps grow as N^2; 32 takes the encoder's visible
# tokens and leaves a 65-position decoder on the fused kernel
SHORT_SEQUENCE = 32


def attend(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T * scale) v`` with ``attn``'s attention dropout, (B, H, R, d) queries
    against (B, H, T, d) keys / values. The fused kernel unless ``attn.fused_attn`` is off or
    the keys are a short CPU sequence (see the module docstring). The math path scales the
    scores in place, so autograd keeps no scaled copy of ``q``."""
    math_when_short = getattr(attn, "math_when_short", False)  # timm's own: always fused
    short = math_when_short and k.device.type == "cpu" and k.shape[-2] <= SHORT_SEQUENCE
    if attn.fused_attn and not short:
        drop = attn.attn_drop.p if attn.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
    scores = (q @ k.transpose(-2, -1)).mul_(attn.scale)
    return attn.attn_drop(scores.softmax(dim=-1)) @ v


class Attention(TimmAttention):
    """timm's multi-head self-attention with :func:`attend`'s kernel choice (no masks)."""

    math_when_short = True  # False: the fused kernel at every length, as timm's Attention

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("metamask's attention takes no attention mask")
        b, n, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        out = self.norm(attend(self, q, k, v).transpose(1, 2).reshape(b, n, self.attn_dim))
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out))

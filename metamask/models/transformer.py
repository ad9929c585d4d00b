"""The MAE's Transformer halves: an encoder over visible tokens and a decoder over all positions.

Both are stacks of timm's pre-norm ``Block`` with :class:`metamask.models.attention.Attention`
(timm's attention that takes the math path on short CPU sequences, the fused kernel otherwise);
:func:`twice_differentiable` switches a module's attention to the math path everywhere for the
passes that MetaMAE differentiates twice (the fused CPU/flash kernels have no double backward).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from metamask.config import DecoderSpec, EncoderSpec
from metamask.models.attention import Attention, attend
from metamask.models.dropout import use_fast_dropout
from metamask.models.posembed import sincos_grid, with_cls_row


@contextmanager
def twice_differentiable(module: nn.Module) -> Iterator[None]:
    """Within the block, every timm attention inside ``module`` uses the math path, and every
    module compiled by :func:`compile_in_place` inside it runs eagerly (compiled code has no
    double backward)."""
    attentions = [m for m in module.modules() if hasattr(m, "fused_attn")]
    saved = [m.fused_attn for m in attentions]
    compiled = [m for m in module.modules() if getattr(m, "_compiled_call_impl", None)]
    saved_calls = [m._compiled_call_impl for m in compiled]
    for m in attentions:
        setattr(m, "fused_attn", False)  # noqa: B010 (a timm attribute, typed as Module here)
    for m in compiled:
        m._compiled_call_impl = None  # nn.Module.__call__ then runs forward eagerly
    try:
        yield
    finally:
        for m, value in zip(attentions, saved, strict=True):
            setattr(m, "fused_attn", value)  # noqa: B010
        for m, call in zip(compiled, saved_calls, strict=True):
            m._compiled_call_impl = call


def compile_in_place(module: nn.Module) -> None:
    """``torch.compile`` ``module``'s forward in place (``nn.Module.compile``: parameter names,
    state dicts and checkpoints stay the same). Compiling happens at the first call of each
    input shape; :func:`twice_differentiable` passes run the eager forward."""
    module.compile()


def block_rows(block: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``block(x)`` at the rows ``rows`` (B, R) only: (B, R, D). Keys and values still come
    from every row of ``x`` (B, T, D); queries, the attention output, the projection and the
    MLP are computed for the R rows alone. Same parameters and kernel choice as ``block``.
    """
    blk: Any = block  # a timm Block; its submodules are untyped attributes
    attn: Any = blk.attn
    h = blk.norm1(x)
    h_rows = torch.gather(h, 1, rows.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
    x_rows = torch.gather(x, 1, rows.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    b, t, _ = h.shape
    r, heads, dim = rows.shape[1], attn.num_heads, attn.head_dim
    sizes = [attn.attn_dim, 2 * attn.attn_dim]
    w_q, w_kv = attn.qkv.weight.split(sizes)
    b_q, b_kv = (None, None) if attn.qkv.bias is None else attn.qkv.bias.split(sizes)
    q = F.linear(h_rows, w_q, b_q).reshape(b, r, heads, dim).transpose(1, 2)
    k, v = F.linear(h, w_kv, b_kv).reshape(b, t, 2, heads, dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    o = attn.norm(attend(attn, q, k, v).transpose(1, 2).reshape(b, r, attn.attn_dim))
    if attn.gate is not None:
        o = o * attn.gate(h_rows).sigmoid()
    x_rows = x_rows + blk.drop_path1(blk.ls1(attn.proj_drop(attn.proj(o))))
    return x_rows + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x_rows))))


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform linear weights, zero biases, unit LayerNorms (as MAE and MetaMAE)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Encoder(nn.Module):
    """CLS + (visible) tokens -> Transformer -> LayerNorm. Tokens arrive with positions added."""

    pos_embed: torch.Tensor  # (1, L, D) fixed sin-cos positions, a buffer

    def __init__(self, grid: tuple[int, ...], spec: EncoderSpec) -> None:
        super().__init__()
        self.width = spec.width
        self.grid = grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.width))
        self.register_buffer("pos_embed", sincos_grid(spec.width, grid)[None], persistent=False)
        self.dropout = nn.Dropout(spec.dropout)
        self.blocks = nn.Sequential(
            *[
                Block(
                    spec.width,
                    spec.heads,
                    spec.mlp_ratio,
                    qkv_bias=spec.qkv_bias,
                    proj_drop=spec.dropout,
                    attn_layer=Attention,
                )
                for _ in range(spec.depth)
            ]
        )
        self.norm = nn.LayerNorm(spec.width, eps=1e-6)
        use_fast_dropout(self)  # input, attention projection and MLP dropout: 16-bit masks
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, tokens: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) positioned tokens, optional (B, K) kept ids -> latent (B, 1 + K, D)."""
        if ids_keep is not None:
            index = ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)  # (B, K, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = self.dropout(torch.cat([cls, tokens], dim=1))
        return self.norm(self.blocks(x))


class Decoder(nn.Module):
    """Latent (B, 1+K, D) + mask tokens at the dropped positions -> (B, L, out_dim)."""

    pos_embed: torch.Tensor  # (1, 1 + L, D_dec) fixed sin-cos positions (CLS row zero), a buffer

    def __init__(
        self, grid: tuple[int, ...], enc_width: int, spec: DecoderSpec, out_dim: int
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(enc_width, spec.width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.width))
        self.grid, self.width = grid, spec.width
        pos = with_cls_row(sincos_grid(spec.width, grid))
        self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, 1+L, Dd)
        self.blocks = nn.Sequential(
            *[
                Block(spec.width, spec.heads, spec.mlp_ratio, qkv_bias=False, attn_layer=Attention)
                for _ in range(spec.depth)
            ]
        )
        self.norm = nn.LayerNorm(spec.width, eps=1e-6)
        self.head = nn.Linear(spec.width, out_dim)
        init_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L, out_dim) predictions; with a (B, L) bool ``select``, those rows only (N, out_dim).

        Row ``i`` of the last block, the final norm and the head depend on the other rows only
        through the last block's keys and values, so unselected positions skip their queries,
        MLP, norm and head: the same values, at a fraction of the last block's cost (MetaMAE's
        support loss reads ~1/4 of the positions, its query loss the masked ones).
        """
        x = self.embed(latent)  # (B, 1+K, Dd)
        b, length = ids_restore.shape
        fill = self.mask_token.expand(b, length + 1 - x.shape[1], -1)
        seq = torch.cat([x[:, 1:], fill], dim=1)  # (B, L, Dd) in [kept..., masked...] order
        index = ids_restore.unsqueeze(-1).expand(-1, -1, seq.shape[-1])
        seq = torch.gather(seq, 1, index)  # (B, L, Dd) in position order
        x = torch.cat([x[:, :1], seq], dim=1) + self.pos_embed
        if select is None or len(self.blocks) == 0:
            x = self.blocks(x)[:, 1:]  # (B, L, Dd), CLS dropped
            return self.head(self.norm(x if select is None else x[select]))
        for block in self.blocks[:-1]:
            x = block(x)
        # the last block only where a loss reads: rows padded to the batch's largest count
        count = select.sum(dim=1)  # (B,)
        order = torch.argsort((~select).to(torch.int8), dim=1, stable=True)  # selected first
        rows = order[:, : int(count.max())]  # (B, R) positions, ascending within each row
        valid = torch.arange(rows.shape[1], device=rows.device) < count[:, None]  # (B, R)
        x = block_rows(self.blocks[-1], x, rows + 1)[valid]  # (N, Dd), as x[select]
        return self.head(self.norm(x))

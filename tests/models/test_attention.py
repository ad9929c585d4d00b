"""metamask.models.attention: the same numbers as timm's attention with either kernel, the math
path on short CPU sequences (it has a double backward; the fused CPU kernel has none), the fused
kernel on long ones, and ``fused_attn = False`` forcing the math path."""

from __future__ import annotations

import pytest
import torch
from timm.layers import Attention as TimmAttention

from metamask.models.attention import SHORT_SEQUENCE, Attention
from metamask.models.transformer import twice_differentiable

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _pair(width: int = 32, heads: int = 4) -> tuple[TimmAttention, Attention]:
    torch.manual_seed(0)
    theirs = TimmAttention(width, heads)
    ours = Attention(width, heads)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # the same parameter names
    return theirs, ours


@pytest.mark.parametrize("length", [5, SHORT_SEQUENCE, SHORT_SEQUENCE + 1, 100])
def test_output_and_gradients_equal_timms_fused_attention(length: int) -> None:
    theirs, ours = _pair()
    x = torch.randn(3, length, 32, requires_grad=True)
    g = torch.randn(3, length, 32)
    out_t = theirs(x)
    (gx_t, *gp_t) = torch.autograd.grad(out_t, [x, *theirs.parameters()], g)
    out_o = ours(x)
    (gx_o, *gp_o) = torch.autograd.grad(out_o, [x, *ours.parameters()], g)
    torch.testing.assert_close(out_o, out_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_o, gx_t, rtol=1e-5, atol=1e-6)
    for a, b in zip(gp_o, gp_t, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _double_backward(module: torch.nn.Module, length: int) -> torch.Tensor:
    x = torch.randn(2, length, 32, requires_grad=True)
    (gx,) = torch.autograd.grad(module(x).square().sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.square().sum(), x)
    return ggx


def test_short_cpu_sequences_take_the_math_path_long_ones_the_fused_kernel() -> None:
    _, ours = _pair()
    # the math path is twice differentiable; the fused CPU kernel is not
    assert torch.isfinite(_double_backward(ours, SHORT_SEQUENCE)).all()
    with pytest.raises(RuntimeError, match=r"derivative|not implemented"):
        _double_backward(ours, SHORT_SEQUENCE + 1)
    with twice_differentiable(ours):  # fused_attn = False: the math path at any length
        assert torch.isfinite(_double_backward(ours, SHORT_SEQUENCE + 1)).all()
    assert ours.fused_attn  # put back


def test_the_math_path_double_backward_equals_finite_differences() -> None:
    _, ours = _pair(width=8, heads=2)
    ours.double()
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ours(t), (x,))


def test_an_attention_mask_is_refused() -> None:
    _, ours = _pair()
    with pytest.raises(ValueError, match="no attention mask"):
        ours(torch.randn(1, 4, 32), is_causal=True)

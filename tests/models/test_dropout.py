"""metamask.models.dropout: 16-bit-threshold masks keep the stated share with an exact expected
value, draw from torch's default generator (seeded, checkpointed), keep a bool mask for
autograd, differentiate twice, and replace every encoder dropout (and can be swapped back)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metamask.config import EncoderSpec
from metamask.models.dropout import Dropout, _MaskedScale, keep_mask, use_fast_dropout
from metamask.models.transformer import Encoder


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_share_kept_is_the_rounded_rate_and_the_mean_is_exact(p: float) -> None:
    drop = Dropout(p)
    assert drop.threshold == round((1 - p) * 65536)
    assert drop.scale * drop.threshold == 65536.0  # expected output == input
    torch.manual_seed(0)
    n = 1 << 20
    keep = keep_mask(torch.Size([n]), drop.threshold, torch.device("cpu"))
    share = keep.double().mean().item()
    sigma = (drop.threshold / 65536 * (1 - drop.threshold / 65536) / n) ** 0.5
    assert abs(share - drop.threshold / 65536) < 5 * sigma
    # every 16-bit lane of a 64-bit draw is used, and each is uniform (not only the low ones)
    lanes = keep.view(-1, 4).double().mean(dim=0)
    assert torch.all((lanes - drop.threshold / 65536).abs() < 5 * sigma * 2)


def test_output_is_the_input_scaled_where_kept_and_zero_elsewhere() -> None:
    drop = Dropout(0.25).train()
    x = torch.rand(7, 13, 5) + 1.0  # no zeros, so a zero output means dropped
    torch.manual_seed(3)
    out = drop(x)
    kept = out != 0
    assert torch.equal(out[kept], x[kept] * drop.scale)
    assert 0 < kept.sum() < x.numel()


def test_masks_come_from_the_default_generator_so_seeds_and_saved_states_replay_them() -> None:
    drop = Dropout(0.1).train()
    x = torch.randn(4, 9, 6)  # 216 elements: 54 64-bit draws
    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = drop(x)
    after = torch.get_rng_state()
    torch.set_rng_state(state)
    assert torch.equal(drop(x), first)
    # exactly ceil(n / 4) full-range 64-bit draws were taken from the generator
    torch.set_rng_state(state)
    torch.empty(54, dtype=torch.int64).random_(-(2**63), None)
    assert torch.equal(torch.get_rng_state(), after)
    torch.manual_seed(12)
    assert not torch.equal(drop(x), first)


def test_eval_mode_and_zero_rate_are_the_identity() -> None:
    x = torch.randn(3, 4)
    assert Dropout(0.3).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\), got 1.0"):
        Dropout(1.0)


def test_gradient_and_second_derivative_through_the_mask() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(5, 6) < 0.7

    def f(t: torch.Tensor) -> torch.Tensor:
        return _MaskedScale.apply(t, keep, 1.25)  # type: ignore[no-any-return]

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    # only the bool mask is saved for the backward (one byte per element, as nn.Dropout)
    y = f(x)
    assert [t.dtype for t in y.grad_fn.saved_tensors] == [torch.bool]  # type: ignore[union-attr]


def test_the_encoder_uses_it_everywhere_and_it_swaps_back() -> None:
    spec = EncoderSpec(width=16, depth=3, heads=2, mlp_ratio=2.0, dropout=0.1)
    encoder = Encoder((4, 4), spec).eval()
    fast = [m for m in encoder.modules() if isinstance(m, Dropout)]
    assert len(fast) == 1 + 3 * spec.depth  # input, attention projection, MLP's two
    assert not any(type(m) is nn.Dropout and m.p > 0 for m in encoder.modules())
    assert use_fast_dropout(encoder, fast=False) == len(fast)
    torch_drops = [m for m in encoder.modules() if type(m) is nn.Dropout and m.p > 0]
    assert len(torch_drops) == len(fast) and not any(m.training for m in torch_drops)
    assert use_fast_dropout(encoder) == len(fast)
    assert sum(isinstance(m, Dropout) for m in encoder.modules()) == len(fast)
    no_dropout = Encoder((4, 4), EncoderSpec(width=16, depth=2, heads=2, dropout=0.0))
    assert not any(isinstance(m, Dropout) for m in no_dropout.modules())

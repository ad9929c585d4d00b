"""FeatureReuse: one upstream forward per (batch, parameter state), exact gradients, freed at once."""

from __future__ import annotations

import gc
import weakref

import torch
from torch import nn

from metamask.nodes.feature_reuse import FeatureReuse


def _encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def test_the_forward_runs_once_per_batch_and_parameter_state() -> None:
    encoder = _encoder()
    reuse = FeatureReuse([encoder])
    calls = []

    def compute(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return encoder(x)

    x = torch.randn(4, 5, dtype=torch.float64)
    first = reuse.features(x, lambda: compute(x))
    assert reuse.features(x, lambda: compute(x)) is first and len(calls) == 1
    with torch.no_grad():
        encoder[0].weight.add_(0.1)  # an optimizer step: the version counter moves
    reuse.features(x, lambda: compute(x))
    assert len(calls) == 2
    other = torch.randn(4, 5, dtype=torch.float64)
    reuse.features(other, lambda: compute(other))
    assert len(calls) == 3


def test_gradients_through_kept_features_equal_a_fresh_forward() -> None:
    encoder = _encoder()
    reuse = FeatureReuse([encoder])
    x = torch.randn(4, 5, dtype=torch.float64)
    head_a, head_b = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    params = list(encoder.parameters())
    # two evaluations at different "head" values, differentiated together (darts' difference)
    loss = (reuse.features(x, lambda: encoder(x)) @ head_a).sum()
    loss = loss - (reuse.features(x, lambda: encoder(x)) @ head_b).sum()
    kept = torch.autograd.grad(loss, params)
    fresh = torch.autograd.grad((encoder(x) @ (head_a - head_b)).sum(), params)
    for a, b in zip(kept, fresh, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    again = torch.autograd.grad((reuse.features(x, lambda: encoder(x)) @ head_a).sum(), params)
    expected = torch.autograd.grad((encoder(x) @ head_a).sum(), params)
    for a, b in zip(again, expected, strict=True):  # the kept graph survives being walked
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_clear_frees_the_kept_activations_without_the_garbage_collector() -> None:
    encoder = _encoder()
    reuse = FeatureReuse([encoder])
    x = torch.randn(4, 5, dtype=torch.float64)
    hidden: list[torch.Tensor] = []

    def compute() -> torch.Tensor:
        h = encoder[1](encoder[0](x))  # an activation the kept graph holds
        hidden.append(h)
        return encoder[2](h)

    features = reuse.features(x, compute)
    probe = weakref.ref(hidden.pop())
    loss = features.sum()
    torch.autograd.grad(loss, list(encoder.parameters()))
    del features, loss
    gc.disable()
    try:
        assert probe() is not None  # kept for the next evaluation
        reuse.clear()
        assert probe() is None  # freed now, not at the next collection
    finally:
        gc.enable()

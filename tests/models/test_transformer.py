"""metamask.models.transformer's compile switch: a compiled encoder and decoder give the eager
gradients, and ``twice_differentiable`` runs compiled modules eagerly (no double backward in
compiled code) and puts them back afterwards."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import TINY_INFOS, tiny_spec

from metamask.models.mae import MaskedAutoencoder
from metamask.models.masking import RandomMasker
from metamask.models.transformer import compile_in_place, twice_differentiable

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _mae_loss(model: MaskedAutoencoder, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    tokens = model.embed(x)
    masks = RandomMasker(0.5)(tokens)
    latent = model.encode(tokens, masks)
    return model.reconstruction_loss(latent, masks, model.targets(x), masks.mask)


def _tiny_mae() -> MaskedAutoencoder:
    torch.manual_seed(0)
    return MaskedAutoencoder(TINY_INFOS["image2d"], tiny_spec().model).train()


@pytest.mark.slow  # compiling forward and backward takes about a minute on a 2-core CPU
def test_compiled_encoder_and_decoder_give_the_eager_loss_and_gradients() -> None:
    eager = _tiny_mae()
    compiled = copy.deepcopy(eager)
    compile_in_place(compiled.encoder)
    compile_in_place(compiled.decoder)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints unchanged
    x = torch.randn(4, 3, 8, 8)
    for seed in (1, 2):
        want, got = _mae_loss(eager, x, seed), _mae_loss(compiled, x, seed)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        grads_want = torch.autograd.grad(want, list(eager.parameters()))
        grads_got = torch.autograd.grad(got, list(compiled.parameters()))
        for g, w in zip(grads_got, grads_want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_twice_differentiable_runs_compiled_modules_eagerly_and_restores_them() -> None:
    eager = _tiny_mae()
    compiled = copy.deepcopy(eager)
    compile_in_place(compiled.decoder)
    assert compiled.decoder._compiled_call_impl is not None
    x = torch.randn(2, 3, 8, 8)

    def second_derivative(model: MaskedAutoencoder) -> list[torch.Tensor]:
        with twice_differentiable(model.decoder):
            assert model.decoder._compiled_call_impl is None
            loss = _mae_loss(model, x, 3)
            params = list(model.decoder.parameters())
            grads = torch.autograd.grad(loss, params, create_graph=True)
            norm = sum(g.square().sum() for g in grads)
            return list(torch.autograd.grad(norm, params))

    for g, w in zip(second_derivative(compiled), second_derivative(eager), strict=True):
        assert torch.equal(g, w)
    assert compiled.decoder._compiled_call_impl is not None  # compiled again afterwards

"""Tokenizers, positions, masking, losses and features of the masked auto-encoder."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_INFOS

from metamask.config import spec_from_dict
from metamask.data.base import DatasetInfo
from metamask.errors import DataError
from metamask.models.mae import MaskedAutoencoder, masked_mean
from metamask.models.masking import Masks, RandomMasker, num_kept
from metamask.models.posembed import sincos_1d, sincos_grid, with_cls_row
from metamask.models.tokenizers import ImageTokenizer, SignalTokenizer, TokenTokenizer


def model_spec(**model):
    return spec_from_dict(
        {
            "name": "t",
            "data": {"dataset": "x"},
            "graph": {"nodes": {}},
            "model": {"backbone": "tiny", **model},
        }
    ).model


def test_signal_tokens_and_targets_are_windows_ordered_p_then_c() -> None:
    tok = SignalTokenizer(channels=2, length=6, patch=3, width=8)
    x = torch.arange(12.0).reshape(1, 2, 6)
    assert tok(x).shape == (1, 2, 8)
    target = tok.targets(x)
    # token 0 = steps 0..2 of both channels, ordered (p, C): (c0 t0, c1 t0, c0 t1, ...)
    assert target[0, 0].tolist() == [0, 6, 1, 7, 2, 8]
    assert target[0, 1].tolist() == [3, 9, 4, 10, 5, 11]


def test_image_tokens_are_row_major_patches_ordered_p_q_c() -> None:
    tok = ImageTokenizer(channels=1, height=4, width_px=6, patch=(2, 3), width=8)
    x = torch.arange(24.0).reshape(1, 1, 4, 6)
    assert tok.grid == (2, 2)
    target = tok.targets(x)
    assert target.shape == (1, 4, 6)
    assert target[0, 1].tolist() == [3, 4, 5, 9, 10, 11]  # top-right patch
    assert target[0, 2].tolist() == [12, 13, 14, 18, 19, 20]  # bottom-left patch
    # the conv tokenizer sees the same patches: a patch-indicator kernel reproduces the sums
    with torch.no_grad():
        tok.proj.weight.fill_(1.0)
        tok.proj.bias.zero_()
    assert torch.allclose(tok(x)[0, :, 0], target[0].sum(-1))


def test_token_tokenizer_ties_logits_to_embedding() -> None:
    tok = TokenTokenizer(vocab_size=5, length=4, width=8)
    h = torch.randn(2, 4, 8)
    assert torch.allclose(tok.logits(h), h @ tok.embedding.weight.t())
    with pytest.raises(DataError, match="integer token ids"):
        tok(torch.zeros(2, 4))


def test_wrong_input_shape_names_expected_and_received() -> None:
    tok = SignalTokenizer(channels=6, length=100, patch=5, width=8)
    with pytest.raises(
        DataError, match=r"expected inputs of shape \(batch, 6, 100\), got \(2, 6, 99\)"
    ):
        tok(torch.zeros(2, 6, 99))


def test_patch_that_does_not_divide_the_input_is_refused() -> None:
    with pytest.raises(DataError, match=r"patch \(3,\) does not divide input \(6, 100\)"):
        DatasetInfo("bad", "signal1d", (6, 100), (3,), 4, "accuracy")
    with pytest.raises(DataError, match=r"patch \(3, 3\) does not divide"):
        MaskedAutoencoder(TINY_INFOS["image2d"], model_spec(patch=[3, 3]))


def test_sincos_embeddings() -> None:
    pos = sincos_1d(8, torch.arange(3))
    assert torch.allclose(pos[1, :4], torch.sin(1.0 / 10000 ** (torch.arange(4) / 4.0)))
    assert torch.allclose(pos[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    grid = sincos_grid(8, (2, 3))
    assert grid.shape == (6, 8)
    # first half encodes the row, second half the column
    assert torch.equal(grid[0, :4], grid[2, :4]) and torch.equal(grid[0, 4:], grid[3, 4:])
    assert torch.equal(with_cls_row(grid)[0], torch.zeros(8))


@pytest.mark.parametrize(
    ("length", "ratio", "kept"), [(250, 0.8, 50), (320, 0.8, 64), (64, 0.85, 9), (20, 0.85, 3)]
)
def test_num_kept_is_the_exact_round_down(length: int, ratio: float, kept: int) -> None:
    assert num_kept(length, ratio) == kept


def test_random_masks_are_consistent_index_sets() -> None:
    masks = RandomMasker(0.75)(torch.zeros(4, 16, 2))
    assert masks.ids_keep.shape == (4, 4) and masks.ids_mask.shape == (4, 12)
    assert torch.equal(masks.mask.sum(1), torch.full((4,), 12.0))
    for b in range(4):
        assert torch.all(masks.mask[b, masks.ids_keep[b]] == 0)
        assert torch.all(masks.mask[b, masks.ids_mask[b]] == 1)
        order = torch.cat([masks.ids_keep[b], masks.ids_mask[b]])
        assert torch.equal(order[masks.ids_restore[b]], torch.arange(16))


def test_masks_from_scores_keep_lowest() -> None:
    masks = Masks.from_scores(torch.tensor([[0.9, 0.1, 0.5, 0.2]]), num_keep=2)
    assert sorted(masks.ids_keep[0].tolist()) == [1, 3]
    assert masks.mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_decoder_restores_positions() -> None:
    """A kept token's decoder input lands at its own position."""
    mae = MaskedAutoencoder(TINY_INFOS["signal1d"], model_spec(mask_ratio=0.5))
    masks = RandomMasker(0.5)(torch.zeros(2, 8, 1))
    latent = torch.randn(2, 1 + masks.num_keep, mae.width)
    seen = {}
    mae.decoder.blocks.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    mae.decode(latent, masks)
    x = seen["x"] - mae.decoder.pos_embed
    embedded = mae.decoder.embed(latent)
    for b in range(2):
        for k, pos in enumerate(masks.ids_keep[b].tolist()):
            assert torch.allclose(x[b, 1 + pos], embedded[b, 1 + k], atol=1e-6)
        for pos in masks.ids_mask[b].tolist():
            assert torch.allclose(x[b, 1 + pos], mae.decoder.mask_token[0, 0], atol=1e-6)


def test_losses_norm_pix_and_masked_mean() -> None:
    mae = MaskedAutoencoder(TINY_INFOS["signal1d"], model_spec(norm_pix=True))
    x = torch.randn(2, 3, 16)
    target = mae.targets(x)
    assert torch.allclose(target.mean(-1), torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(target.var(-1), torch.ones(2, 8), atol=1e-3)
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert masked_mean(losses, torch.tensor([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(8.0 / 3)


def test_token_losses_are_cross_entropy() -> None:
    mae = MaskedAutoencoder(TINY_INFOS["tokens"], model_spec())
    logits = torch.randn(2, 12, 5)
    target = torch.randint(0, 5, (2, 12))
    expected = -torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]
    assert torch.allclose(mae.token_losses(logits, target), expected, atol=1e-6)


@pytest.mark.parametrize("modality", ["signal1d", "image2d", "tokens"])
def test_features_are_global_pool_of_normed_tokens(modality: str) -> None:
    info = TINY_INFOS[modality]
    mae = MaskedAutoencoder(info, model_spec()).eval()
    x = (
        torch.randint(0, 5, (2, *info.input_shape))
        if modality == "tokens"
        else torch.randn(2, *info.input_shape)
    )
    tokens = mae.features(x, pool="tokens")
    assert tokens.shape == (2, info.num_tokens, mae.width)
    assert torch.allclose(mae.features(x), tokens.mean(1))
    assert torch.allclose(
        tokens.mean(-1), torch.zeros(2, info.num_tokens), atol=1e-4
    )  # LayerNorm-ed


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("math_attention", [False, True])
@pytest.mark.parametrize("attention", ["timm", "metamask"])
def test_block_rows_is_the_block_at_those_rows(
    qkv_bias: bool, math_attention: bool, attention: str
) -> None:
    from timm.layers import Attention as TimmAttention
    from timm.models.vision_transformer import Block

    from metamask.models.attention import Attention
    from metamask.models.transformer import block_rows, twice_differentiable

    torch.manual_seed(0)
    layer = Attention if attention == "metamask" else TimmAttention
    block = Block(16, 4, 2.0, qkv_bias=qkv_bias, attn_layer=layer).double().eval()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    rows = torch.tensor([[0, 2, 6], [1, 1, 5], [3, 4, 4]])
    expected = torch.gather(block(x), 1, rows.unsqueeze(-1).expand(-1, -1, 16))
    if math_attention:
        with twice_differentiable(block):
            got = block_rows(block, x, rows)
    else:
        got = block_rows(block, x, rows)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_decoding_selected_positions_equals_selecting_from_the_full_decoding() -> None:
    model = MaskedAutoencoder(TINY_INFOS["image2d"], model_spec(mask_ratio=0.75)).double().eval()
    x = torch.randn(4, *TINY_INFOS["image2d"].input_shape, dtype=torch.float64)
    tokens = model.embed(x)
    masks = RandomMasker(0.75)(tokens)
    latent = model.encode(tokens, masks)
    select = torch.rand(masks.ids_restore.shape) < 0.3  # a different count in every row
    select[0] = False  # and a row with none
    full = model.decode(latent, masks)
    torch.testing.assert_close(
        model.decode(latent, masks, select), full[select], rtol=0, atol=1e-12
    )


def test_a_decoder_of_depth_zero_predicts_hidden_tokens_from_position_alone() -> None:
    """Depth 0 (MetaMAE's decoder ablation): embed, mask tokens, positions, norm, head. A hidden
    position's prediction does not depend on the latent; a visible one's does; selected rows
    equal the full decoding's."""
    spec = model_spec(mask_ratio=0.75, decoder={"depth": 0})
    model = MaskedAutoencoder(TINY_INFOS["image2d"], spec).double().eval()
    assert len(model.decoder.blocks) == 0
    x = torch.randn(3, *TINY_INFOS["image2d"].input_shape, dtype=torch.float64)
    tokens = model.embed(x)
    masks = RandomMasker(0.75)(tokens)
    latent = model.encode(tokens, masks)
    full = model.decode(latent, masks)
    other = model.decode(latent + torch.randn_like(latent), masks)
    hidden = masks.mask.bool()
    torch.testing.assert_close(other[hidden], full[hidden], rtol=0, atol=0)
    assert not torch.allclose(other[~hidden], full[~hidden])
    select = torch.rand(masks.ids_restore.shape) < 0.5
    torch.testing.assert_close(
        model.decode(latent, masks, select), full[select], rtol=0, atol=1e-12
    )

"""timm and facebookresearch/mae key names for a ViT, both ways (docs/using-encoders.md).

metamask's image encoder is timm's ViT in all but names: a strided Conv2d patch embedding, a
CLS token without a position (a zero row in timm's table), fixed sin-cos positions, timm
``Block``s and a final LayerNorm (eps 1e-6 throughout), and features that are the mean of
the normalised patch tokens. Hence:

==============================  ===============================  =============================
metamask                        timm ``VisionTransformer``       facebookresearch/mae
==============================  ===============================  =============================
``tokenizer.proj.{weight,bias}`` ``patch_embed.proj.*``           ``patch_embed.proj.*``
``encoder.cls_token``            ``cls_token``                    ``cls_token``
(fixed sin-cos, not a weight)    ``pos_embed`` (1, 1+L, D)        ``pos_embed`` (fixed)
``encoder.blocks.N.*``           ``blocks.N.*``                   ``blocks.N.*``
``encoder.norm.*``               ``norm.*``                       ``norm.*`` (or ``fc_norm.*``)
==============================  ===============================  =============================

The timm model that takes the weights with ``strict=True`` is ``create_model`` of a ViT with
``num_classes=0`` (no head), ``global_pool="avg"`` and ``fc_norm=False`` (metamask normalises
every token, then averages; timm's default for ``avg`` would average, then normalise).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from metamask.downstream.encoder import EncoderConfig

#: the timm model name whose defaults the create_model arguments override
TIMM_MODEL = "vit_base_patch16_224"

# metamask key prefix -> timm key prefix (the rest of the key is the same)
_TO_TIMM = (
    ("tokenizer.proj.", "patch_embed.proj."),
    ("encoder.blocks.", "blocks."),
    ("encoder.norm.", "norm."),
    ("encoder.cls_token", "cls_token"),
)


def timm_kwargs(config: EncoderConfig) -> dict[str, Any]:
    """The ``timm.create_model(TIMM_MODEL, **kwargs)`` arguments of an image encoder."""
    channels, height, width = config.input_shape
    enc = config.encoder_spec()
    return {
        "pretrained": False,
        "num_classes": 0,
        "global_pool": "avg",
        "fc_norm": False,
        "class_token": True,
        "img_size": [height, width],
        "patch_size": list(config.patch),
        "in_chans": channels,
        "embed_dim": enc.width,
        "depth": enc.depth,
        "num_heads": enc.heads,
        "mlp_ratio": enc.mlp_ratio,
        "qkv_bias": enc.qkv_bias,
    }


def timm_call(config: EncoderConfig, weights: str = "timm_model.safetensors") -> str:
    """Python that builds the timm model and loads the export's timm weights strictly."""
    args = ", ".join(
        f"{k}={json.dumps(v) if not isinstance(v, bool) else v}"
        for k, v in timm_kwargs(config).items()
    )
    return (
        "import timm\nfrom safetensors.torch import load_file\n"
        f'model = timm.create_model("{TIMM_MODEL}", {args})\n'
        f'model.load_state_dict(load_file("{weights}"), strict=True)\n'
        "model.eval()  # model(x): the features metamask's encoder.features(x) gives"
    )


def to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """metamask ``tokenizer.*`` / ``encoder.*`` weights -> timm VisionTransformer keys; the
    positions become timm's ``pos_embed`` with the CLS row zero."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "encoder.pos_embed":
            zero = torch.zeros_like(value[:, :1])
            out["pos_embed"] = torch.cat([zero, value], dim=1).contiguous()
            continue
        for ours, theirs in _TO_TIMM:
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value.contiguous()
                break
    return out


def from_vit(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A timm or facebookresearch/mae ViT state dict -> metamask keys, and the keys that
    were read but are not weights metamask loads: the fixed ``pos_embed`` (metamask computes
    its own sin-cos table), the MAE decoder (``decoder_*``, ``mask_token``) and a
    classification ``head``. Every other key is mapped, or kept as it is (so that it shows
    up as unexpected)."""
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, value in state.items():
        if key in ("pos_embed", "mask_token") or key.startswith(("decoder_", "head.")):
            skipped.append(key)
            continue
        if key.startswith("fc_norm."):  # MAE's fine-tuning ViT with global_pool: its only norm
            out["encoder.norm." + key[len("fc_norm.") :]] = value
            continue
        for ours, theirs in _TO_TIMM:
            if key.startswith(theirs):
                out[ours + key[len(theirs) :]] = value
                break
        else:
            out[key] = value
    return out, skipped


def looks_like_vit(state: dict[str, Any]) -> bool:
    """A timm / facebookresearch/mae ViT state dict (its patch embedding and blocks)."""
    return "patch_embed.proj.weight" in state or any(k.startswith("blocks.") for k in state)

"""A pretrained encoder alone: its config (``config.json``) and the plain module built from it.

:class:`EncoderConfig` holds everything needed to rebuild the tokenizer and the encoder
(modality, input shape, patch, widths, depths, heads, dtype) plus what says where they came
from (dataset, metamask version, the resolved spec's hash, the step). :class:`PretrainedEncoder`
is the tokenizer, the fixed sin-cos positions and the encoder blocks of a
:class:`~metamask.models.mae.MaskedAutoencoder`, the same classes with the same parameter names
(``tokenizer.*``, ``encoder.*``), so its features are bitwise those of the run's own model.

Nothing here imports Betty, TorchOpt or the training stack.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from metamask.config import EncoderSpec, RunSpec, spec_to_dict
from metamask.data.base import DatasetInfo
from metamask.errors import EncoderError, MetamaskError
from metamask.models.posembed import sincos_grid
from metamask.models.tokenizers import Tokenizer, build_tokenizer
from metamask.models.transformer import Encoder

#: config.json's ``format``: what a reader checks before anything else
FORMAT = "metamask-encoder"
FORMAT_VERSION = 1
Pool = Literal["global", "tokens", "cls"]


@dataclass(frozen=True)
class EncoderConfig:
    """What ``config.json`` of an export holds (see docs/using-encoders.md)."""

    modality: str  # signal1d | image2d | tokens
    input_shape: tuple[int, ...]  # one input, without the batch dimension
    patch: tuple[int, ...]  # the tokenizer's patch
    vocab_size: int  # tokens: the vocabulary; 0 otherwise
    encoder: dict[str, Any]  # width, depth, heads, mlp_ratio, qkv_bias
    dtype: str  # float32 | float64: the parameters' dtype
    pool: Pool  # the features the probe reads: global (mean of tokens) or tokens
    dataset: str = ""  # the pretraining dataset
    num_classes: int = 0  # of the pretraining dataset (facts only; no head is exported)
    metric: str = "accuracy"
    decoder: dict[str, Any] | None = None  # width, depth, heads, mlp_ratio (with_decoder)
    metamask_version: str = ""
    spec_sha256: str = ""  # sha256 of the resolved spec (canonical JSON)
    step: int = 0  # the engine step of the weights
    data: dict[str, Any] = dataclasses.field(default_factory=dict)  # seed, val_fraction

    def to_json(self) -> dict[str, Any]:
        """Plain data for config.json, with its format tag first."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **spec_to_dict(body)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> EncoderConfig:
        """Read config.json's content; EncoderError (one line) when it is not one."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EncoderError(f"{where}: not a metamask encoder config (no format: {FORMAT})")
        names = {f.name for f in dataclasses.fields(cls)}
        body = {k: v for k, v in data.items() if k in names}
        try:
            config = cls(**body)
            config = dataclasses.replace(
                config,
                input_shape=tuple(int(v) for v in config.input_shape),
                patch=tuple(int(v) for v in config.patch),
            )
            config.info()  # the shapes must make sense
            config.encoder_spec()
        except (TypeError, ValueError, MetamaskError) as exc:
            raise EncoderError(f"{where}: malformed encoder config ({exc})") from None
        if config.dtype not in ("float32", "float64") or config.pool not in ("global", "tokens"):
            raise EncoderError(f"{where}: malformed encoder config (dtype or pool)")
        return config

    def info(self) -> DatasetInfo:
        """The facts a tokenizer is built from (the pretraining data's, or stand-ins)."""
        return DatasetInfo(
            name=self.dataset or "encoder",
            modality=self.modality,  # type: ignore[arg-type]
            input_shape=self.input_shape,
            patch=self.patch,
            num_classes=self.num_classes,
            metric=self.metric,  # type: ignore[arg-type]
            vocab_size=self.vocab_size,
        )

    def encoder_spec(self) -> EncoderSpec:
        enc = self.encoder
        return EncoderSpec(
            width=int(enc["width"]),
            depth=int(enc["depth"]),
            heads=int(enc["heads"]),
            mlp_ratio=float(enc["mlp_ratio"]),
            dropout=0.0,
            qkv_bias=bool(enc.get("qkv_bias", False)),
        )

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


def spec_sha256(spec: RunSpec) -> str:
    """The resolved spec's hash: sha256 of its canonical JSON (sorted keys)."""
    text = json.dumps(spec_to_dict(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_from_spec(
    spec: RunSpec,
    info: DatasetInfo,
    eval_metric: str,
    step: int,
    with_decoder: bool,
    version: str,
    dtype: str,
) -> EncoderConfig:
    """The config of the encoder ``spec`` trains on data ``info`` (``model.patch`` applied);
    ``eval_metric``: the probe's metric (per-token features for token_accuracy)."""
    model = spec.model
    return EncoderConfig(
        modality=info.modality,
        input_shape=tuple(info.input_shape),
        patch=tuple(info.patch),
        vocab_size=info.vocab_size,
        encoder=spec_to_dict(model.encoder),
        dtype=dtype,
        pool="tokens" if eval_metric == "token_accuracy" else "global",
        dataset=info.name,
        num_classes=info.num_classes,
        metric=info.metric,
        decoder=spec_to_dict(model.decoder) if with_decoder else None,
        metamask_version=version,
        spec_sha256=spec_sha256(spec),
        step=step,
        data={"seed": spec.seed, "val_fraction": spec.data.val_fraction},
    )


class PretrainedEncoder(nn.Module):
    """Tokenizer + fixed positions + encoder blocks: a pretrained encoder as a plain module.

    ``features(x)``: the pooled features the linear probe reads (mean of the encoded tokens,
    or per token for token-level labels); ``tokens(x)``: every token's encoding (B, L, D).
    Dropout follows the module's mode (built in eval mode; ``train()`` for fine-tuning).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.encoder_spec()
        with torch.random.fork_rng(devices=[]):  # building draws an init: keep the caller's RNG
            self.tokenizer: Tokenizer = build_tokenizer(config.info(), spec.width)
            self.encoder = Encoder(self.tokenizer.grid, spec)
        self.pool: Pool = config.pool
        if config.torch_dtype != torch.float32:
            self.to_dtype(config.torch_dtype)
        self.eval()

    @property
    def width(self) -> int:
        return self.encoder.width

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.cls_token.dtype

    def to_dtype(self, dtype: torch.dtype) -> PretrainedEncoder:
        """Parameters in ``dtype``, the positions computed anew in it (as the run's model)."""
        self.to(dtype)
        device = self.encoder.pos_embed.device
        self.encoder.pos_embed = sincos_grid(self.encoder.width, self.encoder.grid, dtype)[None]
        self.encoder.pos_embed = self.encoder.pos_embed.to(device)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs -> positioned tokens (B, L, D), as the run's model embeds them."""
        if x.is_floating_point() and x.dtype != self.dtype:
            x = x.to(self.dtype)
        return self.tokenizer(x) + self.encoder.pos_embed

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every token's encoding (B, L, D): the encoder on all tokens, after its LayerNorm."""
        return self.encoder(self.embed(x))[:, 1:]

    def features(self, x: torch.Tensor, pool: Pool | None = None) -> torch.Tensor:
        """The probe's features: global mean of the tokens (B, D), per token (B, L, D) for
        token-level labels, or ``pool="cls"``: the CLS token (B, D)."""
        latent = self.encoder(self.embed(x))
        how = pool or self.pool
        if how == "global":
            return latent[:, 1:].mean(dim=1)
        if how == "tokens":
            return latent[:, 1:]
        return latent[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def model_state(mae: nn.Module, with_decoder: bool) -> dict[str, torch.Tensor]:
    """The weights an export holds: ``tokenizer.*``, ``encoder.*`` (positions included) and,
    ``with_decoder``, ``decoder.*``; contiguous copies on the CPU."""
    state: dict[str, torch.Tensor] = {}
    parts = ("tokenizer", "encoder", "decoder") if with_decoder else ("tokenizer", "encoder")
    for part in parts:
        module = getattr(mae, part)
        for key, value in module.state_dict().items():
            state[f"{part}.{key}"] = value.detach().cpu().contiguous().clone()
        if part != "tokenizer":  # the fixed positions: a buffer left out of state_dict()
            state[f"{part}.pos_embed"] = module.pos_embed.detach().cpu().contiguous().clone()
    return state

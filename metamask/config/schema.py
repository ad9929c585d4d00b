"""The spec schema: the typed, frozen dataclasses a run spec becomes, and the backbone presets.

Each field's comment says what it means; :mod:`metamask.config.parse` fills them strictly from
the mapping that :mod:`metamask.config.files` reads (``extends:`` merged, ``--set`` applied).
A numeric field's type names its valid range (``Count``: >= 1, ``Ratio``: in (0, 1), ...; see
:mod:`metamask.ranges`), which the parser checks where the spec is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from metamask.config.arrays import ArraySource
from metamask.ranges import Count, NonNegative, NonNegativeInt, Positive, Rate, Ratio, Seed


@dataclass(frozen=True)
class AugmentSpec:
    """Train-split augmentation (metamask.data.augment; docs/datasets.md). All off by default:
    MetaMAE and DABS pretrain on the data as it is."""

    crop_pad: NonNegativeInt = 0  # image2d: random crop with this much zero padding (CIFAR: 4)
    flip: bool = False  # image2d: horizontal flip with p=0.5 (never for digits, text, ...)
    cutout: NonNegativeInt = 0  # image2d: one zeroed square of this side (published: 16, off)
    shift: NonNegativeInt = 0  # signal1d: random time shift of up to this many steps, zero-filled


@dataclass(frozen=True)
class DataSpec:
    dataset: str  # registered dataset name; `metamask datasets` lists them
    batch_size: Count = 32  # every node's batch size (per process); a node's batch_size overrides
    data_root: str | None = None  # folder holding real DABS data; embedded datasets ignore it
    val_fraction: Ratio = 0.2  # share of the training split held out for model selection
    drop_last: bool = True  # drop the last incomplete pretraining batch
    arrays: ArraySource | None = None  # your own .npz/.csv data, named `dataset` (docs/datasets.md)
    # augmented views of the training split for the graph's nodes (never val/test/probe/fine-tune)
    augment: AugmentSpec = field(default_factory=AugmentSpec)


@dataclass(frozen=True)
class EncoderSpec:
    width: Count = 256  # token width D
    depth: Count = 12  # number of Transformer blocks
    heads: Count = 8  # attention heads
    mlp_ratio: Positive = 2.0  # MLP hidden width / D
    dropout: Rate = 0.1  # dropout on input tokens and inside blocks (attention proj, MLP)
    qkv_bias: bool = False  # biases on the attention's q, k, v (published MAE ViTs have them)


@dataclass(frozen=True)
class DecoderSpec:
    width: Count = 128  # decoder width D_dec
    depth: NonNegativeInt = 4  # decoder blocks (a deep one matters outside vision); 0 allowed
    heads: Count = 4  # attention heads
    mlp_ratio: Positive = 2.0  # MLP hidden width / D_dec


# Backbone presets: `model.backbone` picks one; `model.encoder` / `model.decoder` keys override it.
BACKBONES: dict[str, dict[str, dict[str, Any]]] = {
    # the DABS backbone used by MetaMAE (docs/methods.md §1)
    "dabs": {
        "encoder": {"width": 256, "depth": 12, "heads": 8, "mlp_ratio": 2.0, "dropout": 0.1},
        "decoder": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0},
    },
    # a CPU-friendly backbone for demos on the embedded datasets
    "small": {
        "encoder": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0, "dropout": 0.1},
        "decoder": {"width": 64, "depth": 4, "heads": 4, "mlp_ratio": 2.0},
    },
    # a few thousand parameters: unit tests
    "tiny": {
        "encoder": {"width": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0, "dropout": 0.0},
        "decoder": {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    },
}


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "small"  # preset in BACKBONES; encoder/decoder keys override its values
    encoder: EncoderSpec = field(default_factory=EncoderSpec)  # filled from the preset
    decoder: DecoderSpec = field(default_factory=DecoderSpec)  # filled from the preset
    mask_ratio: Ratio = 0.75  # share of tokens masked (per sample, round-down of kept tokens)
    norm_pix: bool = False  # per-token normalised reconstruction targets (continuous inputs)
    patch: list[Count] | None = None  # overrides the dataset's patch, e.g. [2, 2] (MLO-MAE)
    # start weights: a metamask export or run folder, or a timm / facebookresearch/mae ViT
    # state dict (.pth, .safetensors); loaded before step 1, never on resume
    # (docs/using-encoders.md)
    init_from: str | None = None
    init_strict: bool = True  # false: load what fits, list what does not in results.json


@dataclass(frozen=True)
class OptimizerSpec:
    """A node's optimizer. A node's ``optimizer:`` mapping fills what it leaves out from these
    defaults (``{lr: 0.1}`` is AdamW with weight decay 1e-4), and a node with parameters and no
    ``optimizer:`` takes them all; ``metamask show`` prints each node's resolved one."""

    type: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: Positive = 1e-4  # peak learning rate
    weight_decay: NonNegative = 1e-4  # decoupled (adamw) or L2 (adam, sgd) weight decay
    betas: tuple[Rate, Rate] = (0.9, 0.999)  # Adam betas
    momentum: Rate = 0.0  # SGD momentum
    schedule: Literal["constant", "cosine"] = "constant"  # learning-rate schedule over the run
    warmup_steps: NonNegativeInt = 0  # linear warm-up steps (node-local steps)
    no_decay_bias_norm: bool = False  # exempt biases and norm weights from weight decay


@dataclass(frozen=True)
class EstimatorSpec:
    """A hypergradient estimator: `type` plus its own options (validated by the estimator)."""

    type: str = "first_order"  # registered estimator name (metamask.hypergrad)
    options: Mapping[str, Any] = field(default_factory=dict)  # estimator-specific options


@dataclass(frozen=True)
class NodeSpec:
    """One Betty problem. Keys other than the common ones are the node type's own options."""

    type: str  # registered node type (adapt, reconstruct, ...)
    unroll_steps: Count = 1  # local steps before the upper nodes step (Betty unroll)
    optimizer: OptimizerSpec | None = None  # None: the node has no persistent parameters
    hypergradient: EstimatorSpec = field(default_factory=EstimatorSpec)  # toward its uppers
    # true: accept an estimator that cannot be exact on this node's graph shape (darts, sama or
    # unrolled on a node with lowers of its own: they hold those lowers fixed, as Betty does)
    approximate: bool = False
    # this node's batches (per process); None: data.batch_size. A small validation node (a head
    # on a held-out split) can then draw smaller batches than the pretraining nodes
    batch_size: Count | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # node-type options (flat in YAML)


@dataclass(frozen=True)
class GraphSpec:
    nodes: Mapping[str, NodeSpec]  # name -> node, in build order
    u2l: Mapping[str, list[str]] = field(default_factory=dict)  # upper -> lowers it differentiates
    l2u: Mapping[str, list[str]] = field(default_factory=dict)  # lower -> uppers it triggers


@dataclass(frozen=True)
class TrainSpec:
    steps: Count = 1000  # engine iterations (one step of every leaf node each)
    log_every: Count = 10  # write metrics.jsonl every N engine iterations
    checkpoint_every: NonNegativeInt = 0  # 0: checkpoint only at the end
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: NonNegativeInt = 0  # torch CPU threads; 0 keeps torch's default
    on_nonfinite: Literal["stop", "skip"] = "stop"  # NaN/inf loss or gradient: stop, or skip it
    # forward passes under autocast (bf16, fp16 + loss scaling); weights, optimizer state and
    # hypergradients stay fp32 (metamask.precision, docs/performance.md)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # the auto-encoder's parameters, buffers (sin-cos positions built in it) and inputs:
    # float64 to check gradients against closed forms and finite differences (docs/graphs.md)
    dtype: Literal["float32", "float64"] = "float32"
    # also write the logged scalars as TensorBoard event files in OUT/tensorboard/ (needs the
    # `tensorboard` package: pip install 'metamask[tensorboard]'; docs/long-runs.md)
    tensorboard: bool = False
    # torch.compile the encoder and decoder (their twice-differentiated passes stay eager);
    # off by default: on a CPU compiling takes minutes and did not pay in short runs
    # (docs/performance.md)
    compile: bool = False


@dataclass(frozen=True)
class ProbeSpec:
    epochs: Count = 100  # linear-probe epochs (docs/methods.md §2.5)
    lr: Positive = 1e-4  # Adam learning rate
    weight_decay: NonNegative = 1e-4  # Adam weight decay
    batch_size: Count = 64  # probe batch size
    # z-score every feature with the training split's mean and std before the head (as MAE's
    # BatchNorm without affine): the best linear classifier is the same, but Adam reaches it
    # in the budget even when a method's features vary little between samples
    standardize: bool = True


@dataclass(frozen=True)
class FinetuneSpec:
    epochs: Count = 20  # full fine-tuning epochs (encoder + head); published MLO-MAE: 100
    lr: Positive = 1e-3  # AdamW peak learning rate (linear warm-up, then cosine per iteration)
    weight_decay: NonNegative = 0.05  # AdamW weight decay
    batch_size: Count = 64  # fine-tuning batch size
    warmup_epochs: NonNegativeInt = 1  # linear warm-up
    pool: Literal["global", "cls"] = "global"  # feature the new head reads (token labels: tokens)


@dataclass(frozen=True)
class EvalSpec:
    probe: ProbeSpec = field(default_factory=ProbeSpec)  # linear probe on frozen features
    enabled: bool = True  # evaluate at the end of `metamask run`
    dataset: str | None = None  # probe another dataset of the same input shape (DABS transfer)
    finetune: FinetuneSpec | None = None  # also fine-tune a copy of the encoder (None: skip)


@dataclass(frozen=True)
class RunSpec:
    name: str  # run name (results and tables)
    data: DataSpec  # what to pretrain and evaluate on
    graph: GraphSpec  # the optimization graph
    model: ModelSpec = field(default_factory=ModelSpec)  # the masked auto-encoder
    train: TrainSpec = field(default_factory=TrainSpec)  # the budget and the device
    eval: EvalSpec = field(default_factory=EvalSpec)  # the evaluation after pretraining
    seed: Seed = 0  # seeds torch, numpy, python, the splits and the masks
    description: str = ""  # free text shown by `metamask show`
    # Python modules imported before the graph is built: your own estimators, node types or
    # datasets register themselves on import (metamask.config.imports, docs/hypergradients.md)
    imports: list[str] = field(default_factory=list)


# the keys every node has; the others are its node type's own options (flat in YAML)
NODE_COMMON_KEYS = (
    "type",
    "unroll_steps",
    "optimizer",
    "hypergradient",
    "approximate",
    "batch_size",
)

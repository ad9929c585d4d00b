"""Run specs: YAML files turned into typed, frozen dataclasses, strictly.

A spec (``problems/<method>-<dataset>.yaml``) names the data, the model, the optimization graph
(Betty nodes and their edges), the training budget and the evaluation. Every key is checked: an
unknown key, a value of the wrong type or a malformed file raises :class:`ConfigError` with the
file and the dotted key path in one line. Node-type options and estimator options are validated
later by the node type / estimator that owns them, with the same :func:`parse_dataclass`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from metamask.data.user_arrays import ArraySource
from metamask.errors import ConfigError, did_you_mean

T = TypeVar("T")

# ----------------------------------------------------------------------------------------------
# the schema
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    dataset: str  # registered dataset name; `metamask datasets` lists them
    batch_size: int = 32  # pretraining batch size (per process)
    data_root: str | None = None  # folder holding real DABS data; embedded datasets ignore it
    val_fraction: float = 0.2  # share of the training split held out for model selection
    drop_last: bool = True  # drop the last incomplete pretraining batch
    arrays: ArraySource | None = None  # your own .npz/.csv data, named `dataset` (docs/datasets.md)


@dataclass(frozen=True)
class EncoderSpec:
    width: int = 256  # token width D
    depth: int = 12  # number of Transformer blocks
    heads: int = 8  # attention heads
    mlp_ratio: float = 2.0  # MLP hidden width / D
    dropout: float = 0.1  # dropout on input tokens and inside blocks (attention proj, MLP)


@dataclass(frozen=True)
class DecoderSpec:
    width: int = 128  # decoder width D_dec
    depth: int = 4  # decoder blocks (MetaMAE: a deep decoder matters outside vision)
    heads: int = 4  # attention heads
    mlp_ratio: float = 2.0  # MLP hidden width / D_dec


# Backbone presets: `model.backbone` picks one; `model.encoder` / `model.decoder` keys override it.
BACKBONES: dict[str, dict[str, dict[str, Any]]] = {
    # the DABS backbone used by MetaMAE (SPEC §1)
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
    mask_ratio: float = 0.75  # share of tokens masked (per sample, round-down of kept tokens)
    norm_pix: bool = False  # per-token normalised reconstruction targets (continuous inputs)
    patch: list[int] | None = None  # overrides the dataset's patch, e.g. [2, 2] (MLO-MAE)


@dataclass(frozen=True)
class OptimizerSpec:
    type: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 1e-4  # decoupled (adamw) or L2 (adam, sgd) weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas
    momentum: float = 0.0  # SGD momentum
    schedule: Literal["constant", "cosine"] = "constant"  # learning-rate schedule over the run
    warmup_steps: int = 0  # linear warm-up steps (node-local steps)
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
    unroll_steps: int = 1  # local steps before the upper nodes step (Betty unroll)
    optimizer: OptimizerSpec | None = None  # None: the node has no persistent parameters
    hypergradient: EstimatorSpec = field(default_factory=EstimatorSpec)  # toward its uppers
    options: Mapping[str, Any] = field(default_factory=dict)  # node-type options (flat in YAML)


@dataclass(frozen=True)
class GraphSpec:
    nodes: Mapping[str, NodeSpec]  # name -> node, in build order
    u2l: Mapping[str, list[str]] = field(default_factory=dict)  # upper -> lowers it differentiates
    l2u: Mapping[str, list[str]] = field(default_factory=dict)  # lower -> uppers it triggers


@dataclass(frozen=True)
class TrainSpec:
    steps: int = 1000  # engine iterations (one step of every leaf node each)
    log_every: int = 10  # write metrics.jsonl every N engine iterations
    checkpoint_every: int = 0  # 0: checkpoint only at the end
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    on_nonfinite: Literal["stop", "skip"] = "stop"  # NaN/inf loss or gradient: stop, or skip it


@dataclass(frozen=True)
class ProbeSpec:
    epochs: int = 100  # linear-probe epochs (SPEC §2)
    lr: float = 1e-4  # Adam learning rate
    weight_decay: float = 1e-4  # Adam weight decay
    batch_size: int = 64  # probe batch size
    # z-score every feature with the training split's mean and std before the head (as MAE's
    # BatchNorm without affine): the best linear classifier is the same, but Adam reaches it
    # in the budget even when a method's features vary little between samples
    standardize: bool = True


@dataclass(frozen=True)
class FinetuneSpec:
    epochs: int = 20  # full fine-tuning epochs (encoder + head); published MLO-MAE: 100
    lr: float = 1e-3  # AdamW peak learning rate (linear warm-up, then cosine per iteration)
    weight_decay: float = 0.05  # AdamW weight decay
    batch_size: int = 64  # fine-tuning batch size
    warmup_epochs: int = 1  # linear warm-up
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
    seed: int = 0  # seeds torch, numpy, python, the splits and the masks
    description: str = ""  # free text shown by `metamask show`


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> RunSpec:
    """Read a YAML run spec, apply ``key.path=value`` overrides and validate it."""
    path = Path(path)
    raw = read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    return spec_from_dict(raw, source=str(path))


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from ``path``; missing or malformed files raise ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: spec file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_kind(data)}")
    return data


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a raw spec dict; the value is parsed as YAML (``1e-3``, ``[1]``)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key.path=value")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {item}: value {text!r} is not valid YAML") from None
    parts = key.strip().split(".")
    node: dict[str, Any] = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {item}: '{where}' is {_kind(child)}, not a mapping")
        node = child
    node[parts[-1]] = value


NODE_COMMON_KEYS = ("type", "unroll_steps", "optimizer", "hypergradient")


def spec_from_dict(raw: Mapping[str, Any], source: str = "<spec>") -> RunSpec:
    """Validate a raw spec mapping (as read from YAML) into a :class:`RunSpec`."""
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    model = data.get("model", {})
    if isinstance(model, dict):
        data["model"] = _apply_backbone(model, source)
    graph = data.get("graph")
    if isinstance(graph, dict) and isinstance(graph.get("nodes"), dict):
        graph["nodes"] = {
            name: _split_node(node, f"graph.nodes.{name}", source)
            for name, node in graph["nodes"].items()
        }
    return parse_dataclass(RunSpec, data, source=source)


def _apply_backbone(model: dict[str, Any], source: str) -> dict[str, Any]:
    name = model.get("backbone", ModelSpec.backbone)
    if not isinstance(name, str) or name not in BACKBONES:
        hint = did_you_mean(str(name), BACKBONES)
        raise ConfigError(
            f"{source}: model.backbone: unknown backbone {name!r}{hint}; "
            f"expected one of {sorted(BACKBONES)}"
        )
    out = dict(model)
    for part in ("encoder", "decoder"):
        user = model.get(part, {})
        if not isinstance(user, dict):
            raise ConfigError(f"{source}: model.{part}: expected a mapping, got {_kind(user)}")
        out[part] = {**BACKBONES[name][part], **user}
    return out


def node_spec_from_dict(raw: Mapping[str, Any], where: str, source: str = "<spec>") -> NodeSpec:
    """One node as written in YAML (type, common keys, the type's options flat) -> NodeSpec."""
    return parse_dataclass(NodeSpec, _split_node(dict(raw), where, source), source, where)


def _split_node(node: Any, where: str, source: str) -> Any:
    """Move a node's type-specific keys under `options` and an estimator's under its options."""
    if not isinstance(node, dict):
        return node
    common = {k: v for k, v in node.items() if k in NODE_COMMON_KEYS}
    options = {k: v for k, v in node.items() if k not in NODE_COMMON_KEYS}
    estimator = common.get("hypergradient")
    if isinstance(estimator, str):
        estimator = {"type": estimator}
    if isinstance(estimator, dict):
        common["hypergradient"] = {
            "type": estimator.get("type", EstimatorSpec.type),
            "options": {k: v for k, v in estimator.items() if k != "type"},
        }
    elif estimator is not None:
        raise ConfigError(
            f"{source}: {where}.hypergradient: expected a mapping with 'type', "
            f"got {_kind(estimator)}"
        )
    return {**common, "options": options}


# ----------------------------------------------------------------------------------------------
# strict dataclass conversion
# ----------------------------------------------------------------------------------------------


def parse_dataclass(cls: type[T], data: Any, source: str = "<spec>", where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and value type.

    Args:
        cls: a (frozen) dataclass type; fields may be nested dataclasses, ``X | None``,
            ``Literal[...]``, ``tuple[...]``, ``list[X]``, ``Mapping[str, X]`` or scalars.
        data: the mapping read from YAML.
        source: the file name used in error messages.
        where: the dotted key path of ``data`` inside the file.

    Raises:
        ConfigError: naming ``source`` and the dotted key of the first bad entry.
    """
    label = where or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {label}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"{source}: {_join(where, str(key))}: unknown key{did_you_mean(str(key), fields)}; "
                f"expected one of {sorted(fields)}"
            )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], source, _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: {_join(where, name)}: required key is missing")
    return cls(**values)


def _convert(tp: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                return _convert(option, value, source, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            hint = did_you_mean(str(value), [str(a) for a in args])
            raise ConfigError(
                f"{source}: {where}: expected one of {list(args)}, got {value!r}{hint}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, source, where)  # type: ignore[arg-type]
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {where}: expected a mapping, got {_kind(value)}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, source, _join(where, str(k))) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {where}: expected a list, got {_kind(value)}")
        return [_convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {where}: expected a list, got {_kind(value)}")
        return tuple(_convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(
                f"{source}: {where}: expected a list of {len(args)} values, got {value!r}"
            )
        return tuple(
            _convert(a, v, source, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads `1e-4` (no dot) as a string
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"parse_dataclass: unsupported field type {tp!r} at {where}")


def spec_to_dict(spec: Any) -> Any:
    """A JSON/YAML-ready view of a spec: dataclasses, mappings and tuples as plain data."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return {f.name: spec_to_dict(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    if isinstance(spec, Mapping):
        return {str(k): spec_to_dict(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [spec_to_dict(v) for v in spec]
    return spec


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )

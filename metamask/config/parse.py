"""Strict parsing: a raw spec mapping -> typed dataclasses, and typed specs back to plain data.

Every key is checked: an unknown key, a value of the wrong type or outside its declared range
(:mod:`metamask.ranges`) raises :class:`ConfigError` in one line naming the file and the dotted
key. For a spec merged from several files (``extends:``)
the file named is the one that wrote the key (:mod:`metamask.config.origins`). Node-type and
estimator options are validated later by their owners, with the same :func:`parse_dataclass`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml

from metamask.config.imports import check_module_names
from metamask.config.origins import KeyOrigins, origin_of, remember
from metamask.config.schema import (
    BACKBONES,
    NODE_COMMON_KEYS,
    EstimatorSpec,
    ModelSpec,
    NodeSpec,
    RunSpec,
)
from metamask.errors import ConfigError, SpecDeprecation, did_you_mean
from metamask.ranges import range_of

T = TypeVar("T")


def spec_from_dict(
    raw: Mapping[str, Any], source: str = "<spec>", origins: KeyOrigins | None = None
) -> RunSpec:
    """Validate a raw spec mapping (as read from YAML) into a :class:`RunSpec`.

    ``origins`` (from :func:`metamask.config.files.read_spec_file`) says which file wrote each
    key; errors then name that file, here and when nodes validate their options later.
    """
    remember(source, origins)
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
    spec = parse_dataclass(RunSpec, data, source=source)
    check_module_names(spec.imports, source)  # their form only: imported when built
    for part in ("encoder", "decoder"):  # what attention needs, said before a model is built
        block = getattr(spec.model, part)
        if block.width % block.heads:
            raise _error(
                source,
                f"model.{part}.heads",
                f"{block.heads} heads do not divide the {part} width {block.width}; "
                "expected a divisor of the width",
            )
    return spec


def _apply_backbone(model: dict[str, Any], source: str) -> dict[str, Any]:
    name = model.get("backbone", ModelSpec.backbone)
    if not isinstance(name, str) or name not in BACKBONES:
        hint = did_you_mean(str(name), BACKBONES)
        raise _error(
            source,
            "model.backbone",
            f"unknown backbone {name!r}{hint}; expected one of {sorted(BACKBONES)}",
        )
    out = dict(model)
    for part in ("encoder", "decoder"):
        user = model.get(part, {})
        if not isinstance(user, dict):
            raise _error(source, f"model.{part}", f"expected a mapping, got {_kind(user)}")
        out[part] = {**BACKBONES[name][part], **user}
    return out


def node_spec_from_dict(raw: Mapping[str, Any], where: str, source: str = "<spec>") -> NodeSpec:
    """One node as written in YAML (type, common keys, the type's options flat) -> NodeSpec."""
    return parse_dataclass(NodeSpec, _split_node(dict(raw), where, source), source, where)


#: node types whose own ``latent_solver:`` key picks how they solve their per-batch problem;
#: their ``hypergradient:`` is the key's old name (accepted with a SpecDeprecation)
LATENT_SOLVER_NODE_TYPES = ("adapt",)


def _latent_solver_key(node: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    """An adapt node's ``latent_solver`` as a mapping with ``type``; its old name
    ``hypergradient`` moved there with a one-line :class:`SpecDeprecation`."""
    if node.get("type") not in LATENT_SOLVER_NODE_TYPES:
        return node
    node = dict(node)
    if isinstance(node.get("hypergradient"), str | dict):  # else refused as a bad estimator
        key = f"{where}.hypergradient"
        if "latent_solver" in node:
            raise _error(
                source,
                key,
                "an adapt node's latent solver is set by latent_solver:, which is there too; "
                "remove hypergradient (the key's old name on adapt nodes)",
            )
        node["latent_solver"] = node.pop("hypergradient")
        warnings.warn(
            f"{origin_of(source, key)}: {key}: on an adapt node this key is now named "
            "latent_solver (first_order, unrolled or implicit); hypergradient is accepted for "
            "now, and means a graph edge's estimator on every other node",
            SpecDeprecation,
            stacklevel=2,
        )
    solver = node.get("latent_solver")
    if isinstance(solver, str):
        node["latent_solver"] = {"type": solver}
    return node


def _split_node(node: Any, where: str, source: str) -> Any:
    """Move a node's type-specific keys under `options` and an estimator's under its options
    (an adapt node's old ``hypergradient`` first to ``latent_solver``)."""
    if not isinstance(node, dict):
        return node
    node = _latent_solver_key(node, where, source)
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
        raise _error(
            source,
            f"{where}.hypergradient",
            f"expected a mapping with 'type', got {_kind(estimator)}",
        )
    return {**common, "options": options}


def parse_dataclass(cls: type[T], data: Any, source: str = "<spec>", where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and value type.

    Args:
        cls: a (frozen) dataclass type; fields may be nested dataclasses, ``X | None``,
            ``Literal[...]``, ``tuple[...]``, ``list[X]``, ``Mapping[str, X]`` or scalars;
            a scalar may carry a range (``Annotated[int, Range(1)]``, :mod:`metamask.ranges`),
            checked here.
        data: the mapping read from YAML.
        source: the spec's file name used in error messages; for a spec loaded from files,
            errors name the (base) file that wrote the bad key instead.
        where: the dotted key path of ``data`` inside the file.

    Raises:
        ConfigError: naming the file and the dotted key of the first bad entry.
    """
    if not isinstance(data, Mapping):
        raise _error(source, where, f"expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls, include_extras=True)  # keep the declared ranges
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise _error(
                source,
                _join(where, str(key)),
                f"unknown key{did_you_mean(str(key), fields)}; expected one of {sorted(fields)}",
            )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], source, _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _error(source, _join(where, name), "required key is missing")
    return cls(**values)


def _convert(tp: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:  # a declared range (metamask.ranges): the value's type, then bounds
        converted = _convert(args[0], value, source, where)
        bounds = range_of(tp.__metadata__)
        if bounds is not None and not bounds.contains(converted):
            kind = "an integer" if args[0] is int else "a number"
            shown = value if isinstance(value, str) else repr(value)  # `1e-3` reads as a string
            raise _error(source, where, f"expected {kind} {bounds.describe()}, got {shown}")
        return converted
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
            raise _error(source, where, f"expected one of {list(args)}, got {value!r}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, source, where)  # type: ignore[arg-type]
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _error(source, where, f"expected a mapping, got {_kind(value)}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, source, _join(where, str(k))) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise _error(source, where, f"expected a list, got {_kind(value)}")
        return [_convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise _error(source, where, f"expected a list, got {_kind(value)}")
        return tuple(_convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _error(source, where, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _convert(a, v, source, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise _error(source, where, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(source, where, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads `1e-4` (no dot) as a string
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _error(source, where, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _error(source, where, f"expected a string, got {value!r}")
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


def spec_to_yaml_dict(spec: RunSpec) -> dict[str, Any]:
    """The spec as a standalone YAML spec with every value spelled out: :func:`spec_to_dict`
    with each node's options and its estimator's options flat again, as a spec writes them
    (``metamask show SPEC --resolved``; loading it gives ``spec`` back)."""
    return written_form(spec_to_dict(spec))


def written_form(plain: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`spec_to_dict`'s plain data (e.g. a checkpoint's spec) in the form a spec file
    has, which :func:`spec_from_dict` reads: each node's options and its estimator's options
    flat again. A copy; missing parts stay missing."""
    data: dict[str, Any] = copy.deepcopy(dict(plain))
    nodes = data.get("graph", {}).get("nodes")
    if not isinstance(nodes, dict):
        return data
    for name, node in nodes.items():
        options = node.pop("options", None) or {}
        estimator = node.get("hypergradient") or {}
        node["hypergradient"] = {
            "type": estimator.get("type", "first_order"),
            **(estimator.get("options") or {}),
        }
        if node.get("type") in LATENT_SOLVER_NODE_TYPES and node["hypergradient"] == {
            "type": "first_order"
        }:  # its latent_solver says how it solves; a saved old form keeps its hypergradient
            del node["hypergradient"]
        nodes[name] = {**node, **options}
    return data


def spec_to_yaml(spec: RunSpec) -> str:
    """:func:`spec_to_yaml_dict` as YAML text, nested mappings of scalars on one line."""
    text: str = yaml.safe_dump(
        spec_to_yaml_dict(spec), sort_keys=False, default_flow_style=None, width=1_000_000
    )
    return text


def _error(source: str, where: str, text: str) -> ConfigError:
    """``<file>: <key>: <text>``, the file being the one that wrote ``where``."""
    return ConfigError(f"{origin_of(source, where)}: {where or 'top level'}: {text}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )

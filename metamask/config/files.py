"""Spec files: reading YAML, composing files with ``extends:`` and applying ``--set`` overrides.

A spec may start with ``extends: <path>`` or ``extends: [<path>, ...]`` (relative to the file
that says it). Each base is read the same way (its own ``extends:`` first), the bases are
deep-merged in the order listed, then the file's own keys on top: mappings merge key by key,
anything else (scalars, lists) replaces what was there; a key keeps its first position, so
``graph.nodes`` keep their build order. A base that says ``fragment: true`` is only a part of
other specs; running it directly is refused. ``docs/specs.md`` shows the layout of problems/.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from metamask.config.origins import KeyOrigins
from metamask.config.parse import _kind, spec_from_dict
from metamask.config.schema import RunSpec
from metamask.errors import ConfigError

EXTENDS = "extends"
FRAGMENT = "fragment"


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> RunSpec:
    """Read a YAML run spec (its ``extends:`` merged), apply ``key.path=value`` overrides and
    validate it; errors name the file, base or ``--set`` that wrote the bad key."""
    path = Path(path)
    raw, origins = read_spec_file(path)
    fragment = raw.pop(FRAGMENT, False)
    if not isinstance(fragment, bool):
        raise ConfigError(f"{path}: {FRAGMENT}: expected true or false, got {fragment!r}")
    if fragment:
        raise ConfigError(
            f"{path}: {FRAGMENT}: this file is a fragment that specs include with "
            f"`{EXTENDS}:`, not a runnable spec; run a spec that extends it"
        )
    for item in overrides:
        apply_override(raw, item, origins)
    return spec_from_dict(raw, source=str(path), origins=origins)


def read_spec_file(path: Path) -> tuple[dict[str, Any], KeyOrigins]:
    """The mapping in ``path`` with its ``extends:`` merged in, and which file wrote each key.

    The result keeps the file's own ``fragment`` key (the bases' are dropped) and no ``extends``.
    """
    return _compose(path, str(path), ())


def _compose(
    path: Path, label: str, chain: tuple[tuple[Path, str], ...]
) -> tuple[dict[str, Any], KeyOrigins]:
    """``path``'s bases merged in order, then its own keys; ``chain``: the files extending it."""
    own = read_yaml(path)
    merged: dict[str, Any] = {}
    origins = KeyOrigins(label)
    chain = (*chain, (path.resolve(), label))
    for base, base_label in _bases(own.pop(EXTENDS, None), path, label, chain):
        part, part_origins = _compose(base, base_label, chain)
        part.pop(FRAGMENT, None)
        merge_into(merged, part, origins, part_origins)
    merge_into(merged, own, origins, label)
    return merged, origins


def _bases(
    value: Any, path: Path, label: str, chain: tuple[tuple[Path, str], ...]
) -> list[tuple[Path, str]]:
    """The files named by an ``extends:`` value, checked: strings, present, no cycle."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            f"{label}: {EXTENDS}: expected a file path or a list of file paths, got {_kind(value)}"
        )
    bases = []
    for name in names:
        base = path.parent / name
        base_label = os.path.normpath(Path(label).parent / name)
        if not base.is_file():
            raise ConfigError(f"{label}: {EXTENDS}: base file {base_label} not found")
        seen = [resolved for resolved, _ in chain]
        if base.resolve() in seen:
            loop = [text for _, text in chain[seen.index(base.resolve()) :]] + [base_label]
            raise ConfigError(f"{label}: {EXTENDS}: a cycle: {' -> '.join(loop)}")
        bases.append((base, base_label))
    return bases


def merge_into(
    target: dict[str, Any],
    overlay: dict[str, Any],
    origins: KeyOrigins | None = None,
    origin: str | KeyOrigins = "<overlay>",
    where: str = "",
) -> None:
    """Deep-merge ``overlay`` into ``target``: mappings key by key, anything else replaced.

    ``origins`` (when given) learns who wrote each replaced or new key: the file ``origin``,
    or, for a merged base, the file its own origins name. A mapping merged into one already
    there keeps the origin of the first.
    """
    for key, value in overlay.items():
        path = f"{where}.{key}" if where else str(key)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_into(target[key], value, origins, origin, path)
            continue
        target[key] = copy.deepcopy(value)
        if origins is not None:
            origins.record(path, value, origin)


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


def apply_override(raw: dict[str, Any], item: str, origins: KeyOrigins | None = None) -> None:
    """Set ``a.b.c=value`` in a raw spec dict; the value is parsed as YAML (``1e-3``, ``[1]``).

    ``origins`` (when given) records ``--set`` as the origin of the key and of any mapping the
    override creates, so that a bad value is reported as coming from ``--set``.
    """
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
        where = ".".join(parts[: depth + 1])
        if part not in node and origins is not None:
            origins.record(where, {}, "--set")
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item}: '{where}' is {_kind(child)}, not a mapping")
        node = child
    node[parts[-1]] = value
    if origins is not None:
        origins.record(".".join(parts), value, "--set")

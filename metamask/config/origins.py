"""Key origins: which file (or ``--set``) wrote each key of a merged spec, for error messages.

A spec that ``extends:`` base files is one mapping merged from several files. A
:class:`KeyOrigins` remembers, per dotted key path, the file that wrote it, so that
:func:`metamask.config.parse.parse_dataclass` can name that file in its errors. Node types and
estimators validate their options later, with the spec's path as ``source``;
:func:`remember` keeps the origins of the last spec loaded from each path so that those errors
name the base file too.
"""

from __future__ import annotations

import re
from typing import Any

_INDEX = re.compile(r"\[\d+\]")


class KeyOrigins:
    """Dotted key path -> the file that wrote it, for one merged spec (``root`` by default)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._files: dict[str, str] = {}

    def record(self, where: str, value: Any, origin: str | KeyOrigins) -> None:
        """``origin`` wrote ``value`` at ``where``, replacing whatever was there; ``origin`` is a
        file, or the origins of a base whose merged keys ``value`` holds."""
        prefix = where + "."
        for key in [k for k in self._files if k == where or k.startswith(prefix)]:
            del self._files[key]
        self._record_tree(where, value, origin)

    def _record_tree(self, where: str, value: Any, origin: str | KeyOrigins) -> None:
        self._files[where] = origin if isinstance(origin, str) else origin.file_for(where)
        if isinstance(value, dict):
            for key, child in value.items():
                self._record_tree(f"{where}.{key}", child, origin)

    def file_for(self, where: str) -> str:
        """The file that wrote ``where`` (``a.b[2]`` -> ``a.b``), else its nearest written
        parent's (a missing key: the file of the mapping that lacks it), else ``root``."""
        key = _INDEX.sub("", where)
        while key:
            if key in self._files:
                return self._files[key]
            key = key.rpartition(".")[0]
        return self.root

    def __repr__(self) -> str:
        return f"KeyOrigins({self.root!r}, {len(self._files)} keys)"


# source label (the spec path as load_spec was given it) -> the origins of its last load
_LOADED: dict[str, KeyOrigins] = {}


def remember(source: str, origins: KeyOrigins | None) -> None:
    """Keep ``origins`` for errors about ``source``; None forgets what was kept for it."""
    if origins is None:
        _LOADED.pop(source, None)
    else:
        _LOADED[source] = origins


def origin_of(source: str, where: str) -> str:
    """The file to name for key ``where`` of the spec labelled ``source``."""
    origins = _LOADED.get(source)
    return origins.file_for(where) if origins is not None and where else source


def located(source: str, where: str, written: str = "") -> str:
    """``<file>: <where>``, the prefix of a one-line error about key ``where`` of the spec
    labelled ``source``: the file named is the base file (or ``--set``) that wrote the key,
    as :func:`metamask.config.parse.parse_dataclass` names it. ``written``: the key whose
    writer to name instead (``...hypergradient.type`` for an error about the estimator: a
    mapping merged from several files keeps the origin of its first writer)."""
    return f"{origin_of(source, written or where)}: {where}"


def located_estimator(source: str, node: str) -> str:
    """:func:`located` for node ``node``'s ``hypergradient``, naming the file that set its
    estimator type (the mapping itself may come from a base that a later file changed)."""
    key = f"graph.nodes.{node}.hypergradient"
    return located(source, key, f"{key}.type")

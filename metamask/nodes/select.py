"""Finding the one neighbour of a role among a node's lowers or feeders, or refusing the graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metamask.errors import GraphError
from metamask.nodes.base import Node


def only_one(nodes: Sequence[Node], kind: type, what: str) -> Any:
    """The one node of ``nodes`` that is a ``kind``; GraphError ``what`` (naming those found)
    when there are none or several."""
    found = [node for node in nodes if isinstance(node, kind)]
    if len(found) != 1:
        raise GraphError(what + f" (found {[node.name for node in found] or 'none'})")
    return found[0]

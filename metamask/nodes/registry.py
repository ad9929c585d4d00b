"""The node-type registry: a spec's ``type: NAME`` -> the builder of that node and its options.

A node type is a builder ``(context, name, node_spec) -> Node`` registered under a name with
its options dataclass (the YAML keys of the node besides ``type``, ``optimizer``,
``hypergradient`` and ``unroll_steps``). The registry imports none of the node types: the
package's ``__init__`` imports them (and so registers them) whenever ``metamask.nodes`` is
imported, as any import of a module below it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metamask.errors import GraphError, did_you_mean

if TYPE_CHECKING:
    from metamask.config import NodeSpec
    from metamask.nodes.base import Node
    from metamask.nodes.context import BuildContext

#: builds one node of a graph: ``(context, node name, node spec) -> node``
NodeBuilder = Callable[["BuildContext", str, "NodeSpec"], "Node"]


@dataclass(frozen=True)
class NodeType:
    """A registered node type: how to build it and which options it takes."""

    name: str
    build: NodeBuilder
    options_type: type
    description: str = ""


NODE_TYPES: dict[str, NodeType] = {}


def register_node_type(
    name: str, options_type: type, description: str = ""
) -> Callable[[NodeBuilder], NodeBuilder]:
    """Decorator: register a node builder under ``name`` (the ``type`` key of a spec's node).

    Raises:
        ValueError: ``name`` is already registered.
    """

    def wrap(build: NodeBuilder) -> NodeBuilder:
        if name in NODE_TYPES:
            raise ValueError(f"node type {name!r} is registered twice")
        NODE_TYPES[name] = NodeType(name, build, options_type, description)
        return build

    return wrap


def get_node_type(name: str, where: str = "") -> NodeType:
    """The registered node type ``name``; GraphError naming ``where`` and the choices."""
    if name not in NODE_TYPES:
        raise GraphError(
            f"{where}: unknown node type {name!r}{did_you_mean(name, NODE_TYPES)}; "
            f"expected one of {sorted(NODE_TYPES)}"
        )
    return NODE_TYPES[name]

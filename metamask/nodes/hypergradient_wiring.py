"""How hypergradients flow through a built graph: the estimator x shape refusals, and the paths
and nested structure each node gets (what :class:`metamask.compose.GraphBuilder` applies after
building the nodes; docs/hypergradients.md, "Graph shapes")."""

from __future__ import annotations

from collections.abc import Mapping

from metamask.config import GraphSpec
from metamask.config.origins import located, located_estimator
from metamask.errors import GraphError
from metamask.hypergrad.registry import get_estimator
from metamask.nodes.base import Node
from metamask.topology import hypergradient_paths, nested_nodes, responds_to, silent_u2l_edges


def check_hypergradient_shapes(
    graph: GraphSpec, nodes: Mapping[str, Node], source: str = "<graph>"
) -> None:
    """Refuse, in one line naming the node, the estimator and the shape, what cannot be exact.

    - a u2l edge through which no path runs (:func:`metamask.topology.silent_u2l_edges`);
    - on a node whose estimator a path applies and that differentiates through explicit lowers
      of its own (a *nested* shape): an estimator without the total Hessian
      (``Estimator.nested``: darts, sama, unrolled, user estimators by default), and a lower
      whose estimator gives no forward response (``Estimator.jvp``: unrolled), unless the
      node's spec says ``approximate: true`` (it then holds its lowers fixed, as Betty).
    """
    for upper, lower in silent_u2l_edges(graph):
        raise GraphError(
            f"{located(source, f'graph.u2l.{upper}')}: '{upper}' differentiates through "
            f"'{lower}', but the "
            f"response of '{lower}' depends on no node that depends on '{upper}' (no path; the "
            f"edge adds zero): remove it, or make '{upper}' an upper of '{lower}' "
            f"(l2u: {{{lower}: [{upper}]}}) if the loss of '{lower}' reads '{upper}'"
        )
    for name, lowers in nested_nodes(graph).items():
        node = nodes[name]
        explicit = [low for low in lowers if not nodes[low].hypergradient_in_graph]
        if not explicit or node.hypergradient_in_graph or graph.nodes[name].approximate:
            continue
        where = located_estimator(source, name)
        shape = f"nested shape: its loss reads the response of its lower(s) {explicit}"
        estimator = get_estimator(node.estimator)
        if not estimator.nested:
            why = (
                "it differentiates the engine's step order, not the nested objective (no "
                "nested mode)"
                if estimator.needs_trajectory
                else "it holds those lowers fixed"
            )
            raise GraphError(
                f"{where}: estimator '{estimator.name}' cannot be exact on node '{name}' "
                f"({shape}; {why}); use cg, implicit_cg, neumann or implicit_neumann, or set "
                f"approximate: true on '{name}'"
            )
        for low in explicit:
            below = get_estimator(nodes[low].estimator)
            if below.jvp is None:
                raise GraphError(
                    f"{located_estimator(source, low)}: estimator '{below.name}' on "
                    f"node '{low}' gives no forward response, which the total Hessian of node "
                    f"'{name}' needs ({shape}); use first_order, cg, implicit_cg, neumann or "
                    f"implicit_neumann on '{low}', or set approximate: true on '{name}'"
                )


def install_paths(graph: GraphSpec, nodes: Mapping[str, Node]) -> None:
    """Give each node the paths of :func:`metamask.topology.hypergradient_paths` in place of
    Betty's (kept, in Betty's order, where they are the same set), and the nested structure
    its estimators read: ``nested_lowers`` (explicit lowers whose responses its loss reads; none
    with ``approximate: true``) and ``responds_to``."""
    named = hypergradient_paths(graph)
    for name, node in nodes.items():
        betty = [[n.name for n in path] for path in node._paths]
        ours = named.get(name, [])
        if sorted(betty) != sorted(ours):
            node._paths = [[nodes[n] for n in path] for path in ours]
        node.responds_to = tuple(nodes[n] for n in responds_to(graph, name))
        if not graph.nodes[name].approximate:
            node.nested_lowers = tuple(
                nodes[low]
                for low in graph.u2l.get(name, [])
                if not nodes[low].hypergradient_in_graph
            )

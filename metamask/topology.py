"""The shape of an optimization graph spec: edge checks, cycles, build order, step periods.

Pure functions of a :class:`~metamask.config.GraphSpec` (names and edges only, no modules), so
``metamask show`` and the builder read the same answers. Betty's two edge kinds: ``u2l``
(the upper node differentiates through the lower's solution) and ``l2u`` (the lower's steps
trigger the upper's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from metamask.config import GraphSpec
from metamask.errors import GraphError, did_you_mean


def validate_graph(graph: GraphSpec, source: str = "<spec>") -> list[str]:
    """Check names, cycles and hypergradient paths; return the node names lowers-first."""
    names = list(graph.nodes)
    for kind, edges in (("u2l", graph.u2l), ("l2u", graph.l2u)):
        for key, targets in edges.items():
            for node in (key, *targets):
                if node not in graph.nodes:
                    raise GraphError(
                        f"{source}: graph.{kind}.{key}: unknown node {node!r}"
                        f"{did_you_mean(node, names)}; the graph's nodes are {names}"
                    )
            if key in targets:
                raise GraphError(
                    f"{source}: graph.{kind}.{key}: a node cannot be its own {kind} edge"
                )
    find_cycle(graph.l2u, "l2u", source)
    find_cycle(graph.u2l, "u2l", source)
    for upper, lowers in graph.u2l.items():
        for lower in lowers:
            if not reaches(graph.l2u, lower, upper):
                raise GraphError(
                    f"{source}: graph.u2l.{upper}: '{upper}' differentiates through '{lower}', but "
                    f"no l2u path leads from '{lower}' up to '{upper}' "
                    f"(add l2u: {{{lower}: [{upper}]}})"
                )
    return order_lowers_first(names, graph.u2l, graph.l2u)


def reaches(edges: Mapping[str, list[str]], src: str, dst: str) -> bool:
    """Whether a path of ``edges`` leads from ``src`` to ``dst``."""
    stack, seen = [src], set()
    while stack:
        node = stack.pop()
        for nxt in edges.get(node, []):
            if nxt == dst:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def find_cycle(edges: Mapping[str, list[str]], kind: str, source: str) -> None:
    """GraphError naming a node on a cycle of ``edges``, if there is one."""
    for start in edges:
        if reaches(edges, start, start):
            raise GraphError(f"{source}: graph.{kind}: the edges form a cycle through '{start}'")


def order_lowers_first(
    names: list[str], u2l: Mapping[str, list[str]], l2u: Mapping[str, list[str]] | None = None
) -> list[str]:
    """Spec order, except that a node comes after its u2l lowers and its l2u feeders."""
    order: list[str] = []
    feeders: dict[str, list[str]] = {}
    for lower, uppers in (l2u or {}).items():
        for upper in uppers:
            feeders.setdefault(upper, []).append(lower)

    def visit(name: str) -> None:
        if name in order:
            return
        for lower in (*u2l.get(name, []), *feeders.get(name, [])):
            visit(lower)
        order.append(name)

    for name in names:
        visit(name)
    return order


def local_step_period(graph: GraphSpec, name: str) -> int:
    """Engine iterations between two steps of node ``name`` (Betty's unroll semantics)."""
    lowers = [lower for lower, uppers in graph.l2u.items() if name in uppers]
    if not lowers:
        return 1
    return max(
        local_step_period(graph, lower) * graph.nodes[lower].unroll_steps for lower in lowers
    )


def checkpoint_period(graph: GraphSpec) -> int:
    """Engine iterations between two points where every unroll window is closed.

    Only there is the graph's whole state in its nodes' state dicts (mid-window, a node may
    hold an unrolled trajectory or its uppers' ready flags): checkpoints and interrupts wait
    for such a point. 1 for MetaMAE and MAE.
    """
    period = 1
    for name, node_spec in graph.nodes.items():
        window = local_step_period(graph, name)
        if graph.l2u.get(name):
            window *= node_spec.unroll_steps
        period = math.lcm(period, window)
    return period

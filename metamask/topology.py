"""The shape of an optimization graph spec: edge checks, cycles, build order, step periods.

Pure functions of a :class:`~metamask.config.GraphSpec` (names and edges only, no modules), so
``metamask show`` and the builder read the same answers. Betty's two edge kinds: ``u2l``
(the upper node differentiates through the lower's solution) and ``l2u`` (the lower's steps
trigger the upper's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from metamask.config import EstimatorSpec, GraphSpec
from metamask.config.origins import located
from metamask.errors import GraphError, did_you_mean


def validate_graph(graph: GraphSpec, source: str = "<spec>") -> list[str]:
    """Check names, cycles and hypergradient paths; return the node names lowers-first."""
    names = list(graph.nodes)
    for kind, edges in (("u2l", graph.u2l), ("l2u", graph.l2u)):
        for key, targets in edges.items():
            for node in (key, *targets):
                if node not in graph.nodes:
                    raise GraphError(
                        f"{located(source, f'graph.{kind}.{key}')}: unknown node {node!r}"
                        f"{did_you_mean(node, names)}; the graph's nodes are {names}"
                    )
            if key in targets:
                raise GraphError(
                    f"{located(source, f'graph.{kind}.{key}')}: a node cannot be its own "
                    f"{kind} edge"
                )
    find_cycle(graph.l2u, "l2u", source)
    find_cycle(graph.u2l, "u2l", source)
    for upper, lowers in graph.u2l.items():
        for lower in lowers:
            if not reaches(graph.l2u, lower, upper):
                raise GraphError(
                    f"{located(source, f'graph.u2l.{upper}')}: '{upper}' differentiates through "
                    f"'{lower}', but "
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


def responds_to(graph: GraphSpec, name: str) -> list[str]:
    """The nodes whose parameters node ``name``'s *response* (its trained value) depends on.

    Two ways, as the edges say them: ``name`` is a bilevel lower of ``upper`` (``u2l {upper:
    [name]}`` *and* ``l2u {name: [upper]}``: it trains on a loss that reads ``upper``), or
    ``name`` is triggered by ``lower`` without differentiating through it (``l2u {lower:
    [name]}``, ``lower`` not among ``u2l[name]``: it trains on ``lower``'s output, held fixed,
    as MLO-MAE's head on the pretrained encoder). A lower that ``name`` differentiates through
    is not one of them: ``name``'s loss reads that lower's response *to* ``name``.
    """
    bilevel = [
        up for up, lows in graph.u2l.items() if name in lows and up in graph.l2u.get(name, [])
    ]
    fed = [
        low
        for low, ups in graph.l2u.items()
        if name in ups and low not in graph.u2l.get(name, []) and low not in bilevel
    ]
    return [*bilevel, *fed]


def hypergradient_paths(graph: GraphSpec) -> dict[str, list[list[str]]]:
    """Every path through which a node's loss depends on its own parameters, by node name.

    Only a node with u2l edges has paths (the others train on their loss alone, as in Betty).
    A path ``[U, n1, ..., nk, U]``: ``U``'s loss reads ``n1`` (``u2l {U: [n1]}``, or ``l2u {n1:
    [U]}``), and each ``n_i``'s response depends on ``n_{i+1}`` (:func:`responds_to`), the last
    one's on ``U``. Unlike Betty's search, which follows l2u edges only, this includes the
    dependencies declared by u2l edges alone: with ``u2l {v: [u], theta: [v, u]}``, ``l2u {u:
    [v], v: [theta]}`` it yields ``[theta, v, theta]`` and ``[theta, u, v, theta]`` ("theta's
    loss reads u*(v*(theta))"), where Betty yields ``[theta, v, theta]`` and the path
    ``[theta, v, u, theta]``, which asks how ``u`` responds to ``theta`` (it does not).
    On MAE, MetaMAE, MLO-MAE and metamae+mask it yields Betty's paths.
    """
    paths: dict[str, list[list[str]]] = {}
    for upper in graph.nodes:
        if not graph.u2l.get(upper):
            continue  # differentiates through nothing: trains on its loss alone (as Betty)
        firsts = list(graph.u2l[upper])
        firsts += [low for low, ups in graph.l2u.items() if upper in ups and low not in firsts]
        found: list[list[str]] = []

        def walk(path: list[str], upper: str = upper, found: list[list[str]] = found) -> None:
            for nxt in responds_to(graph, path[-1]):
                if nxt == upper:
                    found.append([*path, upper])
                elif nxt not in path:
                    walk([*path, nxt])

        for first in firsts:
            walk([upper, first])
        if found:
            paths[upper] = found
    return paths


def silent_u2l_edges(graph: GraphSpec) -> list[tuple[str, str]]:
    """The u2l edges ``(upper, lower)`` through which no path runs: ``lower``'s response
    depends on nothing that depends on ``upper``, so differentiating through it adds zero."""
    paths = hypergradient_paths(graph)
    return [
        (upper, lower)
        for upper, lowers in graph.u2l.items()
        for lower in lowers
        if not any(path[1] == lower for path in paths.get(upper, []))
    ]


def nested_nodes(graph: GraphSpec) -> dict[str, list[str]]:
    """Nodes whose estimator some path applies and that differentiate through lowers of their
    own (a nested shape), with those lowers."""
    applied = {
        name for paths in hypergradient_paths(graph).values() for p in paths for name in p[1:-1]
    }
    return {
        name: list(graph.u2l[name])
        for name in graph.nodes
        if name in applied and graph.u2l.get(name)
    }


def edge_estimator(graph: GraphSpec, name: str, options: bool = False) -> str | None:
    """The estimator of node ``name``'s edges up (its ``l2u`` edges), with its options when
    ``options``; None for a node below nothing, which no estimator ever runs for. The table
    and the picture of ``metamask show`` both label nodes with it."""
    if not graph.l2u.get(name):
        return None
    node = graph.nodes[name]
    solver = node.options.get("latent_solver") if node.type == "adapt" else None
    if isinstance(solver, Mapping):  # an adapt node's latent solver carries its gradient
        spec = EstimatorSpec(
            str(solver.get("type")), {k: v for k, v in solver.items() if k != "type"}
        )
    else:
        spec = node.hypergradient
    if options and spec.options:
        return spec.type + " " + ", ".join(f"{k}={v}" for k, v in spec.options.items())
    return spec.type


def node_levels(graph: GraphSpec) -> dict[str, int]:
    """Level of every node: 0 for nodes below nothing, else 1 + the highest node below it."""
    below: dict[str, list[str]] = {name: list(graph.u2l.get(name, [])) for name in graph.nodes}
    for lower, uppers in graph.l2u.items():
        for upper in uppers:
            below[upper].append(lower)
    levels: dict[str, int] = {}
    for name in validate_graph(graph):  # lowers first: every node below is already placed
        levels[name] = 1 + max((levels[n] for n in below[name]), default=-1)
    return levels

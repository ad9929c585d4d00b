"""Build a validated Betty engine from a graph spec: node types, edges, shared modules.

A node type is a builder ``(context, name, node_spec) -> Node`` registered under a name with
its options dataclass. The :class:`BuildContext` hands builders what they may share: the
dataset, the one masked auto-encoder of the run, seeded data loaders, optimizers and the
already-built lower nodes (explicit, typed handles instead of Betty's name injection).
Nodes are built lowers-first (a node after every node it differentiates through, u2l, and
after every node whose steps trigger it, l2u), so a node receives the nodes below it as
arguments. Betty's injection of every problem into every other one as an attribute named
after it is switched off: nodes hold typed handles, and node names cannot collide with them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.logging.logger_base import get_logger as _betty_logger
from torch.utils.data import Dataset

from metamask import distributed
from metamask.config import GraphSpec, NodeSpec, OptimizerSpec, RunSpec, parse_dataclass
from metamask.data.base import DataBundle
from metamask.errors import DataError, GraphError, did_you_mean
from metamask.models.mae import MaskedAutoencoder
from metamask.nodes.base import Node
from metamask.sampling import ResumableBatchSampler, ResumableLoader

T = TypeVar("T")

_betty_logger().setLevel(logging.WARNING)  # Betty logs every problem at INFO on stdout

# ----------------------------------------------------------------------------------------------
# node types
# ----------------------------------------------------------------------------------------------

NodeBuilder = Callable[["BuildContext", str, NodeSpec], Node]


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
    """Decorator: register a node builder under ``name`` (the ``type`` key of a spec's node)."""

    def wrap(build: NodeBuilder) -> NodeBuilder:
        if name in NODE_TYPES:
            raise ValueError(f"node type {name!r} is registered twice")
        NODE_TYPES[name] = NodeType(name, build, options_type, description)
        return build

    return wrap


def get_node_type(name: str, where: str = "") -> NodeType:
    _ensure_node_types()
    if name not in NODE_TYPES:
        raise GraphError(
            f"{where}: unknown node type {name!r}{did_you_mean(name, NODE_TYPES)}; "
            f"expected one of {sorted(NODE_TYPES)}"
        )
    return NODE_TYPES[name]


def _ensure_node_types() -> None:
    from metamask.nodes import (
        metamae,  # noqa: F401  (registers adapt, reconstruct)
        mlomae,  # noqa: F401  (registers pretrain, head, mask)
    )


# ----------------------------------------------------------------------------------------------
# graph validation
# ----------------------------------------------------------------------------------------------


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
    _find_cycle(graph.l2u, "l2u", source)
    _find_cycle(graph.u2l, "u2l", source)
    for upper, lowers in graph.u2l.items():
        for lower in lowers:
            if not _reaches(graph.l2u, lower, upper):
                raise GraphError(
                    f"{source}: graph.u2l.{upper}: '{upper}' differentiates through '{lower}', but "
                    f"no l2u path leads from '{lower}' up to '{upper}' "
                    f"(add l2u: {{{lower}: [{upper}]}})"
                )
    return _order_lowers_first(names, graph.u2l, graph.l2u)


def _reaches(edges: Mapping[str, list[str]], src: str, dst: str) -> bool:
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


def _find_cycle(edges: Mapping[str, list[str]], kind: str, source: str) -> None:
    for start in edges:
        if _reaches(edges, start, start):
            raise GraphError(f"{source}: graph.{kind}: the edges form a cycle through '{start}'")


def _order_lowers_first(
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


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------


@dataclass
class BuildContext:
    """What node builders share. One per run."""

    spec: RunSpec
    bundle: DataBundle
    device: torch.device
    source: str = "<spec>"
    nodes: dict[str, Node] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    #: datasets declared per node (``GraphBuilder.node(..., data=)``), overriding the defaults
    data: Mapping[str, Dataset] = field(default_factory=dict)
    #: the names whose declared dataset a builder has read (the rest are refused)
    used_data: set[str] = field(default_factory=set)

    def options(self, cls: type[T], node: NodeSpec, name: str) -> T:
        """The node's type-specific options, validated against ``cls``."""
        return parse_dataclass(cls, dict(node.options), self.source, f"graph.nodes.{name}")

    def mae(self) -> MaskedAutoencoder:
        """The run's masked auto-encoder, built once and shared by every node that needs it."""
        if "mae" not in self.shared:
            self.shared["mae"] = MaskedAutoencoder(self.bundle.info, self.spec.model).to(
                self.device
            )
        model: MaskedAutoencoder = self.shared["mae"]
        return model

    def dataset(self, name: str, default: Dataset | None) -> Dataset:
        """The dataset node ``name`` draws from: the one declared for it, else ``default``.

        Raises:
            GraphError: neither was given (a node without data).
        """
        if name in self.data:
            self.used_data.add(name)
            return self.data[name]
        if default is None:
            raise GraphError(
                f"{self.source}: graph.nodes.{name}: node has no data; declare it with "
                "GraphBuilder.node(..., data=a torch Dataset)"
            )
        return default

    def lowers(self, name: str) -> list[Node]:
        """The already-built nodes that ``name`` differentiates through (its u2l edges)."""
        return [self.nodes[lower] for lower in self.spec.graph.u2l.get(name, [])]

    def feeders(self, name: str) -> list[Node]:
        """The already-built nodes whose steps trigger ``name`` (l2u edges into it), spec order."""
        return [
            self.nodes[lower]
            for lower, uppers in self.spec.graph.l2u.items()
            if name in uppers and lower in self.nodes
        ]

    def uppers(self, name: str) -> list[str]:
        """Names of the nodes that differentiate through ``name`` (u2l edges onto it)."""
        return [upper for upper, lowers in self.spec.graph.u2l.items() if name in lowers]

    def loader(self, dataset: Dataset, name: str, shuffle: bool = True) -> ResumableLoader:
        """A seeded loader of ``data.batch_size`` per process; the seed differs per node name.

        Its position (epoch, batches taken) is saved in checkpoints, and under data
        parallelism each process takes its share of every global batch (metamask.sampling).
        """
        size = len(dataset)  # type: ignore[arg-type]
        batch, processes = self.spec.data.batch_size, distributed.world_size()
        if processes > 1 and not self.spec.data.drop_last:
            raise DataError(
                f"{self.source}: data.drop_last: false cannot be split evenly across "
                f"{processes} processes; set data.drop_last: true to train distributed"
            )
        if self.spec.data.drop_last and size < batch * processes:
            across = f" x {processes} processes" if processes > 1 else ""
            raise DataError(
                f"{self.source}: data.batch_size {batch}{across} exceeds the {size} examples "
                f"node '{name}' trains on ({self.bundle.info.name}); lower data.batch_size"
            )
        sampler = ResumableBatchSampler(
            size,
            batch,
            shuffle=shuffle,
            drop_last=self.spec.data.drop_last,
            seed=self.spec.seed * 1000 + _stable_hash(name),
            world_size=processes,
            rank=distributed.rank(),
        )
        return ResumableLoader(dataset, sampler)

    def expected_steps(self, name: str) -> int:
        """How many local steps node ``name`` takes in the run (for schedules)."""
        return max(1, self.spec.train.steps // local_step_period(self.spec.graph, name))

    def optimizer(
        self, module: torch.nn.Module, spec: OptimizerSpec, name: str
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """The node's optimizer over ``module`` and its schedule."""
        return build_optimizer(module, spec, self.expected_steps(name))


def build_optimizer(
    module: torch.nn.Module, spec: OptimizerSpec, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """An optimizer (optionally without weight decay on biases, norms, tokens) and a schedule."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for pname, param in module.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or pname.endswith(("cls_token", "mask_token"))
        (no_decay if spec.no_decay_bias_norm and exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    optimizer: torch.optim.Optimizer
    if spec.type == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas)
    elif spec.type == "adam":
        optimizer = torch.optim.Adam(groups, lr=spec.lr, betas=spec.betas)
    else:
        optimizer = torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)
    if spec.schedule == "constant" and spec.warmup_steps == 0:
        return optimizer, None
    warmup, cosine = spec.warmup_steps, spec.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class GraphEngine(Engine):
    """Betty's engine on an explicit device, alone or as one process of a data-parallel run.

    Betty only knows "cpu", "gpu" or auto, and its distributed strategy initialises the
    process group itself and assumes one CUDA device per process (``device_count`` modulo,
    ``cuda.set_device``). Here the group is joined beforehand (:mod:`metamask.distributed`:
    gloo on CPU, nccl on CUDA) and the engine only hands its rank and device to the nodes.
    """

    def __init__(
        self,
        problems: list[Node],
        dependencies: dict[str, Any],
        device: torch.device,
        parallel: distributed.Parallel | None = None,
    ) -> None:
        self._metamask_device = device
        self._metamask_parallel = parallel
        strategy, backend = ("distributed", parallel.backend) if parallel else ("default", "nccl")
        super().__init__(
            problems=problems,
            config=EngineConfig(
                train_iters=0, logger_type="none", strategy=strategy, backend=backend
            ),
            dependencies=dependencies,
        )

    def configure_systems(self) -> dict[str, Any]:
        parallel = self._metamask_parallel
        if parallel is None:
            dist_dict: dict[str, Any] = super().configure_systems()
            self.device = self._metamask_device
            return dist_dict
        self._world_size, self._rank = parallel.world_size, parallel.rank
        self._local_rank = parallel.local_rank
        self.device = parallel.device
        return {
            "strategy": "distributed",
            "backend": parallel.backend,
            "world_size": parallel.world_size,
            "rank": parallel.rank,
            "local_rank": parallel.local_rank,
        }

    def set_problem_attr(self, problem: Node) -> str:
        """No name injection: Betty would ``setattr`` every problem onto every other one (and
        onto the engine) and assert the name is free, so a node named like a handle or a
        method (``masker``, ``train``) would crash the build. Nodes hold typed handles."""
        return str(problem.name)


@dataclass
class Graph:
    """A built optimization graph: the Betty engine and its nodes, by name."""

    engine: GraphEngine
    nodes: dict[str, Node]
    context: BuildContext

    def step(self) -> list[Node]:
        """One engine iteration (every leaf steps once); returns the nodes that stepped."""
        before = {name: node.local_step for name, node in self.nodes.items()}
        self.engine.global_step += 1
        self.engine.train_step()
        return [node for name, node in self.nodes.items() if node.local_step != before[name]]

    @property
    def mae(self) -> MaskedAutoencoder:
        return self.context.mae()

    def train(self) -> None:
        self.engine.train()

    def eval(self) -> None:
        self.engine.eval()

    def checkpoint_period(self) -> int:
        """Engine iterations between two points where every unroll window is closed.

        Only there is the graph's whole state in its nodes' state dicts (mid-window, a node
        may hold an unrolled trajectory or its uppers' ready flags): checkpoints and
        interrupts wait for such a point. 1 for MetaMAE and MAE.
        """
        graph = self.context.spec.graph
        period = 1
        for name, node_spec in graph.nodes.items():
            window = local_step_period(graph, name)
            if graph.l2u.get(name):
                window *= node_spec.unroll_steps
            period = math.lcm(period, window)
        return period


def build_graph(
    spec: RunSpec, bundle: DataBundle, device: torch.device, source: str = "<spec>"
) -> Graph:
    """Validate the spec's graph, build every node lowers-first and wire them into Betty.

    The same path as a graph composed in Python: :class:`metamask.compose.GraphBuilder`.
    """
    from metamask.compose import GraphBuilder  # compose builds on this module

    return GraphBuilder(spec, bundle, device, source).build()


def node_names(nodes: Iterable[Node]) -> list[str]:
    return [node.name for node in nodes]


def _stable_hash(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 997

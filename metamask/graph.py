"""A built optimization graph: Betty's engine on an explicit device, and its nodes by name.

:mod:`metamask.compose` builds a :class:`Graph` (validated, nodes lowers-first, typed
handles); the trainer steps it. Betty's injection of every problem into every other one as
an attribute named after it is switched off: nodes hold typed handles, and node names cannot
collide with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.logging.logger_base import get_logger as _betty_logger

from metamask import distributed, precision
from metamask.hypergrad.audit import AuditOptions
from metamask.hypergrad.autodiff import trainable_names
from metamask.hypergrad.latent_audit import LatentAuditOptions
from metamask.models.mae import MaskedAutoencoder
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext
from metamask.topology import checkpoint_period

_betty_logger().setLevel(logging.WARNING)  # Betty logs every problem at INFO on stdout


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
    #: the audited nodes' ``hypergradient.audit`` options (metamask.hypergrad.audit), and the
    #: adapt nodes' ``latent_solver.audit`` (metamask.hypergrad.latent_audit), by name
    audits: dict[str, AuditOptions | LatentAuditOptions] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every node steps in ``train.precision`` (autocast, fp16 loss scalers; TF32 on CUDA
        when fp32 is asked: :mod:`metamask.precision`)."""
        mode = self.context.spec.train.precision
        precision.configure_device(self.engine.device, mode)
        for node in self.nodes.values():
            node.set_precision(mode)

    def step(self) -> list[Node]:
        """One engine iteration (every leaf steps once); returns the nodes that stepped."""
        before = {name: node.local_step for name, node in self.nodes.items()}
        self.engine.global_step += 1
        self.engine.train_step()
        return [node for name, node in self.nodes.items() if node.local_step != before[name]]

    def hypergradient(self, name: str) -> dict[str, torch.Tensor]:
        """Node ``name``'s indirect gradient from its last step, by parameter name.

        The sum, over the node's paths to its lowers, of the composed estimator terms (each
        lower's ``hypergradient`` estimator, chained along the path): what the estimators added
        to the direct gradient of the node's own loss before its optimizer stepped. Detached,
        in the parameters' dtype; kept until the node's next step. A gradient that reaches the
        node through autograd itself (MetaMAE's outer node, ``hypergradient_in_graph``) is part
        of the direct gradient and not reported here.

        Raises:
            KeyError: no node ``name`` (the message names the nodes).
            ValueError: the node differentiates through no lower with an estimator.
            RuntimeError: the node has not stepped yet.
        """
        node = self.nodes.get(name)
        if node is None:
            raise KeyError(f"no node {name!r} in this graph; nodes: {sorted(self.nodes)}")
        if not any(not path[1].hypergradient_in_graph for path in node._paths):
            raise ValueError(
                f"node '{name}' has no hypergradient: it differentiates through no lower node "
                "with an estimator (it is no upper of a u2l edge, or its lowers pass gradients "
                "inside autograd)"
            )
        if node.last_hypergradient is None:
            raise RuntimeError(f"node '{name}' has not stepped yet (call graph.step() first)")
        names = trainable_names(node)
        return dict(zip(names, node.last_hypergradient, strict=True))

    @property
    def mae(self) -> MaskedAutoencoder:
        """The run's masked auto-encoder (shared by every node that uses one)."""
        return self.context.mae()

    def train(self) -> None:
        self.engine.train()

    def eval(self) -> None:
        self.engine.eval()

    def checkpoint_period(self) -> int:
        """Engine iterations between two points where every unroll window is closed
        (:func:`metamask.topology.checkpoint_period`)."""
        return checkpoint_period(self.context.spec.graph)

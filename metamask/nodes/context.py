"""What node builders share while a graph is built, and the one helper that wires a node.

A :class:`BuildContext` hands builders the dataset, the one masked auto-encoder of the run,
the already-built lower nodes (explicit, typed handles instead of Betty's name injection) and
:meth:`BuildContext.wire`: a node's optimizer and schedule, its hypergradient estimator with
validated options, its unroll window and its seeded, resumable data loader, from its spec.
Every node type's builder uses it, so a new node type states only what is its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch.utils.data import Dataset

from metamask import distributed
from metamask.config import NodeSpec, OptimizerSpec, RunSpec, parse_dataclass
from metamask.config.origins import located, origin_of
from metamask.data.augment import Augmented
from metamask.data.augment import active as augmentation_active
from metamask.data.base import DataBundle
from metamask.data.bundles import IndexSubset
from metamask.errors import ConfigError, DataError, GraphError
from metamask.hypergrad.audit import split_audit
from metamask.hypergrad.registry import estimator_options
from metamask.models.mae import MaskedAutoencoder
from metamask.models.transformer import compile_in_place
from metamask.optim import build_optimizer
from metamask.sampling import EmptyBatches, ResumableBatchSampler, ResumableLoader
from metamask.topology import local_step_period

if TYPE_CHECKING:
    from metamask.nodes.base import Node

T = TypeVar("T")


@dataclass(frozen=True)
class Wiring:
    """A node's plumbing from its spec: what :class:`~metamask.nodes.base.Node` takes besides
    its name and module. ``kwargs()`` passes it on to a node's constructor."""

    optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    loader: ResumableLoader | EmptyBatches | None
    unroll_steps: int
    estimator: str
    estimator_options: Any

    def kwargs(self) -> dict[str, Any]:
        """The wiring as keyword arguments of a node's constructor."""
        return {
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "loader": self.loader,
            "unroll_steps": self.unroll_steps,
            "estimator": self.estimator,
            "estimator_options": self.estimator_options,
        }


@dataclass
class BuildContext:
    """What node builders share. One per graph."""

    spec: RunSpec
    #: the run's data; None for a graph of custom nodes made without a dataset (new_graph(None))
    data_bundle: DataBundle | None
    device: torch.device
    source: str = "<spec>"
    nodes: dict[str, Node] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    #: datasets declared per node (``GraphBuilder.node(..., data=)``), overriding the defaults
    data: Mapping[str, Dataset] = field(default_factory=dict)
    #: the names whose declared dataset a builder has read (the rest are refused)
    used_data: set[str] = field(default_factory=set)

    @property
    def bundle(self) -> DataBundle:
        """The run's data.

        Raises:
            GraphError: the graph was made without a dataset (only custom nodes can be built).
        """
        if self.data_bundle is None:
            raise GraphError(
                f"{self.source}: this graph was made without a dataset (new_graph(None)); only "
                "custom nodes (GraphBuilder.node(name, module=, loss=)) can be built in it"
            )
        return self.data_bundle

    def options(self, cls: type[T], node: NodeSpec, name: str) -> T:
        """The node's type-specific options, validated against ``cls``."""
        return parse_dataclass(cls, dict(node.options), self.source, f"graph.nodes.{name}")

    def option_error(self, name: str, option: str, exc: ConfigError) -> ConfigError:
        """``exc``, raised by the owner of node ``name``'s ``option`` (a masker checking its
        settings) as ``"masker.ratio_bounds: ..."`` or without a key, as a one-line error
        naming the full key and the file (base or ``--set``) that wrote it."""
        text = str(exc)
        key, sep, rest = text.partition(": ")
        if sep and key.split(".")[0] == option and " " not in key:
            return ConfigError(f"{located(self.source, f'graph.nodes.{name}.{key}')}: {rest}")
        return ConfigError(f"{located(self.source, f'graph.nodes.{name}.{option}')}: {text}")

    def mae(self) -> MaskedAutoencoder:
        """The run's masked auto-encoder, built once and shared by every node that needs it."""
        if "mae" not in self.shared:
            mae = MaskedAutoencoder(self.bundle.info, self.spec.model).to(self.device)
            if self.spec.train.dtype == "float64":
                mae.to_dtype(torch.float64)
            if self.spec.train.compile:  # twice-differentiated passes stay eager
                compile_in_place(mae.encoder)
                compile_in_place(mae.decoder)
            self.shared["mae"] = mae
        model: MaskedAutoencoder = self.shared["mae"]
        return model

    def wire(
        self,
        name: str,
        spec: NodeSpec,
        module: torch.nn.Module | None = None,
        data: Dataset | None = None,
        *,
        reads_data: bool = True,
        edge_estimator: bool = True,
    ) -> Wiring:
        """Node ``name``'s optimizer over ``module`` (none without one), its estimator and
        options (validated by the estimator), its unroll window, and its loader over the
        dataset declared for it or else ``data`` (none when ``reads_data`` is False: the node
        takes its batches from another node). With ``edge_estimator`` False the node's
        ``hypergradient`` block is its own business (MetaMAE's latent solver) and the wiring
        carries ``first_order``."""
        optimizer, scheduler = None, None
        if module is not None:
            # the fused Adam(W) kernel on a CPU; not with fp16's GradScaler, which would hand
            # it the overflow flag (a skipped step would then still create the Adam state)
            fused = self.device.type == "cpu" and self.spec.train.precision != "fp16"
            optimizer, scheduler = build_optimizer(
                module, spec.optimizer or OptimizerSpec(), self.expected_steps(name), fused
            )
        estimator, options = "first_order", None
        if edge_estimator:
            where = f"graph.nodes.{name}.hypergradient"
            estimator = spec.hypergradient.type
            own, _ = split_audit(spec.hypergradient)  # the audit: metamask.hypergrad.audit
            options = estimator_options(own, self.source, where)
        loader = None
        if not reads_data and spec.batch_size is not None:
            key = f"graph.nodes.{name}.batch_size"
            raise GraphError(
                f"{located(self.source, key)}: node '{name}' draws no batches of its own (it "
                "takes them from another node, or reads no data); set batch_size on the node "
                "that draws them"
            )
        if reads_data:
            dataset = self.dataset(name, data)
            loader = self.loader(dataset, name, augment=self.training_split(dataset))
        return Wiring(optimizer, scheduler, loader, spec.unroll_steps, estimator, options)

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

    def training_split(self, dataset: Dataset) -> bool:
        """Whether ``dataset`` is the run's training data: the pretraining set, the labelled
        training split, or a part of it (MLO-MAE's splits A and B). Only these are served
        augmented (``data.augment``); anything else a node is given is served as it is."""
        bundle = self.data_bundle
        if bundle is None:
            return False
        if dataset is bundle.pretrain_set or dataset is bundle.train:
            return True
        return isinstance(dataset, IndexSubset) and dataset.base is bundle.train

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

    def loader(
        self, dataset: Dataset, name: str, shuffle: bool = True, augment: bool = False
    ) -> ResumableLoader:
        """A seeded loader of node ``name``'s batch size per process (:meth:`batch_size`); the
        seed differs per node name.

        Its position (epoch, batches taken) is saved in checkpoints, and under data
        parallelism each process takes its share of every global batch (metamask.sampling).
        With ``augment`` (the run's training split: :meth:`training_split`) and
        ``data.augment`` on, it serves :class:`~metamask.data.augment.Augmented` views of
        ``dataset``, seeded like the sampler and told each epoch by it: the views resume
        with the data position.
        """
        size = len(dataset)  # type: ignore[arg-type]
        (batch, key), processes = self.batch_size(name), distributed.world_size()
        if processes > 1 and not self.spec.data.drop_last:
            raise DataError(
                f"{origin_of(self.source, 'data.drop_last')}: data.drop_last: false cannot be "
                f"split evenly across {processes} processes; set data.drop_last: true to train "
                "distributed"
            )
        if self.spec.data.drop_last and size < batch * processes:
            across = f" x {processes} processes" if processes > 1 else ""
            raise DataError(
                f"{origin_of(self.source, key)}: {key} {batch}{across} exceeds the {size} "
                f"examples node '{name}' trains on ({self._data_name()}); lower {key}"
                + ("" if key != "data.batch_size" else f", or give '{name}' its own batch_size")
            )
        sampler = ResumableBatchSampler(
            size,
            batch,
            shuffle=shuffle,
            drop_last=self.spec.data.drop_last,
            seed=self.spec.seed * 1000 + stable_hash(name),
            world_size=processes,
            rank=distributed.rank(),
        )
        settings = self.spec.data.augment
        if augment and augmentation_active(settings):
            dataset = Augmented(dataset, self.bundle.info.modality, settings, sampler.seed)
            sampler.on_epoch = dataset.set_epoch
        return ResumableLoader(dataset, sampler)

    def batch_size(self, name: str) -> tuple[int, str]:
        """Node ``name``'s batch size per process and the key that sets it: its own
        ``graph.nodes.NAME.batch_size``, else ``data.batch_size``."""
        node = self.spec.graph.nodes.get(name)
        if node is not None and node.batch_size is not None:
            return node.batch_size, f"graph.nodes.{name}.batch_size"
        return self.spec.data.batch_size, "data.batch_size"

    def _data_name(self) -> str:
        return "no dataset" if self.data_bundle is None else self.data_bundle.info.name

    def expected_steps(self, name: str) -> int:
        """How many local steps node ``name`` takes in the run (for schedules)."""
        return max(1, self.spec.train.steps // local_step_period(self.spec.graph, name))


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process and Python run (loader seeds)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 997

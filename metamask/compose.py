"""Compose optimization graphs in Python: declare nodes and edges, get a validated Betty graph.

This is the one way metamask builds a graph. YAML specs go through it
(:func:`build_graph` is ``GraphBuilder(spec, ...).build()``), and so do the
built-in methods: MAE, MetaMAE, MLO-MAE and ``metamae+mask`` are registered node types plus
edges, with nothing private to the toolkit. A node is either a registered type (``"pretrain"``,
``"adapt"``, ...; its keyword options are the type's YAML keys) or your own: a module, a loss
``loss(batch) -> tensor | {"loss": tensor, ...}`` and a dataset. Edges are Betty's: ``u2l``
(the upper node differentiates through the lower's solution) and ``l2u`` (the lower's steps
trigger the upper's)::

    g = new_graph("wine", model={"backbone": "tiny"}, steps=20)
    g.node("pretrain", "pretrain", masker={"type": "token_mlp"}, hypergradient="darts",
           optimizer={"lr": 1e-3}, unroll_steps=2)
    g.node("head", module=head, loss=head_loss, data=split_a, hypergradient="darts",
           optimizer={"lr": 1e-3})
    g.node("mask", "mask", data=split_b, optimizer={"lr": 1e-4})
    g.u2l("mask", "pretrain").l2u("pretrain", "head", "mask").l2u("head", "mask")
    graph = g.build()          # validated: names, cycles, paths, data, estimators
    summary = train(graph)     # metamask's Trainer: progress, metrics.jsonl, checkpoints

Refusals (one line each, naming the node or edge): an unknown node in an edge, a cycle, an
upper node with no ``l2u`` path back from its lower, a node without data, an estimator its
node type cannot use, an unknown node type or option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from metamask import distributed
from metamask.callbacks import Callback
from metamask.config import (
    GraphSpec,
    NodeSpec,
    OptimizerSpec,
    RunSpec,
    node_spec_from_dict,
    spec_from_dict,
    spec_to_dict,
)
from metamask.config.imports import import_modules
from metamask.config.origins import located, located_estimator
from metamask.data.base import ArrayDataset, DataBundle
from metamask.errors import ConfigError, GraphError
from metamask.graph import Graph, GraphEngine
from metamask.hypergrad.audit import AuditOptions, check_auditable, parse_audit
from metamask.hypergrad.latent_audit import LatentAuditOptions
from metamask.models.mae import MaskedAutoencoder
from metamask.nodes.context import BuildContext
from metamask.nodes.custom import CustomLoss, custom_builder
from metamask.nodes.differentiable import check_estimator_support
from metamask.nodes.hypergradient_wiring import check_hypergradient_shapes, install_paths
from metamask.nodes.registry import NodeBuilder, get_node_type
from metamask.pictures.run_pictures import draw_run_pictures
from metamask.resume import METRICS_NAME
from metamask.seeding import seed_everything
from metamask.spec_data import check_augment, load_pretrain_data, pretrain_info
from metamask.topology import (
    validate_graph,
)
from metamask.train import Trainer, TrainSummary

#: the ``type`` a custom node (module + loss + data) gets in its spec
CUSTOM_TYPE = "custom"


class GraphBuilder:
    """A graph being declared: run settings, nodes, edges; :meth:`build` validates and wires it.

    Args:
        spec: the run's settings (data, model, budget, seed) and any nodes already declared
            (a YAML spec's graph); :func:`new_graph` makes one from a dataset name.
        bundle: the data, when already loaded (else loaded from ``spec.data`` on first need).
        device: where modules live (default CPU).
        source: the name error messages start with (a spec file, or ``<graph>``).
    """

    def __init__(
        self,
        spec: RunSpec,
        bundle: DataBundle | None = None,
        device: torch.device | str = "cpu",
        source: str = "<graph>",
        *,
        has_data: bool = True,
    ) -> None:
        self.base = spec
        self.source = source
        self.device = torch.device(device)
        self._bundle = bundle
        self.has_data = has_data  # False: custom nodes only, no dataset (new_graph(None))
        self._nodes: dict[str, NodeSpec] = dict(spec.graph.nodes)
        self._u2l: dict[str, list[str]] = {k: list(v) for k, v in spec.graph.u2l.items()}
        self._l2u: dict[str, list[str]] = {k: list(v) for k, v in spec.graph.l2u.items()}
        self._builders: dict[str, NodeBuilder] = {}
        self._data: dict[str, Dataset] = {}
        self._shared: dict[str, Any] = {}

    # -- declaring --------------------------------------------------------------------------------

    def node(
        self,
        name: str,
        type: str | None = None,
        *,
        module: nn.Module | None = None,
        loss: CustomLoss | None = None,
        data: Dataset | None = None,
        optimizer: OptimizerSpec | Mapping[str, Any] | None = None,
        hypergradient: str | Mapping[str, Any] = "first_order",
        unroll_steps: int = 1,
        approximate: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> GraphBuilder:
        """Declare node ``name``: a registered ``type`` with its options, or ``module`` + ``loss``.

        ``data`` is the dataset the node draws its batches from; registered types have a
        default (the pretraining set, split A or B), a custom node must be given one.
        ``batch_size``: this node's batches (None: the graph's ``data.batch_size``).
        ``optimizer`` (``OptimizerSpec`` keys) fills what it leaves out from the defaults, and
        a node with parameters and no ``optimizer`` takes them all: AdamW, lr 1e-4, weight
        decay 1e-4, betas (0.9, 0.999), constant schedule (``optimizer={"lr": 0.1}`` still
        decays the weights; say ``"type": "sgd", "weight_decay": 0`` for plain SGD).
        ``hypergradient`` is the estimator of the edges from this node up (a name, or a
        mapping with ``type`` and the estimator's options); an ``adapt`` node takes
        ``latent_solver=`` instead (its option). ``approximate=True`` accepts an
        estimator that cannot be exact on this node's graph shape (see :meth:`build`). Returns
        the builder (chainable).
        """
        where = f"{self.source}: graph.nodes.{name}"
        if name in self._nodes:
            raise GraphError(f"{where}: a node named '{name}' is already declared")
        custom = module is not None or loss is not None
        if custom and type is not None:
            raise GraphError(f"{where}: give either a registered type or module + loss, not both")
        if custom and (module is None or loss is None):
            raise GraphError(f"{where}: a custom node needs both module= and loss=")
        if custom and options:
            raise GraphError(f"{where}: a custom node takes no options, got {sorted(options)}")
        if type is None and not custom:
            raise GraphError(f"{where}: give a registered node type or module= and loss=")
        if type is not None:
            get_node_type(type, f"{where}.type")
        raw: dict[str, Any] = {"type": type or CUSTOM_TYPE, "unroll_steps": unroll_steps, **options}
        if hypergradient != "first_order":  # the default, left out (an adapt node has none:
            raw["hypergradient"] = hypergradient  # its latent_solver= says how it solves)
        if approximate:
            raw["approximate"] = True
        if batch_size is not None:
            raw["batch_size"] = batch_size
        if optimizer is not None:
            raw["optimizer"] = (
                spec_to_dict(optimizer) if isinstance(optimizer, OptimizerSpec) else optimizer
            )
        self._nodes[name] = node_spec_from_dict(raw, f"graph.nodes.{name}", self.source)
        if custom:
            assert module is not None and loss is not None
            self._builders[name] = custom_builder(module, loss, data)
        elif data is not None:
            self._data[name] = data
        return self

    def u2l(self, upper: str, *lowers: str) -> GraphBuilder:
        """``upper`` differentiates through the solutions of ``lowers`` (Betty's u2l)."""
        self._u2l.setdefault(upper, []).extend(lowers)
        return self

    def l2u(self, lower: str, *uppers: str) -> GraphBuilder:
        """After ``lower`` steps (``unroll_steps`` times), ``uppers`` step (Betty's l2u)."""
        self._l2u.setdefault(lower, []).extend(uppers)
        return self

    # -- what has been declared -----------------------------------------------------------------

    @property
    def spec(self) -> RunSpec:
        """The run spec of the graph as declared (custom nodes appear as ``type: custom``)."""
        graph = GraphSpec(nodes=dict(self._nodes), u2l=dict(self._u2l), l2u=dict(self._l2u))
        return dataclasses.replace(self.base, graph=graph)

    @property
    def bundle(self) -> DataBundle:
        """The run's data (loaded from ``spec.data`` the first time it is needed).

        Raises:
            GraphError: the graph was made without a dataset (``new_graph(None)``).
        """
        if not self.has_data:
            raise GraphError(f"{self.source}: this graph was made without a dataset")
        if self._bundle is None:
            self._bundle = load_pretrain_data(self.base)
        return self._bundle

    def mae(self) -> MaskedAutoencoder:
        """The run's masked auto-encoder, shared with every node that uses one.

        Call it before :meth:`build` to reference the encoder in a custom node's loss.
        """
        return self._context().mae()

    # -- building ---------------------------------------------------------------------------------

    def build(self) -> Graph:
        """Validate the graph, build every node lowers-first and wire them into Betty."""
        spec = self.spec
        import_modules(spec.imports, self.source)  # the spec's own estimators, node types, ...
        order = validate_graph(spec.graph, self.source)
        if spec.train.dtype == "float64" and spec.train.precision != "fp32":
            raise ConfigError(
                f"{located(self.source, 'train.precision')}: {spec.train.precision!r} autocasts "
                "to lower precision, which a float64 run (train.dtype: float64) is meant to "
                "avoid; use "
                "train.precision: fp32 with it"
            )
        context = self._context()
        if context.data_bundle is not None:
            check_augment(spec, self.source, context.data_bundle.info)
        for name in order:
            node_spec = spec.graph.nodes[name]
            build = self._builders.get(name)
            if build is None:
                if node_spec.type == CUSTOM_TYPE:
                    raise GraphError(
                        f"{self.source}: graph.nodes.{name}: a custom node is declared in Python "
                        "(GraphBuilder.node with module=, loss=, data=), not in a spec file"
                    )
                where = located(self.source, f"graph.nodes.{name}.type")
                build = get_node_type(node_spec.type, where).build
            node = build(context, name, node_spec)
            if not node.hypergradient_in_graph:
                try:
                    check_estimator_support(node)
                except ConfigError as exc:  # named by node: name the file that set it too
                    raise ConfigError(f"{located_estimator(self.source, name)}: {exc}") from None
            context.nodes[name] = node
        unused = sorted(set(self._data) - set(context.used_data))
        if unused:
            raise GraphError(
                f"{self.source}: graph.nodes.{unused[0]}: its node type reads no data= "
                "(it takes its batches from another node)"
            )
        problems = [context.nodes[name] for name in spec.graph.nodes]
        for node in problems:
            node.on_nonfinite = spec.train.on_nonfinite
            if distributed.current() is not None and getattr(node, "unrolls", False):
                raise GraphError(
                    f"{located_estimator(self.source, node.name)}: 'unrolled' keeps each "
                    "process's own optimizer trajectory, which data parallelism cannot average; "
                    "pick another estimator to train with --distributed"
                )
        check_hypergradient_shapes(spec.graph, context.nodes, self.source)
        dependencies = {
            kind: {context.nodes[k]: [context.nodes[v] for v in vs] for k, vs in edges.items()}
            for kind, edges in (("u2l", spec.graph.u2l), ("l2u", spec.graph.l2u))
        }
        engine = GraphEngine(problems, dependencies, self.device, distributed.current())
        install_paths(spec.graph, context.nodes)
        audits = self._audits(spec, context.nodes)
        nodes = {name: context.nodes[name] for name in spec.graph.nodes}
        return Graph(engine, nodes, context, audits)

    def _audits(
        self, spec: RunSpec, nodes: Mapping[str, Any]
    ) -> dict[str, AuditOptions | LatentAuditOptions]:
        """Each node's ``hypergradient.audit`` (metamask.hypergrad.audit), validated and checked
        against the node's shape (a reference that cannot be exact there is refused), and each
        adapt node's ``latent_solver.audit`` (metamask.hypergrad.latent_audit)."""
        audits: dict[str, AuditOptions | LatentAuditOptions] = {}
        paths = [path for node in nodes.values() for path in node._paths]
        for name, node_spec in spec.graph.nodes.items():
            where = f"graph.nodes.{name}.hypergradient"
            latent = getattr(nodes[name], "latent_audit", None)
            if latent is not None:
                if distributed.current() is not None:
                    raise GraphError(
                        f"{self.source}: graph.nodes.{name}.latent_solver.audit: the audit runs "
                        "in one process; train without --distributed to audit"
                    )
                audits[name] = latent
                continue
            options = parse_audit(node_spec.hypergradient, self.source, where)
            if options is None:
                continue
            node = nodes[name]
            if node.hypergradient_in_graph:
                raise ConfigError(
                    f"{self.source}: {where}.audit: '{name}' passes gradients inside autograd; "
                    "audit its latent solver with latent_solver: {type: ..., audit: {...}}"
                )
            if distributed.current() is not None:
                raise GraphError(
                    f"{self.source}: {where}.audit: the audit runs in one process; train "
                    "without --distributed to audit"
                )
            check_auditable(node, options, self.source, paths)
            audits[name] = options
        return audits

    def _context(self) -> BuildContext:
        return BuildContext(
            self.spec,
            self.bundle if self.has_data else None,
            self.device,
            self.source,
            shared=self._shared,
            data=self._data,
        )


def build_graph(
    spec: RunSpec, bundle: DataBundle, device: torch.device | str = "cpu", source: str = "<spec>"
) -> Graph:
    """Validate a spec's graph, build every node lowers-first and wire them into Betty
    (what ``metamask run`` does with a YAML spec: the same path as a graph composed here)."""
    return GraphBuilder(spec, bundle, device, source).build()


def check_buildable(spec: RunSpec, source: str = "<spec>") -> Graph:
    """Make every check a build makes, without loading the data: node types and their
    options, estimators and latent solvers (and whether each node supports its own), optimizers,
    topology. The graph is built on the CPU over stand-in examples of the spec's data facts
    (zeros, labels cycling over the classes; enough that every labelled split holds a batch),
    and returned (its model's weights are real, the data is not: fit for counting parameters,
    not for training). ``metamask show`` calls it, so that it refuses what ``metamask run``
    refuses.

    Raises:
        ConfigError, GraphError: as :func:`build_graph` would, naming the file and the key.
    """
    info = pretrain_info(spec)
    batches = [spec.data.batch_size] + [n.batch_size or 0 for n in spec.graph.nodes.values()]
    count = 10 * max(batches) + 4 * max(info.num_classes, 1)
    dtype = torch.long if info.modality == "tokens" else torch.float32
    x = torch.zeros((1, *info.input_shape), dtype=dtype).expand(count, *info.input_shape)
    stand_in = ArrayDataset(x, torch.arange(count) % max(info.num_classes, 1))
    bundle = DataBundle(info, stand_in, stand_in, stand_in)
    return GraphBuilder(spec, bundle, "cpu", source).build()


#: the ``data.dataset`` of a graph made without data (``new_graph(None)``)
NO_DATASET = "none"


def new_graph(
    data: str | DataBundle | None,
    *,
    model: Mapping[str, Any] | None = None,
    steps: int = 100,
    batch_size: int = 32,
    seed: int = 0,
    name: str = "graph",
    device: torch.device | str = "cpu",
    log_every: int = 10,
    source: str = "<graph>",
) -> GraphBuilder:
    """An empty graph on a registered dataset (by name), your own :class:`DataBundle`, or no
    dataset at all (``None``: a graph of custom nodes, e.g. a closed-form problem, whose nodes
    need no ``data=``; their losses receive the batch ``()``).

    ``model`` holds the YAML ``model`` keys (``{"backbone": "tiny", "mask_ratio": 0.5}``);
    ``source`` starts the graph's error messages. Seeds torch, numpy and python with ``seed``
    (as ``metamask run`` does before building).
    """
    dataset = (
        data.info.name if isinstance(data, DataBundle) else NO_DATASET if data is None else data
    )
    raw = {
        "name": name,
        "seed": seed,
        "data": {"dataset": dataset, "batch_size": batch_size},
        "model": dict(model or {}),
        "graph": {"nodes": {}},
        "train": {"steps": steps, "log_every": log_every},
    }
    seed_everything(seed)
    spec = spec_from_dict(raw, source=source)
    bundle = data if isinstance(data, DataBundle) else None
    return GraphBuilder(spec, bundle, device, source, has_data=data is not None)


def train(
    graph: Graph,
    out_dir: Path | None = None,
    progress: bool = False,
    console: Console | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainSummary:
    """Run ``graph`` for its spec's ``train.steps`` with metamask's :class:`Trainer`.

    With ``out_dir``, writes ``metrics.jsonl``, a checkpoint and the run's pictures there
    (``losses.png``, ``reconstructions.png``, and ``masks.png`` and ``mask_diversity.png`` for a
    learned masker), as ``metamask run`` does (:func:`metamask.pictures.run_pictures.
    draw_run_pictures`, the same code); a graph of custom nodes gets ``losses.png``.
    ``callbacks`` (:class:`metamask.callbacks.Callback`) run after each engine step, e.g. to
    read ``trainer.graph.hypergradient(name)`` for each node in ``stepped``.
    """
    spec = graph.context.spec
    console = console or Console(stderr=True)
    summary = Trainer(graph, spec, out_dir, console, progress, callbacks).run()
    if out_dir is not None and distributed.is_main():
        bundle = graph.context.data_bundle
        metrics = out_dir / METRICS_NAME
        draw_run_pictures(graph, bundle.val if bundle is not None else None, out_dir, metrics)
    return summary


__all__ = [
    "CUSTOM_TYPE",
    "NO_DATASET",
    "CustomLoss",
    "GraphBuilder",
    "build_graph",
    "check_buildable",
    "new_graph",
    "train",
]

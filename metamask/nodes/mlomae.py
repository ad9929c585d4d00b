"""MLO-MAE (SPEC §3) as three Betty nodes, and the MAE baseline as the first one alone.

``Pretrain`` (level 1, lowest): the MAE on unlabelled data. Its masks come from a masker; with
a learned masker the ``r L`` most probable tokens are masked and each masked token's loss is
multiplied by its masking probability, the path by which gradient reaches the masker. With
the random masker and no node above it, it is the plain MAE (the baseline).

``Head`` (level 2): a classification head (LayerNorm -> dropout -> linear, as published)
on the encoder's CLS feature, trained on the labelled split A.

``Mask`` (level 3, top): owns the masker's parameters; its loss is the head's cross-entropy
on split B, held out from A. Its gradient is entirely indirect: through how pretraining
depends on the masker, directly (``mask -> pretrain -> mask``) and through the head
(``mask -> head -> pretrain -> mask``).

Handles are explicit and typed: ``Head.pretrain``, ``Mask.pretrain``, ``Mask.head``,
``Pretrain.masker`` (owned by the mask node). A batch's masks are chosen once, at its first
evaluation (the node's own step), and kept, so every re-evaluation of the loss (darts' finite
differences) sees the same masks; the finite differences also replay the random numbers of
dropout (:func:`metamask.hypergrad.autodiff.common_random_numbers`). The mask node applies
each final edge's estimator once to the sum of both paths' vectors
(:func:`summed_path_gradient`), and the head's encoder forward runs once per encoder state
(:class:`~metamask.nodes.feature_reuse.FeatureReuse`). docs/mlomae.md has the whole story.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from metamask.config import EstimatorSpec, GraphSpec, NodeSpec, OptimizerSpec, RunSpec
from metamask.data.base import DataBundle
from metamask.data.bundles import IndexSubset, split_indices
from metamask.errors import GraphError
from metamask.graph import BuildContext, register_node_type
from metamask.hypergrad.paths import path_gradient
from metamask.hypergrad.registry import FIRST_DERIVATIVES_ONLY, estimator_options, get_estimator
from metamask.models.mae import MaskedAutoencoder, probability_weighted_loss
from metamask.models.maskers import LearnedMasker, MaskerSpec, build_masker
from metamask.models.masking import Masks, RandomMasker
from metamask.models.transformer import twice_differentiable
from metamask.nodes.base import Node
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.feature_reuse import FeatureReuse

Pool = Literal["cls", "global"]


@runtime_checkable
class MaskedPretraining(Protocol):
    """A pretraining node a ``mask`` node can sit on: it has the run's auto-encoder and (when
    it learns where to mask) a learned masker. ``pretrain`` (MAE + masker) is one;
    ``reconstruct`` above an ``adapt`` node with a learned masker (``metamae+mask``) another."""

    name: str

    @property
    def mae(self) -> MaskedAutoencoder: ...

    def learned_masker(self) -> LearnedMasker | None:
        """The masking network whose probabilities weight this node's loss, if any."""
        ...


@runtime_checkable
class Downstream(Protocol):
    """A node below a ``mask`` node whose loss on held-out data the masker minimises:
    ``head`` (the classification head), or a custom node (any loss of a batch)."""

    name: str

    def heldout_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """The loss (key ``"loss"``, plus terms to log) on a batch of the mask node's data."""
        ...

    def release(self) -> None:
        """Drop what was kept for re-evaluations of this node's loss (after the mask step)."""
        ...


# ----------------------------------------------------------------------------------------------
# options (YAML keys of each node type)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainOptions:
    """Options of a ``pretrain`` node."""

    masker: MaskerSpec = field(default_factory=MaskerSpec)  # who picks the masked tokens


@dataclass(frozen=True)
class HeadOptions:
    """Options of a ``head`` node."""

    holdout: float = 0.2  # share of the labelled training split held out as split B (mask node)
    head_dropout: float = 0.1  # dropout before the head's linear layer (published: 0.1)
    pool: Pool = "cls"  # encoder feature the head reads: CLS token (published) or global pool


@dataclass(frozen=True)
class MaskOptions:
    """A ``mask`` node has no options of its own: its masker is set on the pretrain node."""


# ----------------------------------------------------------------------------------------------
# level 1: pretrain
# ----------------------------------------------------------------------------------------------


@dataclass
class MaskedBatch:
    """A pretraining batch and its masks, fixed for every evaluation of the batch's loss."""

    x: torch.Tensor  # (B, *input_shape)
    masks: Masks | None  # None until a learned masker has scored the batch (first evaluation)


class Pretrain(DifferentiableNode):
    """MAE reconstruction with masks from ``masker``; loss x masking probability if learned."""

    def __init__(
        self,
        name: str,
        mae: MaskedAutoencoder,
        masker: RandomMasker | LearnedMasker,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        loader: Any,
        unroll_steps: int = 1,
        estimator: str = "first_order",
        estimator_options: Any = None,
    ) -> None:
        super().__init__(
            name,
            mae,
            optimizer,
            scheduler,
            loader=loader,
            unroll_steps=unroll_steps,
            estimator=estimator,
            estimator_options=estimator_options,
        )
        self.mae = mae
        self.masker = masker

    @property
    def learned(self) -> bool:
        """True when the masker is a network (its probabilities weight the loss)."""
        return isinstance(self.masker, LearnedMasker)

    def learned_masker(self) -> LearnedMasker | None:
        return self.masker if isinstance(self.masker, LearnedMasker) else None

    def get_batch(self) -> MaskedBatch:
        """Draw a batch; random masks are drawn with it, learned ones at its first evaluation."""
        x = super().get_batch()[0]
        if isinstance(self.masker, LearnedMasker):
            return MaskedBatch(x, None)
        shape_only = x.new_empty(x.shape[0], self.mae.tokenizer.num_tokens, 0)  # (B, L, 0)
        return MaskedBatch(x, self.masker(shape_only))  # the random masker reads the shape only

    def training_step(self, batch: MaskedBatch) -> dict[str, torch.Tensor]:
        with self._differentiable_twice():
            mae = self.mae
            tokens = mae.embed(batch.x)  # (B, L, D)
            prob = None
            if isinstance(self.masker, LearnedMasker):
                prob = self.masker.probabilities(tokens)  # (B, L), the path to the masker
                if batch.masks is None:  # the node's own step: the masks of this batch
                    batch.masks = self.masker.masks_from(prob.detach())
            masks = batch.masks
            assert masks is not None
            latent, target = mae.encode(tokens, masks), mae.targets(batch.x)
            if prob is None:  # exactly the MAE baseline's loss (Reconstruct without inner node)
                rec = mae.reconstruction_loss(latent, masks, target, masks.mask)
                return {"loss": rec, "reconstruction": rec}
            terms = probability_weighted_loss(mae, latent, masks, target, prob)
        return terms

    @contextmanager
    def _differentiable_twice(self) -> Iterator[None]:
        """Math-path attention (it has a double backward) unless the estimator through this
        node only ever takes first derivatives of its loss; the fused kernel is faster."""
        with ExitStack() as stack:
            if get_estimator(self.estimator).name not in FIRST_DERIVATIVES_ONLY:
                stack.enter_context(twice_differentiable(self.mae))
                if isinstance(self.masker, nn.Module):
                    stack.enter_context(twice_differentiable(self.masker))
            yield


# ----------------------------------------------------------------------------------------------
# level 2: the classification head
# ----------------------------------------------------------------------------------------------


class ClassifierHead(nn.Sequential):
    """The published MLO-MAE head: LayerNorm(D) -> Dropout -> Linear(D, K)."""

    def __init__(self, width: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__(
            nn.LayerNorm(width, eps=1e-6), nn.Dropout(dropout), nn.Linear(width, num_classes)
        )


@dataclass(frozen=True)
class LabelledSplits:
    """The labelled training split cut in two: A trains the head, B trains the masker."""

    a: Dataset
    b: Dataset


def split_labelled(bundle: DataBundle, holdout: float, seed: int) -> LabelledSplits:
    """Stratified, seeded split of ``bundle.train`` into A (1 - holdout) and B (holdout)."""
    labels = dataset_labels(bundle.train)
    a, b = split_indices(labels, holdout, seed + 2)  # +2: differs from the test/val draws
    return LabelledSplits(IndexSubset(bundle.train, a), IndexSubset(bundle.train, b))


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The label of every item, read without decoding inputs where the dataset allows it."""
    if isinstance(dataset, IndexSubset):
        base = dataset_labels_cheap(dataset.base)
        if base is not None:
            return base[dataset.indices]
    cheap = dataset_labels_cheap(dataset)
    if cheap is not None:
        return cheap
    return np.array([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def dataset_labels_cheap(dataset: Dataset) -> np.ndarray | None:
    for attr in ("y", "labels"):
        value = getattr(dataset, attr, None)
        if value is not None:
            return np.asarray(value.numpy() if torch.is_tensor(value) else value)
    return None


class Head(DifferentiableNode):
    """Cross-entropy of a classification head on the (shared) encoder's feature, split A."""

    shares_upstream_forward = True  # every evaluation reads the kept encoder features

    def __init__(
        self,
        name: str,
        head: ClassifierHead,
        pretrain: MaskedPretraining,
        splits: LabelledSplits,
        pool: Pool,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        loader: Any,
        unroll_steps: int = 1,
        estimator: str = "first_order",
        estimator_options: Any = None,
    ) -> None:
        super().__init__(
            name,
            head,
            optimizer,
            scheduler,
            loader=loader,
            unroll_steps=unroll_steps,
            estimator=estimator,
            estimator_options=estimator_options,
        )
        self.head = head
        self.pretrain = pretrain
        self.splits = splits
        self.pool = pool
        mae = pretrain.mae
        self.reuse = FeatureReuse([mae.tokenizer, mae.encoder])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's feature (B, D) of ``x``: all tokens, no masking."""
        return self.pretrain.mae.features(x, pool=self.pool)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head outputs (B, K) on the encoder's feature of ``x`` (any batch: split B too)."""
        return self.head(self.features(x))

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.head(self.reuse.features(x, lambda: self.features(x)))
        return classification_terms(logits, y)

    def heldout_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """Cross-entropy on a split-B batch (the mask node's loss)."""
        x, y = batch
        return classification_terms(self.logits(x), y)

    def release(self) -> None:
        """Drop the kept encoder graph of the head's batch (its last use has passed)."""
        self.reuse.clear()


def classification_terms(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy (the loss) and accuracy (logged) of logits (B, K) for labels (B,)."""
    loss = F.cross_entropy(logits, y.long())
    accuracy = (logits.detach().argmax(-1) == y).float().mean()
    return {"loss": loss, "accuracy": accuracy}


# ----------------------------------------------------------------------------------------------
# level 3: mask
# ----------------------------------------------------------------------------------------------


class Mask(Node):
    """The masking network's problem: the head's loss on split B (its cross-entropy for
    ``head``; a custom head's own loss)."""

    def __init__(
        self,
        name: str,
        masker: LearnedMasker,
        pretrain: MaskedPretraining,
        head: Downstream,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        loader: Any,
        unroll_steps: int = 1,
    ) -> None:
        super().__init__(
            name, masker, optimizer, scheduler, loader=loader, unroll_steps=unroll_steps
        )
        self.masker = masker
        self.pretrain = pretrain
        self.head = head

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.head.heldout_loss(batch)

    def backward(
        self,
        loss: torch.Tensor,
        params: Sequence[torch.Tensor],
        paths: Sequence[Sequence[Any]],
        create_graph: bool = False,
        retain_graph: bool = True,
        allow_unused: bool = True,
    ) -> None:
        """The masker's gradient: the sum over paths, each final estimator applied once.

        (The direct gradient is None: the split-B loss does not read the masker.)
        """
        params = list(params)
        self.set_grads(params, summed_path_gradient(loss, paths, self))
        self.head.release()  # the head's kept encoder graph has served its last use
        super().backward(loss, params, [], create_graph, retain_graph, allow_unused)


def summed_path_gradient(
    loss: torch.Tensor, paths: Sequence[Sequence[Any]], upper: Node
) -> list[torch.Tensor]:
    """``sum_p path_gradient(loss, p)`` with each final edge's estimator applied once.

    Every path here ends ``... -> L -> upper``. The vectors that the paths carry into the same
    last lower node L (:func:`~metamask.hypergrad.paths.path_gradient` on the path without its
    last edge) are summed before L's estimator maps them onto ``upper``'s parameters: every
    estimator is linear in its vector (darts and sama up to their finite difference), so this
    is the same sum at the cost of one estimator call instead of one per path (MLO-MAE: one
    finite difference through ``pretrain`` instead of two). Paths through a ``first_order``
    node contribute exactly zero and are skipped.
    """
    reaching: dict[int, tuple[Node, list[torch.Tensor]]] = {}
    for path in paths:
        lowers: list[Node] = list(path[1:-1])
        if lowers[0].hypergradient_in_graph or any(
            get_estimator(node.estimator).name == "first_order" for node in lowers
        ):
            continue
        vector = path_gradient(loss, path[:-1], retain_graph=True)  # on lowers[-1]'s parameters
        last = lowers[-1]
        if id(last) in reaching:
            vector = [a + b for a, b in zip(reaching[id(last)][1], vector, strict=True)]
        reaching[id(last)] = (last, vector)
    total = [torch.zeros_like(p) for p in upper.trainable_parameters()]
    for last, vector in reaching.values():
        indirect = apply_estimator(vector, last, upper)
        total = [t + i for t, i in zip(total, indirect, strict=True)]
    return total


def apply_estimator(vector: Sequence[torch.Tensor], lower: Node, upper: Node) -> list[torch.Tensor]:
    """``lower``'s estimator: the indirect gradient on ``upper``'s parameters from ``vector``."""
    estimator = get_estimator(lower.estimator)
    options = lower.estimator_options
    if options is None:
        options = estimator.default_options()
    return estimator.fn(vector, lower, upper, options)


# ----------------------------------------------------------------------------------------------
# node types for specs
# ----------------------------------------------------------------------------------------------


def mae_baseline(spec: RunSpec, pretrain: str = "pretrain") -> RunSpec:
    """The MAE baseline of an MLO-MAE spec: the same run with its pretrain node alone and
    random masks (no masker, head or upper levels; the published code's ``--baseline``)."""
    node = spec.graph.nodes[pretrain]
    alone = dataclasses.replace(
        node,
        unroll_steps=1,
        hypergradient=EstimatorSpec(),
        options={**node.options, "masker": {"type": "random"}},
    )
    return dataclasses.replace(
        spec,
        name=(
            spec.name.replace("mlomae", "mae") + "-mlo"
            if "mlomae" in spec.name
            else spec.name + "-mae"
        ),
        description=f"MAE baseline of {spec.name}",
        graph=GraphSpec(nodes={pretrain: alone}),
    )


def _estimator(ctx: BuildContext, name: str, spec: NodeSpec) -> tuple[str, Any]:
    where = f"graph.nodes.{name}.hypergradient"
    return spec.hypergradient.type, estimator_options(spec.hypergradient, ctx.source, where)


def _one(nodes: Sequence[Node], kind: type, what: str) -> Any:
    found = [node for node in nodes if isinstance(node, kind)]
    if len(found) != 1:
        raise GraphError(what + f" (found {[node.name for node in found] or 'none'})")
    return found[0]


@register_node_type("pretrain", PretrainOptions, "MLO-MAE level 1: MAE, masks from a masker")
def build_pretrain(ctx: BuildContext, name: str, spec: NodeSpec) -> Pretrain:
    options = ctx.options(PretrainOptions, spec, name)
    where = f"{ctx.source}: graph.nodes.{name}"
    mae = ctx.mae()
    masker = build_masker(
        options.masker, ctx.spec.model.mask_ratio, mae.tokenizer.num_tokens, mae.width
    )
    uppers = ctx.uppers(name)
    if isinstance(masker, LearnedMasker):
        masker = masker.to(ctx.device)
        if not uppers:
            raise GraphError(
                f"{where}.masker: a learned masker ({options.masker.type}) needs a mask node "
                f"above '{name}' to train it (u2l: {{mask: [{name}]}}); use type: random for MAE"
            )
    elif uppers:
        raise GraphError(
            f"{where}.masker: the random masker has no parameters for {uppers} to learn; "
            "use type: flat_mlp or token_mlp"
        )
    optimizer, scheduler = ctx.optimizer(mae, spec.optimizer or OptimizerSpec(), name)
    estimator, est_options = _estimator(ctx, name, spec)
    return Pretrain(
        name,
        mae,
        masker,
        optimizer,
        scheduler,
        ctx.loader(ctx.dataset(name, ctx.bundle.pretrain_set), name),
        spec.unroll_steps,
        estimator,
        est_options,
    )


@register_node_type("head", HeadOptions, "MLO-MAE level 2: classification head, split A")
def build_head(ctx: BuildContext, name: str, spec: NodeSpec) -> Head:
    options = ctx.options(HeadOptions, spec, name)
    where = f"{ctx.source}: graph.nodes.{name}"
    pretrain: MaskedPretraining = _one(
        ctx.feeders(name),
        MaskedPretraining,
        f"{where}: a head node reads the encoder of exactly one pretrain node below it "
        f"(pretrain, or reconstruct above adapt; l2u: {{pretrain: [{name}]}})",
    )
    info = ctx.bundle.info
    if not info.labelled or info.num_classes < 2 or info.metric == "token_accuracy":
        raise GraphError(
            f"{where}: MLO-MAE's head classifies whole inputs; {info.name} has "
            f"{'no labels' if not info.labelled else f'metric {info.metric}'}"
        )
    splits = split_labelled(ctx.bundle, options.holdout, ctx.spec.seed)
    head = ClassifierHead(pretrain.mae.width, info.num_classes, options.head_dropout)
    head = head.to(ctx.device)
    optimizer, scheduler = ctx.optimizer(head, spec.optimizer or OptimizerSpec(), name)
    estimator, est_options = _estimator(ctx, name, spec)
    return Head(
        name,
        head,
        pretrain,
        splits,
        options.pool,
        optimizer,
        scheduler,
        ctx.loader(ctx.dataset(name, splits.a), name),
        spec.unroll_steps,
        estimator,
        est_options,
    )


@register_node_type("mask", MaskOptions, "MLO-MAE level 3: the masker, head loss on split B")
def build_mask(ctx: BuildContext, name: str, spec: NodeSpec) -> Mask:
    ctx.options(MaskOptions, spec, name)
    where = f"{ctx.source}: graph.nodes.{name}"
    pretrain: MaskedPretraining = _one(
        ctx.lowers(name),
        MaskedPretraining,
        f"{where}: a mask node differentiates through exactly one pretrain node "
        f"(pretrain, or reconstruct above adapt; u2l: {{{name}: [pretrain]}})",
    )
    head: Downstream = _one(
        ctx.feeders(name),
        Downstream,
        f"{where}: a mask node reads the head of exactly one head node below it "
        f"(head, or a custom node; l2u: {{head: [{name}]}})",
    )
    if isinstance(head, Head) and head.pretrain is not pretrain:
        raise GraphError(f"{where}: '{head.name}' reads another encoder than '{pretrain.name}'")
    masker = pretrain.learned_masker()
    if masker is None:
        raise GraphError(f"{where}: '{pretrain.name}' masks at random; nothing to learn")
    if spec.hypergradient.type != "first_order" or spec.hypergradient.options:
        raise GraphError(
            f"{where}.hypergradient: mask is the top node; its gradient reaches the masker "
            f"through the estimators of the nodes below (set hypergradient on '{pretrain.name}' "
            f"and '{head.name}')"
        )
    lower_estimator = getattr(pretrain, "estimator", "first_order")
    if get_estimator(lower_estimator).name == "first_order":
        raise GraphError(
            f"{where}: '{pretrain.name}' uses the first_order estimator, so the masker would "
            f"get no gradient at all; set graph.nodes.{pretrain.name}.hypergradient (darts, ...)"
        )
    optimizer, scheduler = ctx.optimizer(masker, spec.optimizer or OptimizerSpec(), name)
    heldout = head.splits.b if isinstance(head, Head) else None
    assert isinstance(pretrain, Node)
    return Mask(
        name,
        masker,
        pretrain,
        head,
        optimizer,
        scheduler,
        ctx.loader(ctx.dataset(name, heldout), name),
        spec.unroll_steps,
    )

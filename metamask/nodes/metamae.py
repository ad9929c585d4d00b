"""MetaMAE as two Betty nodes (SPEC §2), and the plain MAE as the outer node alone.

``Adapt`` (inner, lower): draws the batch, masks it, encodes the visible tokens into the
amortized latent z0 and adapts it on the support set with a latent solver, producing z1 as a
differentiable function of the encoder and decoder. It owns no parameters.

``Reconstruct`` (outer, upper): reconstructs the masked tokens from z1 and adds
``reg_weight`` x the task-contrastive loss between z0 and z1; its optimizer updates the
encoder, the decoder and the projector. With no inner node it is the MAE baseline: it draws
its own batch, masks at random and reconstructs from the unadapted latent.

The two nodes share one batch through one explicit handle: the outer node reads the inner
node's :class:`LatentTask`, never the data loader.

With a learned masker on the inner node (``masker: {type: token_mlp}``; ``metamae+mask``), the
masker picks each batch's masks (its most probable tokens) and each masked token's outer loss
is multiplied by its masking probability, as MLO-MAE's pretrain node does; a ``mask`` node
above ``reconstruct`` trains the masker. The outer loss is then re-computable at other
parameter values (darts' finite differences through ``reconstruct``): the task keeps the
batch, its masks and its support set, and any evaluation after the first re-embeds,
re-encodes and re-adapts with them fixed (the estimator replays dropout's random numbers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metamask import distributed
from metamask.config import NodeSpec
from metamask.errors import GraphError
from metamask.hypergrad.latent import LatentSolver, LatentSolverOptions, get_latent_solver
from metamask.hypergrad.registry import FIRST_DERIVATIVES_ONLY
from metamask.losses import (
    nearby_support,
    pool_tokens,
    probability_weighted_loss,
    task_contrastive_loss,
)
from metamask.models.heads import Projector
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker, MaskerSpec, build_masker
from metamask.models.masking import Masks, RandomMasker
from metamask.models.transformer import twice_differentiable
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext
from metamask.nodes.registry import register_node_type

Masker = Callable[[torch.Tensor], Masks]


@dataclass(frozen=True)
class AdaptOptions:
    """Options of MetaMAE's inner node (YAML keys of an `adapt` node)."""

    inner_lr: float = 0.1  # latent step size (the published training script uses 0.5 on PAMAP2)
    inner_steps: int = 1  # gradient steps on the support loss
    s_ratio: float = 0.1  # probability that a masked neighbour of a visible token joins the support
    masker: MaskerSpec = field(  # random (MetaMAE) | token_mlp / flat_mlp (learned: metamae+mask)
        default_factory=lambda: MaskerSpec(type="random")
    )


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of the outer node (YAML keys of a `reconstruct` node)."""

    reg_weight: float | None = (
        None  # lambda of the task contrast; default 0.1 with an adapt node, else 0
    )
    temperature: float = 0.5  # InfoNCE temperature


@dataclass
class LatentTask:
    """One batch's meta-learning task, as the inner node leaves it for the outer node."""

    target: torch.Tensor  # (B, L, P) reconstruction targets or (B, L) token ids
    masks: Masks  # which tokens the encoder saw
    support: torch.Tensor  # (B, L) support weights: visible + nearby-S tokens
    amortized: torch.Tensor  # z0: (B, 1 + K, D), the encoder's latent
    adapted: torch.Tensor  # z1: (B, 1 + K, D), after the inner steps (in autograd's graph)
    x: torch.Tensor | None = None  # the batch's inputs, kept when the task can be re-solved
    probabilities: torch.Tensor | None = None  # (B, L) a learned masker's, in autograd's graph
    fresh: bool = True  # not yet read by the outer node (later reads re-solve the task)


class Adapt(Node):
    """MetaMAE's inner loop: gradient-based adaptation of the encoder's latent on the support."""

    hypergradient_in_graph = True

    def __init__(
        self,
        name: str,
        model: MaskedAutoencoder,
        masker: Masker | LearnedMasker,
        solver: LatentSolver,
        options: AdaptOptions,
        loader: Any,
    ) -> None:
        super().__init__(name, module=model, loader=loader, estimator=solver.name)
        self.model = model
        self.masker = masker
        self.solver = solver
        self.options = options
        self._task: LatentTask | None = None

    def trainable_parameters(self) -> list[torch.Tensor]:
        return []  # the encoder and decoder belong to the outer node (the masker: a mask node)

    @property
    def learned(self) -> bool:
        """True when a masking network picks the masks (``metamae+mask``)."""
        return isinstance(self.masker, LearnedMasker)

    @property
    def task(self) -> LatentTask:
        """The latest batch's task; the outer node's only way to see the batch."""
        if self._task is None:
            raise RuntimeError(f"node '{self.name}' has not stepped yet")
        return self._task

    def one_step_descent(self, batch: Any = None) -> dict[str, float]:
        if batch is None:
            self.cur_batch = self.get_batch()
            batch = self.cur_batch
        self._task, support_loss = self.solve(batch[0])
        return self.record_metrics({"support": support_loss})

    def solve(self, x: torch.Tensor, fixed: LatentTask | None = None) -> tuple[LatentTask, float]:
        """Mask, encode and adapt one batch; returns the task and the support loss at z0.

        With ``fixed`` (an earlier task of the same batch), its masks and support set are
        kept: the task is solved again at the parameters the model holds now.
        """
        model = self.model
        tokens = model.embed(x)  # (B, L, D)
        prob = None
        if isinstance(self.masker, LearnedMasker):
            prob = self.masker.probabilities(tokens)  # (B, L), the path to the masker
        if fixed is not None:
            masks, support = fixed.masks, fixed.support
        else:
            if isinstance(self.masker, LearnedMasker):
                assert prob is not None
                masks = self.masker.masks_from(prob.detach())
            else:
                masks = self.masker(tokens)
            support = nearby_support(masks.mask, model.grid, self.options.s_ratio)
        amortized = model.encode(tokens, masks)  # (B, 1 + K, D)
        if not amortized.requires_grad:  # constant parameters (darts' evaluations): the
            amortized = amortized.detach().requires_grad_(True)  # solver still steps in z
        target = model.targets(x)
        batch_size = x.shape[0]
        first_loss: list[float] = []

        def support_loss(latent: torch.Tensor) -> torch.Tensor:
            # pooled over every support token of the batch, x B: the step size acts per sample
            if self.solver.second_order:
                with twice_differentiable(model.decoder):
                    loss = model.reconstruction_loss(latent, masks, target, support)
            else:
                loss = model.reconstruction_loss(latent, masks, target, support)
            loss = loss * batch_size
            if not first_loss:
                first_loss.append(float(loss.detach()) / batch_size)
            return loss

        adapted = self.solver(support_loss, amortized)
        kept = x if prob is not None else None  # a learned masker's task is re-solved later
        task = LatentTask(target, masks, support, amortized, adapted, kept, prob)
        return task, first_loss[0]

    def resolve(self, task: LatentTask) -> LatentTask:
        """``task`` solved again at the model's current parameters, masks and support fixed."""
        if task.x is None:
            raise RuntimeError(f"node '{self.name}': this task did not keep its batch")
        again, _ = self.solve(task.x, fixed=task)
        again.fresh = False
        return again

    def training_step(self, batch: Any) -> torch.Tensor:
        raise RuntimeError("Adapt has no training step: it solves a latent problem per batch")


class OuterModule(nn.Module):
    """What the outer node optimizes: the auto-encoder and (MetaMAE) the projector."""

    def __init__(self, mae: MaskedAutoencoder, projector: nn.Module | None) -> None:
        super().__init__()
        self.mae = mae
        self.projector = projector


class Reconstruct(Node):
    """Masked reconstruction from the adapted latent (+ task contrast), or plain MAE.

    Below a ``mask`` node (the inner node has a learned masker), only first derivatives of
    its loss are taken toward the masker: darts, sama.
    """

    def __init__(
        self,
        name: str,
        module: OuterModule,
        options: ReconstructOptions,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        inner: Adapt | None = None,
        masker: Masker | None = None,
        loader: Any = None,
        unroll_steps: int = 1,
        estimator: str = "first_order",
        estimator_options: Any = None,
    ) -> None:
        if (inner is None) == (masker is None):
            raise ValueError("Reconstruct takes either an inner Adapt node or a masker, not both")
        self.reg_weight = float(options.reg_weight or 0.0)
        if inner is not None and self.reg_weight > 0 and module.projector is None:
            raise ValueError("a positive reg_weight needs a projector")
        super().__init__(
            name,
            module,
            optimizer,
            scheduler,
            loader=loader,
            unroll_steps=unroll_steps,
            estimator=estimator,
            estimator_options=estimator_options,
        )
        self.outer = module
        self.options = options
        self.inner = inner
        self.masker = masker
        if inner is not None and inner.learned:
            # its re-evaluations re-run the latent solver, whose graph only gives first
            # derivatives of the outer loss in the masker (the fused attention kernels)
            self.supported_estimators = FIRST_DERIVATIVES_ONLY

    @property
    def mae(self) -> MaskedAutoencoder:
        """The auto-encoder this node trains."""
        return self.outer.mae

    def learned_masker(self) -> LearnedMasker | None:
        """The inner node's masking network (``metamae+mask``), or None."""
        if self.inner is not None and isinstance(self.inner.masker, LearnedMasker):
            return self.inner.masker
        return None

    def get_batch(self) -> Any:
        if self.inner is not None:
            return self.inner.task
        return super().get_batch()

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        mae = self.outer.mae
        if isinstance(batch, LatentTask):
            if batch.probabilities is not None:  # learned masks: the path to the masker
                assert self.inner is not None
                if not batch.fresh:  # re-evaluation (darts), perhaps at other parameters
                    batch = self.inner.resolve(batch)
                batch.fresh = False
                assert batch.probabilities is not None
                weighted = probability_weighted_loss(
                    mae, batch.adapted, batch.masks, batch.target, batch.probabilities
                )
                rec, terms = weighted["loss"], weighted
            else:
                rec = mae.reconstruction_loss(
                    batch.adapted, batch.masks, batch.target, batch.masks.mask
                )
                terms = {"reconstruction": rec}
            if self.reg_weight > 0:
                assert self.outer.projector is not None
                contrast = task_contrastive_loss(
                    # over the global batch under data parallelism (metamask.distributed)
                    self.outer.projector(distributed.gather_rows(pool_tokens(batch.amortized))),
                    self.outer.projector(distributed.gather_rows(pool_tokens(batch.adapted))),
                    self.options.temperature,
                )
                return {**terms, "loss": rec + self.reg_weight * contrast, "contrastive": contrast}
            return {**terms, "loss": rec}
        assert self.masker is not None
        x = batch[0]
        tokens = mae.embed(x)
        masks = self.masker(tokens)
        rec = mae.reconstruction_loss(mae.encode(tokens, masks), masks, mae.targets(x), masks.mask)
        return {"loss": rec, "reconstruction": rec}


# ----------------------------------------------------------------------------------------------
# node types for specs
# ----------------------------------------------------------------------------------------------


@register_node_type("adapt", AdaptOptions, "MetaMAE inner loop: adapt the latent on the support")
def build_adapt(ctx: BuildContext, name: str, spec: NodeSpec) -> Adapt:
    options = ctx.options(AdaptOptions, spec, name)
    if spec.optimizer is not None:
        raise GraphError(
            f"{ctx.source}: graph.nodes.{name}.optimizer: an adapt node owns no parameters "
            "(the outer node updates the encoder and decoder)"
        )
    solver = get_latent_solver(
        spec.hypergradient,
        LatentSolverOptions(steps=options.inner_steps, lr=options.inner_lr),
        ctx.source,
        f"graph.nodes.{name}.hypergradient",
    )
    mae = ctx.mae()
    masker = build_masker(
        options.masker, ctx.spec.model.mask_ratio, mae.tokenizer.num_tokens, mae.width
    )
    if isinstance(masker, LearnedMasker):
        masker = masker.to(ctx.device)
    wiring = ctx.wire(name, spec, data=ctx.bundle.pretrain_set, edge_estimator=False)
    return Adapt(name, mae, masker, solver, options, wiring.loader)


@register_node_type(
    "reconstruct",
    ReconstructOptions,
    "masked reconstruction (MAE), from an adapted latent (MetaMAE)",
)
def build_reconstruct(ctx: BuildContext, name: str, spec: NodeSpec) -> Reconstruct:
    options = ctx.options(ReconstructOptions, spec, name)
    where = f"{ctx.source}: graph.nodes.{name}"
    lowers = ctx.lowers(name)
    inners = [node for node in lowers if isinstance(node, Adapt)]
    if len(inners) > 1 or len(inners) != len(lowers):
        raise GraphError(
            f"{where}: a reconstruct node differentiates through at most one adapt node, "
            f"got {[node.name for node in lowers]}"
        )
    inner = inners[0] if inners else None
    learned = inner is not None and inner.learned
    uppers = ctx.uppers(name)
    if not uppers and (spec.hypergradient.type != "first_order" or spec.hypergradient.options):
        raise GraphError(
            f"{where}.hypergradient: reconstruct is the top node; it has no upper to "
            "pass gradients to (set the estimator on the adapt node)"
        )
    if learned and not uppers:
        raise GraphError(
            f"{where}: the adapt node's learned masker needs a mask node above '{name}' to "
            f"train it (u2l: {{mask: [{name}]}}); use masker: {{type: random}} for MetaMAE"
        )
    if uppers and not learned:
        raise GraphError(
            f"{where}: {uppers} differentiate through '{name}', but its masks are random "
            "(give the adapt node a learned masker: masker: {type: token_mlp})"
        )
    reg_weight: float = (
        options.reg_weight if options.reg_weight is not None else (0.1 if inner else 0.0)
    )
    if inner is None and reg_weight > 0:
        raise GraphError(f"{where}.reg_weight: the contrastive term needs an adapt node below")
    options = dataclasses.replace(options, reg_weight=reg_weight)
    mae = ctx.mae()
    projector = Projector(mae.width).to(ctx.device) if reg_weight > 0 else None
    module = OuterModule(mae, projector)
    if inner is not None:
        wiring = ctx.wire(name, spec, module, reads_data=False)
        return Reconstruct(name, module, options, inner=inner, **wiring.kwargs())
    wiring = ctx.wire(name, spec, module, ctx.bundle.pretrain_set)
    masker = RandomMasker(ctx.spec.model.mask_ratio)
    return Reconstruct(name, module, options, masker=masker, **wiring.kwargs())

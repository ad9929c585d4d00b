"""MetaMAE's outer node, ``reconstruct``, and the MAE baseline: the same node alone.

Above an ``adapt`` node it reconstructs the masked tokens from the adapted latent z1 and adds
``reg_weight`` x the task-contrastive loss between z0 and z1; its optimizer updates the
encoder, the decoder and the projector. With no inner node it is MAE: it draws its own batch,
masks at random and reconstructs from the unadapted latent. With a learned masker on the inner
node (``metamae+mask``) each masked token's loss is multiplied by its masking probability, as
MLO-MAE's pretrain node does, and a ``mask`` node above trains the masker.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metamask import distributed
from metamask.config import NodeSpec
from metamask.config.origins import located, located_estimator, origin_of
from metamask.errors import GraphError
from metamask.hypergrad.registry import FIRST_DERIVATIVES_ONLY, get_estimator
from metamask.losses import (
    pool_tokens,
    probability_weighted_loss,
    task_contrastive_loss,
)
from metamask.models.heads import Projector
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker
from metamask.models.masking import RandomMasker
from metamask.models.transformer import twice_differentiable
from metamask.nodes.adapt import Adapt, LatentTask, Masker
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.registry import register_node_type
from metamask.ranges import NonNegative, Positive


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of the outer node (YAML keys of a `reconstruct` node)."""

    reg_weight: NonNegative | None = (
        None  # lambda of the task contrast; default 0.1 with an adapt node, else 0
    )
    temperature: Positive = 0.5  # InfoNCE temperature


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

    #: its steps can be replayed functionally (metamask.hypergrad.audit's ``unrolled``
    #: reference on the masker edge of metamae+mask): a replayed step solves its latent again
    #: at the replayed parameters, masks and support fixed
    replays_steps = True

    def __init__(
        self,
        name: str,
        module: OuterModule,
        options: ReconstructOptions,
        wiring: Wiring,
        inner: Adapt | None = None,
        masker: Masker | None = None,
    ) -> None:
        if (inner is None) == (masker is None):
            raise ValueError("Reconstruct takes either an inner Adapt node or a masker, not both")
        self.reg_weight = float(options.reg_weight or 0.0)
        if inner is not None and self.reg_weight > 0 and module.projector is None:
            raise ValueError("a positive reg_weight needs a projector")
        super().__init__(name, module, **wiring.kwargs())
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
        with ExitStack() as stack:
            if get_estimator(self.estimator).name not in FIRST_DERIVATIVES_ONLY:
                # a second-order reference (the audit's unrolled replay of this node's steps)
                # differentiates this loss twice: math-path attention, which has a double
                # backward (the estimators the node trains with take first derivatives only)
                stack.enter_context(twice_differentiable(self.outer))
                masker = self.learned_masker()
                if masker is not None:
                    stack.enter_context(twice_differentiable(masker))
            return self._training_step(batch)

    def _training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        mae = self.outer.mae
        if isinstance(batch, LatentTask):
            if batch.probabilities is not None:  # learned masks: the path to the masker
                assert self.inner is not None
                if not batch.fresh:  # re-evaluation (darts), perhaps at other parameters
                    batch = self.inner.resolve(batch)
                batch.fresh = False
                assert batch.probabilities is not None
                masker = self.learned_masker()
                assert masker is not None
                weighted = probability_weighted_loss(
                    mae,
                    batch.adapted,
                    batch.masks,
                    batch.target,
                    batch.probabilities,
                    masker.weighting,
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


@register_node_type(
    "reconstruct",
    ReconstructOptions,
    "masked reconstruction (MAE), from an adapted latent (MetaMAE)",
)
def build_reconstruct(ctx: BuildContext, name: str, spec: NodeSpec) -> Reconstruct:
    options = ctx.options(ReconstructOptions, spec, name)
    where = located(ctx.source, f"graph.nodes.{name}")  # the file that wrote the node
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
            f"{located_estimator(ctx.source, name)}: reconstruct is the "
            "top node; it has no upper to pass gradients to (set the estimator on the adapt node)"
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
        raise GraphError(
            f"{located(ctx.source, f'graph.nodes.{name}.reg_weight')}: the contrastive term "
            "needs an adapt node below"
        )
    reader = inner.name if inner is not None else name  # whose loader draws the batches
    (batch, key), examples = ctx.batch_size(reader), len(ctx.bundle.pretrain_set)  # type: ignore[arg-type]
    last = 0 if ctx.spec.data.drop_last else examples % batch  # the size of a short last batch
    if reg_weight > 0 and (batch < 2 or last == 1):  # BatchNorm and InfoNCE need two examples
        short = f" (and {examples} examples leave a last batch of 1: data.drop_last is false)"
        raise GraphError(
            f"{origin_of(ctx.source, key)}: {key}: the task contrast of "
            f"node '{name}' (reg_weight {reg_weight}) compares the examples of a batch; expected "
            f"batches of at least 2, got {batch}{short if batch > 1 else ''}"
        )
    options = dataclasses.replace(options, reg_weight=reg_weight)
    mae = ctx.mae()
    projector = Projector(mae.width).to(ctx.device, mae.dtype) if reg_weight > 0 else None
    module = OuterModule(mae, projector)
    if inner is not None:
        wiring = ctx.wire(name, spec, module, reads_data=False)
        return Reconstruct(name, module, options, wiring, inner=inner)
    wiring = ctx.wire(name, spec, module, ctx.bundle.pretrain_set)
    masker = RandomMasker(ctx.spec.model.mask_ratio)
    return Reconstruct(name, module, options, wiring, masker=masker)

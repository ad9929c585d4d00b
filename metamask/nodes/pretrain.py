"""MLO-MAE's level 1, ``pretrain``: the MAE, with masks from a masker (docs/mlomae.md).

With a learned masker the ``r L`` most probable tokens are masked and each masked token's loss
is multiplied by its masking probability, the path by which gradient reaches the masker (a
``mask`` node above owns and trains it). With the random masker and no node above it, it is
the plain MAE, bit for bit the ``reconstruct`` node alone. A batch's masks are chosen once, at
its first evaluation (the node's own step), and kept, so every re-evaluation of the loss
(darts' finite differences) sees the same masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metamask.config import NodeSpec
from metamask.errors import GraphError
from metamask.hypergrad.registry import FIRST_DERIVATIVES_ONLY, get_estimator
from metamask.losses import probability_weighted_loss
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker, MaskerSpec, build_masker
from metamask.models.masking import Masks, RandomMasker
from metamask.models.transformer import twice_differentiable
from metamask.nodes.context import BuildContext
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.registry import register_node_type


@dataclass(frozen=True)
class PretrainOptions:
    """Options of a ``pretrain`` node."""

    masker: MaskerSpec = field(default_factory=MaskerSpec)  # who picks the masked tokens


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
        optimizer: torch.optim.Optimizer | None,
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
    wiring = ctx.wire(name, spec, mae, ctx.bundle.pretrain_set)
    return Pretrain(name, mae, masker, **wiring.kwargs())

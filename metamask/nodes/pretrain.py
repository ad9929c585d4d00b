"""MLO-MAE's level 1, ``pretrain``: the MAE, with masks from a masker (docs/mlomae.md).

The learned masker's ``r L`` most probable tokens are masked and each masked token's loss is
multiplied by its masking probability, the path by which gradient reaches the masker (a
``mask`` node above owns and trains it). A batch's masks are chosen once, at its first
evaluation (the node's own step), and kept, so every re-evaluation of the loss (darts' finite
differences) sees the same masks. The MAE baseline is not this node with random masks but the
``reconstruct`` node alone, under the same node name so that it draws the same batches
(``examples/mlomae_cifar.py``'s ``mae_baseline``): metamask has one MAE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch

from metamask.config import NodeSpec
from metamask.config.origins import located, origin_of
from metamask.errors import ConfigError, GraphError
from metamask.hypergrad.registry import FIRST_DERIVATIVES_ONLY, get_estimator
from metamask.losses import probability_weighted_loss
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker, MaskerSpec, build_masker
from metamask.models.masking import Masks
from metamask.models.transformer import twice_differentiable
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.registry import register_node_type


@dataclass(frozen=True)
class PretrainOptions:
    """Options of a ``pretrain`` node."""

    masker: MaskerSpec = field(default_factory=MaskerSpec)  # flat_mlp or token_mlp


@dataclass
class MaskedBatch:
    """A pretraining batch and its masks, fixed for every evaluation of the batch's loss."""

    x: torch.Tensor  # (B, *input_shape)
    masks: Masks | None  # None until the masker has scored the batch (its first evaluation)


class Pretrain(DifferentiableNode):
    """MAE reconstruction with masks from a learned ``masker``; loss x masking probability."""

    def __init__(
        self,
        name: str,
        mae: MaskedAutoencoder,
        masker: LearnedMasker,
        wiring: Wiring,
    ) -> None:
        super().__init__(name, mae, **wiring.kwargs())
        self.mae = mae
        self.masker = masker

    def learned_masker(self) -> LearnedMasker:
        """The masking network whose probabilities weight this node's loss."""
        return self.masker

    def get_batch(self) -> MaskedBatch:
        """Draw a batch; its masks are chosen at its first evaluation."""
        return MaskedBatch(super().get_batch()[0], None)

    def training_step(self, batch: MaskedBatch) -> dict[str, torch.Tensor]:
        with self._differentiable_twice():
            mae = self.mae
            tokens = mae.embed(batch.x)  # (B, L, D)
            prob = self.masker.probabilities(tokens)  # (B, L), the path to the masker
            if batch.masks is None:  # the node's own step: the masks of this batch
                batch.masks = self.masker.masks_from(prob.detach())
            masks = batch.masks
            latent, target = mae.encode(tokens, masks), mae.targets(batch.x)
            return probability_weighted_loss(
                mae, latent, masks, target, prob, self.masker.weighting
            )

    @contextmanager
    def _differentiable_twice(self) -> Iterator[None]:
        """Math-path attention (it has a double backward) unless the estimator through this
        node only ever takes first derivatives of its loss; the fused kernel is faster."""
        with ExitStack() as stack:
            if get_estimator(self.estimator).name not in FIRST_DERIVATIVES_ONLY:
                stack.enter_context(twice_differentiable(self.mae))
                stack.enter_context(twice_differentiable(self.masker))
            yield


@register_node_type("pretrain", PretrainOptions, "MLO-MAE level 1: MAE, masks from a masker")
def build_pretrain(ctx: BuildContext, name: str, spec: NodeSpec) -> Pretrain:
    options = ctx.options(PretrainOptions, spec, name)
    key = f"graph.nodes.{name}.masker"
    mae = ctx.mae()
    try:
        masker = build_masker(
            options.masker, ctx.spec.model.mask_ratio, mae.tokenizer.num_tokens, mae.width
        )
    except ConfigError as exc:  # the masker's own check of its options: name the writer
        raise ctx.option_error(name, "masker", exc) from None
    if not isinstance(masker, LearnedMasker):
        raise GraphError(
            f"{origin_of(ctx.source, key + '.type')}: {key}: pretrain learns where to mask "
            "(flat_mlp or token_mlp); with random masks it would be MAE, which is the "
            "reconstruct node alone (type: reconstruct)"
        )
    masker = masker.to(ctx.device, mae.dtype)
    if not ctx.uppers(name):
        raise GraphError(
            f"{located(ctx.source, key)}: a learned masker ({options.masker.type}) needs a mask "
            f"node above '{name}' to train it (u2l: {{mask: [{name}]}}); for MAE use a "
            "reconstruct node"
        )
    wiring = ctx.wire(name, spec, mae, ctx.bundle.pretrain_set)
    return Pretrain(name, mae, masker, wiring)

"""MLO-MAE's level 2, ``head``: a classification head on the shared encoder, trained on split A.

The head is the published one (LayerNorm -> dropout -> linear, :class:`ClassifierHead`) on
the encoder's CLS feature (or the pooled tokens). Its loss on split B, held out from A, is
what the ``mask`` node above minimises (:meth:`Head.heldout_loss`). The encoder forward of the
head's batch runs once per encoder state (:class:`~metamask.nodes.feature_reuse.FeatureReuse`)
however often an estimator re-evaluates the head's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from metamask.config import NodeSpec
from metamask.config.origins import located
from metamask.data.labelled_splits import LabelledSplits, split_labelled
from metamask.errors import GraphError
from metamask.losses import classification_terms
from metamask.models.heads import ClassifierHead
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.feature_reuse import FeatureReuse
from metamask.nodes.protocols import MaskedPretraining
from metamask.nodes.registry import register_node_type
from metamask.nodes.select import only_one
from metamask.ranges import Rate, Ratio

Pool = Literal["cls", "global"]


@dataclass(frozen=True)
class HeadOptions:
    """Options of a ``head`` node."""

    holdout: Ratio = 0.2  # share of the labelled training split held out as split B (mask node)
    head_dropout: Rate = 0.1  # dropout before the head's linear layer (published: 0.1)
    pool: Pool = "cls"  # encoder feature the head reads: CLS token (published) or global pool


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
        wiring: Wiring,
    ) -> None:
        super().__init__(name, head, **wiring.kwargs())
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


@register_node_type("head", HeadOptions, "MLO-MAE level 2: classification head, split A")
def build_head(ctx: BuildContext, name: str, spec: NodeSpec) -> Head:
    options = ctx.options(HeadOptions, spec, name)
    where = located(ctx.source, f"graph.nodes.{name}")  # the file that wrote the node
    pretrain: MaskedPretraining = only_one(
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
    head = head.to(ctx.device, pretrain.mae.dtype)
    wiring = ctx.wire(name, spec, head, splits.a)
    return Head(name, head, pretrain, splits, options.pool, wiring)

"""MLO-MAE's level 3, ``mask``: the masking network's problem, the head's loss on split B.

Its gradient is entirely indirect: through how pretraining depends on the masker, directly
(``mask -> pretrain -> mask``) and through the head (``mask -> head -> pretrain -> mask``).
It applies each final edge's estimator once to the sum of both paths' vectors
(:func:`metamask.hypergrad.paths.summed_path_gradient`). It sits on any
:class:`~metamask.nodes.protocols.MaskedPretraining` node below a
:class:`~metamask.nodes.protocols.Downstream` one, so ``metamae+mask`` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metamask.config import NodeSpec
from metamask.config.origins import located, located_estimator
from metamask.errors import GraphError
from metamask.hypergrad.paths import summed_path_gradient
from metamask.hypergrad.registry import get_estimator
from metamask.models.maskers import LearnedMasker
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.head import Head
from metamask.nodes.protocols import Downstream, MaskedPretraining
from metamask.nodes.registry import register_node_type
from metamask.nodes.select import only_one
from metamask.optim import clip_update
from metamask.ranges import Positive


@dataclass(frozen=True)
class MaskOptions:
    """Options of a ``mask`` node (its masker itself is set on the pretrain node)."""

    # the largest L2 norm of one masker update (all its parameters together); a longer step is
    # scaled back to it (issue 23: a clipped step keeps AdamW from saturating the masker in a
    # few steps). None: unclipped, as published
    max_step: Positive | None = None


class Mask(Node):
    """The masking network's problem: the head's loss on split B (its cross-entropy for
    ``head``; a custom head's own loss)."""

    def __init__(
        self,
        name: str,
        masker: LearnedMasker,
        pretrain: MaskedPretraining,
        head: Downstream,
        wiring: Wiring,
        options: MaskOptions | None = None,
    ) -> None:
        super().__init__(name, masker, **wiring.kwargs())
        self.masker = masker
        self.pretrain = pretrain
        self.head = head
        self.options = options or MaskOptions()

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The masker's optimizer step, scaled back to ``max_step`` when set (logged:
        ``step_norm``, the update's norm before clipping, and ``step_clipped``)."""
        if self.options.max_step is None:
            super().optimizer_step(*args, **kwargs)
            return
        params = self.trainable_parameters()
        before = [p.detach().clone() for p in params]
        super().optimizer_step(*args, **kwargs)
        norm, clipped = clip_update(params, before, self.options.max_step)
        self.last_metrics["step_norm"] = norm
        self.last_metrics["step_clipped"] = float(clipped)

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.head.heldout_loss(batch)

    def compute_gradients(
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
        indirect = summed_path_gradient(loss, paths, self)
        self.set_grads(params, indirect)
        self.keep_hypergradient(indirect)
        self.head.release()  # the head's kept encoder graph has served its last use
        super().compute_gradients(loss, params, [], create_graph, retain_graph, allow_unused)


@register_node_type("mask", MaskOptions, "MLO-MAE level 3: the masker, head loss on split B")
def build_mask(ctx: BuildContext, name: str, spec: NodeSpec) -> Mask:
    options = ctx.options(MaskOptions, spec, name)
    where = located(ctx.source, f"graph.nodes.{name}")  # the file that wrote the node
    pretrain: MaskedPretraining = only_one(
        ctx.lowers(name),
        MaskedPretraining,
        f"{where}: a mask node differentiates through exactly one pretrain node "
        f"(pretrain, or reconstruct above adapt; u2l: {{{name}: [pretrain]}})",
    )
    head: Downstream = only_one(
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
            f"{located_estimator(ctx.source, name)}: mask is the top node; its gradient "
            "reaches the masker through the estimators of the nodes below (set hypergradient "
            f"on '{pretrain.name}' and '{head.name}')"
        )
    lower_estimator = getattr(pretrain, "estimator", "first_order")
    if get_estimator(lower_estimator).name == "first_order":
        raise GraphError(
            f"{located_estimator(ctx.source, pretrain.name)}: "
            f"'{pretrain.name}' uses the first_order estimator, so the masker would get no "
            f"gradient at all from '{name}'; set an estimator that passes it on (darts, ...)"
        )
    heldout = head.splits.b if isinstance(head, Head) else None
    wiring = ctx.wire(name, spec, masker, heldout)
    return Mask(name, masker, pretrain, head, wiring, options)

"""MetaMAE's inner node, ``adapt``: one batch's task, its latent adapted on the support set.

It draws the batch, masks it, encodes the visible tokens into the amortized latent z0 and
adapts it on the support set (the visible tokens plus "nearby-S" masked neighbours) with a
latent solver (:mod:`metamask.hypergrad.latent`), producing z1 as a differentiable function of
the encoder and decoder. It owns no parameters; it publishes a typed :class:`LatentTask`,
which the ``reconstruct`` node above reads through an explicit handle. With a learned masker
(``masker: {type: token_mlp}``; ``metamae+mask``) the masker picks each batch's masks (its most
probable tokens), and the task keeps the batch so that it can be solved again at other
parameter values (darts' finite differences), masks and support fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from metamask.config import EstimatorSpec, NodeSpec
from metamask.config.origins import origin_of
from metamask.errors import ConfigError, GraphError
from metamask.hypergrad.audit import AUDIT_KEY
from metamask.hypergrad.latent import LatentSolver, LatentSolverOptions, get_latent_solver
from metamask.hypergrad.latent_audit import (
    LatentAuditOptions,
    parse_latent_audit,
    rng_state,
    split_latent_audit,
)
from metamask.losses import (
    nearby_support,
)
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker, MaskerSpec, build_masker
from metamask.models.masking import Masks, RandomMasker
from metamask.models.transformer import twice_differentiable
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext
from metamask.nodes.registry import register_node_type
from metamask.ranges import NonNegativeInt, Positive, Probability

Masker = Callable[[torch.Tensor], Masks]


@dataclass(frozen=True)
class AdaptOptions:
    """Options of MetaMAE's inner node (YAML keys of an `adapt` node)."""

    inner_lr: Positive = 0.1  # latent step size (the published training script uses 0.5 on PAMAP2)
    inner_steps: NonNegativeInt = 1  # gradient steps on the support loss (0: z1 = z0, ablation)
    s_ratio: Probability = 0.1  # chance a masked neighbour of a visible token joins the support
    masker: MaskerSpec = field(  # random (MetaMAE) | token_mlp / flat_mlp (learned: metamae+mask)
        default_factory=lambda: MaskerSpec(type="random")
    )
    # how z1 is solved and differentiated: {type: first_order | unrolled | implicit, ...its
    # options} (metamask.hypergrad.latent); not a graph edge's `hypergradient` estimator.
    # `audit: {every, reference: unrolled | implicit, ...}` compares it with a reference
    # solver while the run trains (metamask.hypergrad.latent_audit)
    latent_solver: Mapping[str, Any] = field(default_factory=lambda: {"type": "first_order"})


@dataclass
class LatentTask:
    """One batch's meta-learning task, as the inner node leaves it for the outer node."""

    target: torch.Tensor  # (B, L, P) reconstruction targets or (B, L) token ids
    masks: Masks  # which tokens the encoder saw (masks.ids_keep: the kept tokens)
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
        #: where the step's random decisions (the random masker's kept tokens, the nearby-S
        #: support) are drawn: None is torch's global RNG (training); a generator of your own
        #: makes them reproducible apart from the rest of the run (dropout, data order)
        self.generator: torch.Generator | None = None
        #: ``latent_solver.audit`` (metamask.hypergrad.latent_audit), None without one
        self.latent_audit: LatentAuditOptions | None = None
        #: set by the latent audit: keep the RNG state each step solves its task from
        #: (:attr:`solve_rng`), so that the reference solve draws the same random numbers
        self.record_solve_rng = False
        self.solve_rng: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.solve_generator: torch.Tensor | None = None  # and :attr:`generator`'s, if set
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

    def descend(self, batch: Any = None) -> dict[str, float]:
        """Solve the batch's task (no parameters of its own to update)."""
        if batch is None:
            self.cur_batch = self.get_batch()
            batch = self.cur_batch
        if self.record_solve_rng:  # copies of the states: the streams themselves are untouched
            self.solve_rng = rng_state(self.device)
            self.solve_generator = None if self.generator is None else self.generator.get_state()
        self._task, support_loss = self.solve(batch[0])
        return self.record_metrics({"support": support_loss})

    def solve(
        self, x: torch.Tensor, fixed: LatentTask | None = None
    ) -> tuple[LatentTask, torch.Tensor]:
        """Mask, encode and adapt one batch; returns the task and the support loss at z0 (a
        detached float64 scalar, read on the host only when it is logged).

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
                masks = self._draw_masks(tokens)
            support = nearby_support(
                masks.mask, model.grid, self.options.s_ratio, generator=self.generator
            )
        amortized = model.encode(tokens, masks)  # (B, 1 + K, D)
        if not amortized.requires_grad:  # constant parameters (darts' evaluations): the
            amortized = amortized.detach().requires_grad_(True)  # solver still steps in z
        target = model.targets(x)
        batch_size = x.shape[0]
        first_loss: list[torch.Tensor] = []  # kept on the device: no host sync mid-forward

        def support_loss(latent: torch.Tensor) -> torch.Tensor:
            # pooled over every support token of the batch, x B: the step size acts per sample
            if self.solver.second_order:
                with twice_differentiable(model.decoder):
                    loss = model.reconstruction_loss(latent, masks, target, support)
            else:
                loss = model.reconstruction_loss(latent, masks, target, support)
            loss = loss * batch_size
            if not first_loss:
                first_loss.append(loss.detach().double() / batch_size)
            return loss

        adapted = self.solver(support_loss, amortized)
        if not first_loss:  # no inner step (inner_steps 0): the support loss at z0, for the log
            with torch.no_grad():
                support_loss(amortized)
        kept = x if prob is not None else None  # a learned masker's task is re-solved later
        task = LatentTask(target, masks, support, amortized, adapted, kept, prob)
        return task, first_loss[0]

    def _draw_masks(self, tokens: torch.Tensor) -> Masks:
        """A random masker's masks, from :attr:`generator` when one is set."""
        if isinstance(self.masker, RandomMasker):
            return self.masker(tokens, generator=self.generator)
        if self.generator is not None:
            raise TypeError(
                f"node '{self.name}': Adapt.generator draws the random masker's masks, but this "
                f"node's masker is a {type(self.masker).__name__}"
            )
        assert not isinstance(self.masker, LearnedMasker)
        return self.masker(tokens)

    def resolve(self, task: LatentTask) -> LatentTask:
        """``task`` solved again at the model's current parameters, masks and support fixed."""
        if task.x is None:
            raise RuntimeError(f"node '{self.name}': this task did not keep its batch")
        again, _ = self.solve(task.x, fixed=task)
        again.fresh = False
        return again

    def training_step(self, batch: Any) -> torch.Tensor:
        raise RuntimeError("Adapt has no training step: it solves a latent problem per batch")


@register_node_type("adapt", AdaptOptions, "MetaMAE inner loop: adapt the latent on the support")
def build_adapt(ctx: BuildContext, name: str, spec: NodeSpec) -> Adapt:
    options = ctx.options(AdaptOptions, spec, name)
    if spec.optimizer is not None:
        raise GraphError(
            f"{origin_of(ctx.source, f'graph.nodes.{name}.optimizer')}: "
            f"graph.nodes.{name}.optimizer: an adapt node owns no parameters (the outer node "
            "updates the encoder and decoder)"
        )
    if spec.hypergradient != EstimatorSpec():  # a NodeSpec made in Python, not parsed
        raise GraphError(
            f"{origin_of(ctx.source, f'graph.nodes.{name}.hypergradient')}: "
            f"graph.nodes.{name}.hypergradient: an adapt node's solver is latent_solver: "
            f"{{type: {spec.hypergradient.type}}}; hypergradient is a graph edge's estimator"
        )
    own, audit = split_latent_audit(options.latent_solver)
    solver_spec = EstimatorSpec(
        type=str(own.get("type", "first_order")),
        options={k: v for k, v in own.items() if k != "type"},
    )
    if options.inner_steps == 0 and solver_spec.type == "implicit":
        raise GraphError(
            f"{origin_of(ctx.source, f'graph.nodes.{name}.inner_steps')}: "
            f"graph.nodes.{name}.inner_steps: 0 (no latent adaptation) leaves no inner solution "
            "for the implicit solver to differentiate; expected at least 1, or latent_solver "
            "type unrolled / first_order (with 0 steps both pass z0 on unchanged)"
        )
    solver = get_latent_solver(
        solver_spec,
        LatentSolverOptions(steps=options.inner_steps, lr=options.inner_lr),
        ctx.source,
        f"graph.nodes.{name}.latent_solver",
    )
    latent_audit = parse_latent_audit(
        solver.name, audit, ctx.source, f"graph.nodes.{name}.latent_solver.{AUDIT_KEY}"
    )
    mae = ctx.mae()
    try:
        masker = build_masker(
            options.masker, ctx.spec.model.mask_ratio, mae.tokenizer.num_tokens, mae.width
        )
    except ConfigError as exc:  # the masker's own check of its options: name the writer
        raise ctx.option_error(name, "masker", exc) from None
    if isinstance(masker, LearnedMasker):
        masker = masker.to(ctx.device, mae.dtype)
    wiring = ctx.wire(name, spec, data=ctx.bundle.pretrain_set, edge_estimator=False)
    node = Adapt(name, mae, masker, solver, options, wiring.loader)
    node.latent_audit = latent_audit
    return node

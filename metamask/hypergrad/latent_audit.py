"""Audit MetaMAE's latent solver against a reference solver, on the graph it trains.

An ``adapt`` node's solver is the estimator of its edge: the outer node's gradient reaches the
encoder and decoder through the adapted latent z1 inside autograd
(:mod:`metamask.hypergrad.latent`). ``latent_solver: {type: first_order, audit: {every: 20,
reference: unrolled}}`` compares that gradient with a reference solver's every N steps of the
outer node (its local steps), on the same state, batch, masks, support set and random numbers:

- the *estimate* is what the run differentiates: ``(d z1 / d theta)^T dL/dz1`` on the run's
  own outer loss, ``theta`` the outer node's parameters (the encoder, decoder and projector);
- the *reference* solves the same task again with the reference solver, from the RNG state
  the run's solve started from (so the random masks, the nearby-S support and the dropout of
  the solve are redrawn identically), evaluates the outer node's loss on it from the RNG
  state the outer step started from, and differentiates it the same way.

Both are compared by :func:`metamask.hypergrad.audit.compare` (cosine, norm ratio, relative
error, same sign) and logged like an edge audit, as the edge ``adapt->reconstruct``. The
outer node's whole gradient (direct terms + the path through z1) is compared too
(``total_cosine``, ``total_norm_ratio``): the direct terms are the same for every solver, so
these say how much the solver's error moves the update. The reference is then thrown away:
it runs inside a forked RNG with every node's buffers put back, so a run is bitwise the same
with the audit on or off.

References: ``unrolled`` (the K inner steps differentiated through: the exact derivative of
the adaptation the run performs) and ``implicit`` (the proximal problem's implicit gradient
with ``iterations`` CG steps: exact for the proximal fixed point, equal to ``unrolled`` up to
``O((inner_lr * H)^2)`` for one inner step). A learned masker's top-k masks are held fixed, as
the solvers hold them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from metamask.config import parse_dataclass
from metamask.config.origins import origin_of
from metamask.errors import ConfigError
from metamask.hypergrad.audit import AuditResult, compare, untouched
from metamask.hypergrad.autodiff import Tensors, grad_or_zeros, loss_of
from metamask.hypergrad.latent import (
    LATENT_SOLVERS,
    ImplicitLatent,
    ImplicitLatentOptions,
    LatentSolver,
    UnrolledLatent,
)
from metamask.precision import full_precision
from metamask.ranges import Count, NonNegative, Positive

#: the reference solvers a latent audit compares with
LATENT_REFERENCES = ("unrolled", "implicit")

RngState = tuple[torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class LatentAuditOptions:
    """``latent_solver: {type: ..., audit: {...}}``: how often and against which solver."""

    every: Count = 50  # audit at every N-th step of the outer node (its local steps)
    reference: Literal["unrolled", "implicit"] = "unrolled"  # the reference latent solver
    iterations: Count = 100  # implicit reference: CG iterations of its backward
    alpha: Positive | None = None  # implicit reference: proximal radius (None: inner_lr)
    tol: NonNegative = 1e-10  # implicit reference: CG stops at ||r|| <= tol ||g||


def split_latent_audit(block: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """``latent_solver`` without its ``audit`` key (what the solver parses), and that value."""
    own = dict(block)
    return own, own.pop("audit", None)


def parse_latent_audit(
    solver: str, raw: Any, source: str = "<spec>", where: str = "latent_solver.audit"
) -> LatentAuditOptions | None:
    """The audit of a ``latent_solver`` block (None without one), validated.

    Raises:
        ConfigError: a bad key or value, or the reference is the audited solver itself.
    """
    if raw is None:
        return None
    options = parse_dataclass(LatentAuditOptions, raw, source, where)
    if options.reference == solver:
        raise ConfigError(
            f"{origin_of(source, where + '.reference')}: {where}.reference: '{solver}' is the "
            "latent solver being audited; "
            f"pick another reference among {[r for r in LATENT_REFERENCES if r != solver]}"
        )
    return options


def reference_solver(solver: LatentSolver, options: LatentAuditOptions) -> LatentSolver:
    """The reference latent solver, with the audited solver's inner steps and step size."""
    if options.reference == "unrolled":
        return UnrolledLatent(solver.options)
    extra = ImplicitLatentOptions(options.iterations, options.alpha, options.tol)
    reference: LatentSolver = LATENT_SOLVERS[ImplicitLatent.name](solver.options, extra)
    return reference


def through_latent(
    loss: torch.Tensor, adapted: torch.Tensor, params: Sequence[torch.Tensor]
) -> Tensors:
    """``(d z1 / d params)^T dL/dz1``: the part of ``loss``'s gradient that passes through the
    adapted latent ``adapted``, by the solver that made it (the loss's graph is kept)."""
    (vector,) = torch.autograd.grad(loss, adapted, retain_graph=True)
    return grad_or_zeros([adapted], params, [vector.detach()])


def whole_gradient(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> Tensors:
    """``d loss / d params``, zeros where unused (the loss's graph is kept)."""
    return grad_or_zeros([loss], params, [torch.ones_like(loss)])


def rng_state(device: torch.device) -> RngState:
    """A copy of torch's RNG state (and the device's, on CUDA): reading it draws nothing."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: RngState, device: torch.device) -> None:
    """Put back what :func:`rng_state` copied."""
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class LatentAuditor:
    """Installs a latent audit's hooks on a MetaMAE graph and collects :class:`AuditResult` s.

    Args:
        nodes: the graph's nodes by name.
        audits: the audited ``adapt`` nodes' options, by name.
    """

    def __init__(self, nodes: Mapping[str, Any], audits: Mapping[str, LatentAuditOptions]) -> None:
        self.nodes = dict(nodes)
        self.audits = dict(audits)
        self.results: list[AuditResult] = []
        self._installed: list[tuple[Any, str, Any]] = []
        self._step_rng: dict[str, RngState] = {}
        #: for each audited adapt node, the outer nodes that read its latent
        self.uppers: dict[str, list[Any]] = {
            name: [
                up
                for up in self.nodes.values()
                if any(len(p) > 1 and p[1] is self.nodes[name] for p in up._paths)
            ]
            for name in self.audits
        }

    def install(self) -> None:
        """Add the hooks (the outer nodes' step and backward hooks) and keep each audited
        node's solve RNG."""
        for name in self.audits:
            self.nodes[name].record_solve_rng = True
        for upper in {id(u): u for ups in self.uppers.values() for u in ups}.values():
            upper.step_hooks.append(self._step_hook)
            upper.backward_hooks.append(self._backward_hook)
            self._installed += [(upper, "step_hooks", self._step_hook)]
            self._installed += [(upper, "backward_hooks", self._backward_hook)]

    def remove(self) -> None:
        """Take the hooks off again."""
        for name in self.audits:
            self.nodes[name].record_solve_rng = False
            self.nodes[name].solve_rng = None
        for node, attribute, hook in self._installed:
            hooks = getattr(node, attribute)
            if hook in hooks:
                hooks.remove(hook)
        self._installed.clear()
        self._step_rng.clear()

    def _due(self, upper: Any) -> list[str]:
        return [
            name
            for name, ups in self.uppers.items()
            if any(u is upper for u in ups) and upper.local_step % self.audits[name].every == 0
        ]

    def _step_hook(self, upper: Any) -> Callable[[], None] | None:
        """At the start of a due outer step: the RNG state its loss draws from."""
        self._step_rng.pop(upper.name, None)
        if self._due(upper):
            self._step_rng[upper.name] = rng_state(_device(upper))
        return None

    def _backward_hook(
        self, upper: Any, loss: torch.Tensor, paths: Sequence[Sequence[Any]]
    ) -> Callable[[], None] | None:
        due = self._due(upper)
        step_rng = self._step_rng.pop(upper.name, None)
        for name in due:
            self.results.append(self._audit(name, upper, loss, step_rng))
        return None

    def _audit(
        self, name: str, upper: Any, loss: torch.Tensor, step_rng: RngState | None
    ) -> AuditResult:
        """One audit of ``name``'s solver at ``upper``'s current step."""
        options, adapt = self.audits[name], self.nodes[name]
        result = AuditResult(name, upper.name, upper.local_step, options.reference)
        if step_rng is None or adapt.solve_rng is None or adapt._task is None:
            result.warning = (
                f"node '{name}': no solve recorded for '{upper.name}' step {upper.local_step} "
                "(the audit started inside the step)"
            )
            return result
        task, x = adapt.task, adapt.cur_batch[0]
        params = upper.trainable_parameters()
        device = _device(upper)
        with full_precision():
            estimate = through_latent(loss, task.adapted, params)
            estimate_total = whole_gradient(loss, params)
        tick = time.perf_counter()
        with untouched(list(self.nodes.values()), device):
            solver, generator = adapt.solver, adapt.generator
            kept = None if generator is None else generator.get_state()
            adapt.solver = reference_solver(solver, options)
            try:
                set_rng_state(adapt.solve_rng, device)
                if generator is not None and adapt.solve_generator is not None:
                    generator.set_state(adapt.solve_generator)
                again, _ = adapt.solve(x)
            finally:
                adapt.solver = solver
                if generator is not None and kept is not None:
                    generator.set_state(kept)
            same = torch.equal(again.masks.ids_keep, task.masks.ids_keep) and torch.equal(
                again.support, task.support
            )
            set_rng_state(step_rng, device)
            reference_loss = loss_of(upper.training_step_exec(again))
            if upper.scaler is not None:
                reference_loss = upper.scaler.scale(reference_loss)
            reference_loss = reference_loss / upper.gas
            with full_precision():
                reference = through_latent(reference_loss, again.adapted, params)
                reference_total = whole_gradient(reference_loss, params)
        seconds = time.perf_counter() - tick
        if not same:  # cannot happen unless a solve draws from a generator of its own
            result.warning = (
                f"node '{name}': the reference solve drew other masks or support than the run's "
                f"at '{upper.name}' step {upper.local_step}; audit skipped"
            )
            return result
        result.metrics = compare(estimate, reference)
        result.metrics["reference_seconds"] = seconds
        total = compare(estimate_total, reference_total)
        result.metrics["total_cosine"] = total["cosine"]
        if "norm_ratio" in total:
            result.metrics["total_norm_ratio"] = total["norm_ratio"]
        return result


def _device(node: Any) -> torch.device:
    for param in node.module.parameters():
        return param.device
    return torch.device("cpu")

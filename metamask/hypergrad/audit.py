"""Audit a node's hypergradient estimator against an exact reference, on the graph it trains.

A node's ``hypergradient`` block may carry ``audit: {every: N, reference: R, ...}``. Every N
steps of each upper node whose paths pass through the audited node (the *edge* audited ->
upper), the upper's composed indirect gradient is computed twice on the same state, the same
batches and the same random numbers (common random numbers, as
:func:`~metamask.hypergrad.autodiff.common_random_numbers`): once as the run computes it (the
audited node's estimator) and once with the audited node's estimator replaced by the reference,
every other node's estimator unchanged. The reference is then thrown away: it runs before the
estimator in the upper's backward, inside a forked RNG, with every node's buffers put back, so
a run is bitwise the same with the audit on or off.

References (:class:`AuditOptions`):

- ``unrolled``: the exact gradient of the one-cycle objective, ``(d w_K / d theta)^T v``
  through the audited node's optimizer steps since the upper's last step. Those steps are
  recorded *beside* the run (:class:`Shadow`: a differentiable replay of each step on its
  batch and random numbers, right after the real one) only in windows that end at an audit
  step; between audits nothing is kept.
- ``cg`` / ``implicit_cg``: the implicit-function gradient at the node's current iterate,
  ``-(d2L/dtheta dw) (H + ridge I)^{-1} v``, solved with ``iterations`` steps of metamask's
  conjugate gradient or TorchOpt's. CG that stops on non-positive curvature ``p.Hp <= 0``
  reports it (``cg_curvature``: ``p.Hp / |p|^2``) and the trainer warns; ``ridge`` keeps the
  solve meaningful there.

Non-differentiable selections (top-k masks drawn from a masker's probabilities) are held
fixed, exactly as the estimators hold them: the reference differentiates the same losses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torchopt.linear_solve import solve_cg

from metamask.config import EstimatorSpec, parse_dataclass
from metamask.errors import ConfigError
from metamask.hypergrad.autodiff import (
    Tensors,
    TrainingStep,
    dot,
    grad_or_zeros,
    loss_of,
    trainable_names,
)
from metamask.hypergrad.diffopt import DiffOptState, differentiable_step, initial_state
from metamask.hypergrad.nested import Operator, nested_lowers, operators
from metamask.hypergrad.protocol import HypergradNode
from metamask.hypergrad.registry import get_estimator
from metamask.precision import full_precision
from metamask.ranges import Count, NonNegative

#: the key of the ``hypergradient`` block that holds the audit
AUDIT_KEY = "audit"
#: the references an audit can compare with
REFERENCES = ("unrolled", "cg", "implicit_cg")


@dataclass(frozen=True)
class AuditOptions:
    """``hypergradient: {type: ..., audit: {...}}``: how often and against what."""

    every: Count = 50  # audit at every N-th step of each upper node (its local steps)
    reference: Literal["unrolled", "cg", "implicit_cg"] = "unrolled"  # the exact reference
    iterations: Count = 200  # cg / implicit_cg: iterations of the solve
    ridge: NonNegative = 0.0  # cg / implicit_cg: solve (H + ridge I) x = v
    tol: NonNegative = 1e-10  # cg / implicit_cg: stop at ||r|| <= tol ||v||


def split_audit(spec: EstimatorSpec) -> tuple[EstimatorSpec, Any]:
    """``spec`` without its ``audit`` key (what the estimator parses), and that key's value."""
    options = dict(spec.options)
    audit = options.pop(AUDIT_KEY, None)
    return EstimatorSpec(type=spec.type, options=options), audit


def parse_audit(
    spec: EstimatorSpec, source: str = "<spec>", where: str = ""
) -> AuditOptions | None:
    """The audit of a ``hypergradient`` block (None without one), validated.

    Raises:
        ConfigError: a bad key or value, or the reference is the audited estimator itself.
    """
    _, raw = split_audit(spec)
    if raw is None:
        return None
    at = f"{where}.{AUDIT_KEY}" if where else AUDIT_KEY
    options = parse_dataclass(AuditOptions, raw, source, at)
    if get_estimator(spec.type).name == options.reference:
        raise ConfigError(
            f"{source}: {at}.reference: '{options.reference}' is the estimator being audited; "
            f"pick another reference among {list(REFERENCES)}"
        )
    return options


def check_auditable(node: Any, options: AuditOptions, source: str, paths: Sequence[Any]) -> None:
    """Refuse, in one line, an audit whose reference cannot be exact on ``node``'s shape.

    Args:
        node: the audited node (a lower with an edge estimator).
        paths: every explicit path of the graph (``[upper, ..., upper]``).
    """
    where = f"{source}: graph.nodes.{node.name}.hypergradient.{AUDIT_KEY}"
    if not any(node in path[1:-1] for path in paths):
        raise ConfigError(f"{where}: no upper node differentiates through '{node.name}'")
    if options.reference == "unrolled":
        if nested_lowers(node):
            raise ConfigError(
                f"{where}.reference: 'unrolled' cannot be exact on '{node.name}', which has "
                "lowers of its own (a nested node: its steps read their responses); use cg"
            )
        if not (hasattr(node, "unrolled_parameters") or getattr(node, "replays_steps", False)):
            raise ConfigError(
                f"{where}.reference: 'unrolled' replays the node's optimizer steps, which "
                f"{type(node).__name__} cannot (derive it from DifferentiableNode); use cg"
            )


# ----------------------------------------------------------------------------------------------
# comparing two gradients
# ----------------------------------------------------------------------------------------------


def compare(
    estimate: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]
) -> dict[str, float]:
    """How ``estimate`` points and scales next to ``reference`` (both over the same parameters).

    ``cosine``; ``norm_ratio`` = |estimate| / |reference|; ``relative_error`` =
    |estimate - reference| / |reference|; ``same_sign`` = the share of coordinates where the
    two have the same sign (zeros count as a sign). All in float64. A reference that is exactly
    zero (CG that stopped at its first step) has no ratio or relative error: those keys are
    left out and ``reference_zero`` is 1 (JSON has no infinity).
    """
    e = torch.cat([t.detach().reshape(-1).double() for t in estimate])
    r = torch.cat([t.detach().reshape(-1).double() for t in reference])
    ne, nr = float(e.norm()), float(r.norm())
    cosine = float(e @ r) / (ne * nr) if ne > 0 and nr > 0 else 0.0
    measured = {"cosine": cosine}
    if nr > 0:
        measured["norm_ratio"] = ne / nr
        measured["relative_error"] = float((e - r).norm()) / nr
    else:
        measured["reference_zero"] = 1.0
    same = float((torch.sign(e) == torch.sign(r)).double().mean()) if e.numel() else 1.0
    return {**measured, "same_sign": same, "estimate_norm": ne, "reference_norm": nr}


# ----------------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------------


@dataclass
class SolveReport:
    """How a reference solve ended: iterations, why it stopped, its residual and curvature."""

    iterations: int = 0
    stopped: str = "max_iterations"  # converged | negative_curvature | max_iterations
    residual: float = 0.0  # ||(H + ridge) x - v|| / ||v||
    curvature: float = float("nan")  # p.Hp / |p|^2 where CG stopped on curvature


def cg_reference(
    matvec: Operator, vector: Sequence[torch.Tensor], options: AuditOptions
) -> tuple[Tensors, SolveReport]:
    """Conjugate gradient on ``(H + ridge I) x = v`` that says why it stopped."""
    report = SolveReport()

    def damped(x: Sequence[torch.Tensor]) -> Tensors:
        return [h + options.ridge * xi for h, xi in zip(matvec(x), x, strict=True)]

    b = [v.detach() for v in vector]
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = list(r)
    rr = dot(r, r)
    b_norm = float(rr.sqrt())
    for _ in range(options.iterations):
        if float(rr.sqrt()) <= options.tol * b_norm or float(rr) == 0.0:
            report.stopped = "converged"
            break
        ap = damped(p)
        curvature = dot(p, ap)
        if float(curvature) <= 0.0:
            report.stopped = "negative_curvature"
            report.curvature = float(curvature) / float(dot(p, p))
            break
        step = rr / curvature
        x = [xi + step * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - step * api for ri, api in zip(r, ap, strict=True)]
        rr_new = dot(r, r)
        p = [ri + (rr_new / rr) * pi for ri, pi in zip(r, p, strict=True)]
        rr = rr_new
        report.iterations += 1
    else:
        if float(rr.sqrt()) <= options.tol * b_norm:
            report.stopped = "converged"
    report.residual = float(rr.sqrt()) / b_norm if b_norm > 0 else 0.0
    return x, report


def implicit_cg_reference(
    matvec: Operator, vector: Sequence[torch.Tensor], options: AuditOptions
) -> tuple[Tensors, SolveReport]:
    """TorchOpt's CG on ``(H + ridge I) x = v``; the residual checked with one more product."""
    solver = solve_cg(maxiter=options.iterations, rtol=options.tol, ridge=options.ridge or None)

    def as_tuple(x: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(matvec(x))

    b = [v.detach() for v in vector]
    x = list(solver(as_tuple, tuple(b)))
    hx = matvec(x)
    r = [bi - h - options.ridge * xi for bi, h, xi in zip(b, hx, x, strict=True)]
    b_norm = float(dot(b, b).sqrt())
    residual = float(dot(r, r).sqrt()) / b_norm if b_norm > 0 else 0.0
    stopped = "converged" if residual <= max(options.tol, 1e-6) else "max_iterations"
    return x, SolveReport(options.iterations, stopped, residual)


@dataclass
class Shadow:
    """The audited node's steps since its upper's last step, replayed differentiably.

    Each real step is followed by its twin on the same batch with the same random numbers,
    as functions of the upper parameters: ``w_{k+1} = step(w_k, dL(w_k, batch_k)/dw)`` by
    :func:`metamask.hypergrad.diffopt.differentiable_step` on the optimizer's own state. ``w_K``
    then is what the ``unrolled`` estimator would have kept, without the run itself unrolling.
    """

    target: tuple[int, ...]  # the upper nodes' local steps the window ends before
    weights: Tensors
    state: DiffOptState
    steps: int = 0
    seconds: float = 0.0  # spent on the twins (part of the reference's cost)


def shadow_step(node: Any, shadow: Shadow) -> None:
    """One differentiable twin of ``node``'s last step (on ``node.cur_batch``)."""
    assert node.optimizer is not None
    params = node.trainable_parameters()
    names = trainable_names(node)
    replaced = {f"module.{n}": w for n, w in zip(names, shadow.weights, strict=True)}
    out = torch.func.functional_call(TrainingStep(node), replaced, (node.cur_batch,))
    loss = loss_of(out)
    grads = torch.autograd.grad(loss, shadow.weights, create_graph=True, allow_unused=True)
    total = [
        torch.zeros_like(w) if g is None else g for g, w in zip(grads, shadow.weights, strict=True)
    ]
    shadow.weights, shadow.state = differentiable_step(
        node.optimizer, params, shadow.weights, total, shadow.state
    )
    shadow.steps += 1


def composed(
    loss: torch.Tensor,
    paths: Sequence[Sequence[Any]],
    upper: HypergradNode,
    replace: Callable[[Sequence[torch.Tensor], Any, Any], Tensors] | None = None,
    audited: Any = None,
) -> Tensors:
    """The upper's indirect gradient summed over its explicit ``paths``, each edge by its lower's
    estimator, except ``audited``'s edges (a node, or a tuple of nodes) by ``replace(vector,
    lower, upper)``. The loss's graph is kept (the run's own estimators use it next)."""
    targets = audited if isinstance(audited, tuple) else (audited,)
    total = [torch.zeros_like(p) for p in upper.trainable_parameters()]
    for path in paths:
        if path[1].hypergradient_in_graph:
            continue
        first = path[1].trainable_parameters()
        vector = grad_or_zeros([loss], first, [torch.ones_like(loss)], retain_graph=True)
        for lower, up in itertools.pairwise(path[1:]):
            with full_precision():
                if replace is not None and any(lower is t for t in targets):
                    vector = replace(vector, lower, up)
                else:
                    estimator = get_estimator(lower.estimator)
                    options = lower.estimator_options
                    if options is None:
                        options = estimator.default_options()
                    vector = estimator.fn(vector, lower, up, options)
        total = [t + v for t, v in zip(total, vector, strict=True)]
    return total


# ----------------------------------------------------------------------------------------------
# the auditor: hooks on the nodes
# ----------------------------------------------------------------------------------------------


@dataclass
class AuditResult:
    """One audit of one edge (audited -> upper) at one upper step."""

    audited: str
    upper: str
    upper_step: int
    reference: str
    metrics: dict[str, float] = field(default_factory=dict)
    warning: str | None = None
    #: the reference's indirect gradient on the upper's parameters (dropped once logged)
    reference_gradient: Tensors | None = None


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@contextmanager
def untouched(nodes: Sequence[Any], device: torch.device) -> Iterator[None]:
    """Whatever runs inside leaves the RNG, every node's buffers and extra state as found.

    The buffers are swapped for copies meanwhile (not copied back in place): the run's own
    graph, not yet differentiated, saved some of them (BatchNorm's running statistics), and an
    in-place write would bump their version and fail its backward; a graph kept from inside
    (an unrolled reference's replayed steps) holds copies that no later step writes to.
    """
    devices = [device] if device.type == "cuda" else []
    modules = {id(m): m for node in nodes for m in node.module.modules()}.values()
    swapped = [(m, dict(m._buffers)) for m in modules if m._buffers]
    extra = [node.extra_state() for node in nodes]
    with torch.random.fork_rng(devices=devices):
        try:
            for module, buffers in swapped:
                for key, value in buffers.items():
                    if value is not None:
                        module._buffers[key] = value.detach().clone()
            yield
        finally:
            for module, buffers in swapped:
                module._buffers.update(buffers)
            for node, state in zip(nodes, extra, strict=True):
                if state:
                    node.load_extra_state(state)


class Auditor:
    """Installs the audit's hooks on a graph's nodes and collects :class:`AuditResult` s.

    Args:
        nodes: the graph's nodes by name.
        audits: the audited nodes' options, by name.
    """

    def __init__(self, nodes: Mapping[str, Any], audits: Mapping[str, AuditOptions]) -> None:
        self.nodes = dict(nodes)
        self.audits = dict(audits)
        self.results: list[AuditResult] = []
        self._shadows: dict[str, Shadow] = {}
        self._installed: list[tuple[Any, str, Any]] = []
        #: for each audited node, the upper nodes whose explicit paths pass through it
        self.uppers: dict[str, list[Any]] = {
            name: [
                up
                for up in self.nodes.values()
                if any(
                    self.nodes[name] in p[1:-1] and not p[1].hypergradient_in_graph
                    for p in up._paths
                )
            ]
            for name in self.audits
        }

    def install(self) -> None:
        """Add the hooks (the audited nodes' step hook, their uppers' backward hook)."""
        for name, options in self.audits.items():
            node = self.nodes[name]
            if options.reference == "unrolled":
                hook = self._step_hook(name)
                node.step_hooks.append(hook)
                self._installed.append((node, "step_hooks", hook))
        for upper in {id(u): u for ups in self.uppers.values() for u in ups}.values():
            upper.backward_hooks.append(self._backward_hook)
            self._installed.append((upper, "backward_hooks", self._backward_hook))

    def remove(self) -> None:
        """Take the hooks off again."""
        for node, attribute, hook in self._installed:
            hooks = getattr(node, attribute)
            if hook in hooks:
                hooks.remove(hook)
        self._installed.clear()
        self._shadows.clear()

    def due(self, name: str, upper: Any, step: int) -> bool:
        """Whether ``upper``'s local step ``step`` audits node ``name``."""
        return step % self.audits[name].every == 0

    # -- the audited node's steps: the shadow trajectory of an unrolled reference ------------

    def _step_hook(self, name: str) -> Callable[[Any], Callable[[], None] | None]:
        def hook(node: Any) -> Callable[[], None] | None:
            uppers = self.uppers[name]
            target = tuple(u.local_step + 1 for u in uppers)
            if not any(self.due(name, u, t) for u, t in zip(uppers, target, strict=True)):
                self._shadows.pop(name, None)
                return None
            shadow = self._shadows.get(name)
            if shadow is None or shadow.target != target:
                params = node.trainable_parameters()
                shadow = Shadow(
                    target,
                    [p.detach().clone().requires_grad_(True) for p in params],
                    initial_state(node.optimizer, params),
                )
                self._shadows[name] = shadow
            device = _device(node)
            before = _rng_state(device)

            def after() -> None:
                tick = time.perf_counter()
                with untouched(list(self.nodes.values()), device), _as_reference(node, "unrolled"):
                    _set_rng(before, device)
                    shadow_step(node, shadow)
                shadow.seconds += time.perf_counter() - tick

            return after

        return hook

    # -- the upper's backward: reference on the same loss, before the run's estimators --------

    def _backward_hook(
        self, upper: Any, loss: torch.Tensor, paths: Sequence[Sequence[Any]]
    ) -> Callable[[], None] | None:
        due = [
            name
            for name, ups in self.uppers.items()
            if any(u is upper for u in ups) and self.due(name, upper, upper.local_step)
        ]
        if not due:
            return None
        device = _device(upper)
        pending: list[tuple[str, str, Tensors | None, float, SolveReport | None, str | None]] = []
        joint: dict[str, Callable[[Sequence[torch.Tensor], Any, Any], Tensors]] = {}
        for name in due:
            options = self.audits[name]
            audited = self.nodes[name]
            report_box: list[SolveReport] = []
            tick = time.perf_counter()
            warning = None
            reference: Tensors | None = None
            with (
                untouched(list(self.nodes.values()), device),
                _as_reference(audited, options.reference),
            ):
                replace = self._reference(name, options, report_box)
                if replace is None:
                    warning = (
                        f"node '{name}': no unrolled trajectory for '{upper.name}' step "
                        f"{upper.local_step} (the audit started inside the window)"
                    )
                else:
                    reference = composed(loss, paths, upper, replace, audited)
                    joint[name] = replace
            shadow = self._shadows.get(name)
            seconds = time.perf_counter() - tick + (shadow.seconds if shadow else 0.0)
            if options.reference == "unrolled":
                self._shadows.pop(name, None)
            report = report_box[0] if report_box else None
            if report is not None and report.stopped == "negative_curvature":
                warning = (
                    f"node '{name}': the {options.reference} reference stopped early at "
                    f"iteration {report.iterations}: curvature p.Hp/|p|^2 = "
                    f"{report.curvature:.3g} <= 0 (raise audit.ridge above it)"
                )
            pending.append((name, options.reference, reference, seconds, report, warning))
        if len(joint) > 1:  # every audited edge by its reference at once: the composed gradient
            pending.append(self._joint(joint, loss, paths, upper, device))

        def finish() -> None:
            estimate = upper.last_hypergradient
            for name, label, reference, seconds, report, warning in pending:
                result = AuditResult(name, upper.name, upper.local_step, label)
                result.warning = warning
                if reference is not None and estimate is not None:
                    result.reference_gradient = reference
                    result.metrics = compare(estimate, reference)
                    result.metrics["reference_seconds"] = seconds
                    if report is not None:
                        result.metrics["cg_iterations"] = float(report.iterations)
                        result.metrics["cg_residual"] = report.residual
                        if report.stopped == "negative_curvature":
                            result.metrics["cg_curvature"] = report.curvature
                self.results.append(result)

        return finish

    def _joint(
        self,
        edges: Mapping[str, Callable[[Sequence[torch.Tensor], Any, Any], Tensors]],
        loss: torch.Tensor,
        paths: Sequence[Sequence[Any]],
        upper: Any,
        device: torch.device,
    ) -> tuple[str, str, Tensors | None, float, SolveReport | None, str | None]:
        """The upper's composed gradient with every audited node of ``edges`` replaced by its
        reference together (row ``a+b->upper``: each node's own row keeps the others'
        estimators); with ``unrolled`` on each, the exact gradient of the one-cycle objective."""
        tick = time.perf_counter()
        nodes = tuple(self.nodes[name] for name in edges)
        by_node = {id(self.nodes[name]): fn for name, fn in edges.items()}
        with ExitStack() as stack:
            stack.enter_context(untouched(list(self.nodes.values()), device))
            for name in edges:
                stack.enter_context(_as_reference(self.nodes[name], self.audits[name].reference))
            reference = composed(
                loss, paths, upper, lambda v, lower, up: by_node[id(lower)](v, lower, up), nodes
            )
        label = "+".join(self.audits[name].reference for name in edges)
        return "+".join(edges), label, reference, time.perf_counter() - tick, None, None

    def _reference(
        self, name: str, options: AuditOptions, reports: list[SolveReport]
    ) -> Callable[[Sequence[torch.Tensor], Any, Any], Tensors] | None:
        """The reference as an edge function ``(vector, lower, upper) -> indirect gradient``."""
        if options.reference == "unrolled":
            shadow = self._shadows.get(name)
            if shadow is None or shadow.steps == 0:
                return None
            weights = shadow.weights

            def unrolled(vector: Sequence[torch.Tensor], lower: Any, upper: Any) -> Tensors:
                return grad_or_zeros(
                    weights, upper.trainable_parameters(), [v.detach() for v in vector]
                )

            return unrolled
        solve = cg_reference if options.reference == "cg" else implicit_cg_reference

        def implicit(vector: Sequence[torch.Tensor], lower: Any, upper: Any) -> Tensors:
            matvec, project = operators(lower, upper)
            x, report = solve(matvec, vector, options)
            reports.append(report)
            return project(x)

        return implicit


@contextmanager
def _as_reference(node: Any, reference: str) -> Iterator[None]:
    """The node names the reference as its estimator meanwhile, so that its loss takes the
    paths the reference needs (twice-differentiable attention where the audited estimator
    takes first derivatives only: metamask.nodes.pretrain); the options are not read."""
    estimator, options = node.estimator, node.estimator_options
    node.estimator, node.estimator_options = reference, None
    try:
        yield
    finally:
        node.estimator, node.estimator_options = estimator, options


def _device(node: Any) -> torch.device:
    for param in node.module.parameters():
        return param.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------
# rows and summaries
# ----------------------------------------------------------------------------------------------

#: the keys of an audit row (metrics.jsonl) that are measurements
MEASURES = ("cosine", "norm_ratio", "relative_error", "same_sign", "reference_seconds")


def edge_name(audited: str, upper: str) -> str:
    """``audited->upper``: how an audited edge is named in logs, results and tables."""
    return f"{audited}->{upper}"


def result_row(result: AuditResult) -> dict[str, Any]:
    """An audit as a metrics.jsonl row (without ``step`` and ``time``, which the log adds)."""
    return {
        "audit": edge_name(result.audited, result.upper),
        "upper_step": result.upper_step,
        "reference": result.reference,
        **result.metrics,
    }


def read_audit_rows(path: Any) -> list[dict[str, Any]]:
    """The audit rows of a ``metrics.jsonl`` (rows with an ``audit`` key), in file order."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "audit" in row and "step" in row:
            rows.append(row)
    return rows


def audit_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per audited edge: the reference, how many audits, and the median of each measure."""
    import statistics

    by_edge: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_edge.setdefault(str(row["audit"]), []).append(row)
    summary: dict[str, dict[str, Any]] = {}
    for edge, edge_rows in by_edge.items():
        entry: dict[str, Any] = {"reference": edge_rows[-1].get("reference"), "audits": 0}
        measured = [r for r in edge_rows if "cosine" in r]
        entry["audits"] = len(measured)
        for key in MEASURES:
            values = [float(r[key]) for r in measured if key in r]
            if values:
                entry[f"median_{key}"] = statistics.median(values)
        summary[edge] = entry
    return summary

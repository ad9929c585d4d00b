"""``metamask audit RUN_DIR``: audit a finished or stopped run's estimators at its checkpoint.

The run folder is read under its lock and left unchanged: the graph is built from the
folder's spec, its nodes take the checkpoint's state, and each of ``batches`` engine cycles
starts again from that state (the data positions alone move on, so every cycle draws new
batches) and audits every chosen edge once (:mod:`metamask.hypergrad.audit`). Nothing is
trained further and nothing is written into the folder; the table and the JSON report are
the result.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table

from metamask.errors import CheckpointError, ConfigError
from metamask.folder_lock import run_folder_lock
from metamask.graph import Graph
from metamask.hypergrad.audit import (
    MEASURES,
    REFERENCES,
    AuditOptions,
    Auditor,
    audit_summary,
    check_auditable,
    compare,
    edge_name,
    result_row,
)
from metamask.hypergrad.registry import get_estimator
from metamask.resume import CHECKPOINT_NAME, run_folder_spec
from metamask.run import graph_at_checkpoint
from metamask.seeding import set_rng_state
from metamask.train import Trainer


def chosen_audits(
    graph: Graph, node: str | None, reference: str | None, where: str
) -> dict[str, AuditOptions]:
    """The audits to run: the spec's own (every cycle), else every node with an edge
    estimator (or ``node``) against ``reference`` (default ``unrolled``), refused in one line
    where the reference cannot be exact."""
    if reference is not None and reference not in (*REFERENCES, FINITE_DIFFERENCE):
        raise ConfigError(
            f"{where}: --reference {reference!r}; expected one of "
            f"{[*REFERENCES, FINITE_DIFFERENCE]}"
        )
    paths = [path for n in graph.nodes.values() for path in n._paths]
    lowers = [
        name
        for name, n in graph.nodes.items()
        if not n.hypergradient_in_graph and any(n in path[1:-1] for path in paths)
    ]
    if node is not None and node not in graph.nodes:
        raise ConfigError(f"{where}: --node {node!r}: no such node; nodes: {sorted(graph.nodes)}")
    if node is not None and node not in lowers:
        raise ConfigError(
            f"{where}: --node {node!r} passes no hypergradient to an upper node with an "
            f"estimator; auditable nodes: {lowers}"
        )
    names = [node] if node is not None else lowers
    audits: dict[str, AuditOptions] = {}
    for name in names:
        spec_options = graph.audits.get(name)
        options = spec_options if isinstance(spec_options, AuditOptions) else AuditOptions()
        if reference is not None:
            options = replace(options, reference=reference)  # type: ignore[arg-type]
        options = replace(options, every=1)
        target = graph.nodes[name]
        if get_estimator(target.estimator).name == options.reference:
            if node is not None:
                raise ConfigError(
                    f"{where}: --node {name}: its estimator is '{options.reference}' itself; "
                    "pick another --reference"
                )
            continue
        check_auditable(target, options, where, paths)
        audits[name] = options
    if not audits:
        raise ConfigError(f"{where}: no node to audit (auditable nodes: {lowers})")
    return audits


#: ``--reference finite_difference``: the composed gradient of each upper node checked by
#: central differences of its loss after one engine cycle, along random directions
FINITE_DIFFERENCE = "finite_difference"


def finite_difference_check(
    graph: Graph,
    upper: str,
    directions: int,
    eps: float,
    generator: torch.Generator,
) -> dict[str, Any]:
    """The composed gradient of ``upper`` against central differences, along random directions.

    From the graph's current state (every node's state, data positions and random numbers
    restored before each run), one engine cycle is run unperturbed (the gradient ``g`` the
    node's step composes: its direct gradient plus every estimator's term) and then twice per
    direction ``d`` (unit norm) with the node's parameters moved by ``+-eps d``, reading the
    node's loss at its step: ``F(theta)``, the loss after the lowers' steps of the cycle. The
    result compares ``g . d_i`` with ``(F(+) - F(-)) / (2 eps)`` over the directions (cosine and
    relative error of those two vectors; random projections preserve inner products in
    expectation). Costs two engine cycles per direction. Top-k selections made inside the
    cycle may switch under the perturbation; a small ``eps`` keeps that rare.
    """
    from metamask.seeding import rng_state

    node = graph.nodes[upper]
    start = {name: copy.deepcopy(n.state_dict()) for name, n in graph.nodes.items()}
    rng = rng_state()
    params = node.trainable_parameters()
    seen: dict[str, Any] = {}

    def hook(n: Any, loss: torch.Tensor, paths: Any) -> Any:
        seen["loss"] = float(loss.detach())

        def after() -> None:
            seen["grad"] = [
                torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params
            ]

        return after

    def cycle(shift: list[torch.Tensor] | None) -> dict[str, Any]:
        for name, n in graph.nodes.items():
            n.load_state_dict(copy.deepcopy(start[name]))
        set_rng_state(rng)
        if shift is not None:
            with torch.no_grad():
                for p, s in zip(params, shift, strict=True):
                    p.add_(s)
        seen.clear()
        for _ in range(4 * graph.checkpoint_period()):
            graph.step()
            if "grad" in seen:
                return dict(seen)
        raise RuntimeError(f"node '{upper}' did not step within a cycle")

    node.backward_hooks.append(hook)
    try:
        tick = time.perf_counter()
        grad = cycle(None)["grad"]
        projected, differences = [], []
        for _ in range(directions):
            d = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
            scale = float(torch.cat([x.reshape(-1) for x in d]).norm())
            d = [(x / scale).to(p.dtype) for x, p in zip(d, params, strict=True)]
            plus = cycle([eps * x for x in d])["loss"]
            minus = cycle([-eps * x for x in d])["loss"]
            differences.append((plus - minus) / (2 * eps))
            projected.append(
                float(sum((g.double() * x.double()).sum() for g, x in zip(grad, d, strict=True)))
            )
        seconds = time.perf_counter() - tick
    finally:
        node.backward_hooks.remove(hook)
        for name, n in graph.nodes.items():
            n.load_state_dict(copy.deepcopy(start[name]))
        set_rng_state(rng)
    metrics = compare([torch.tensor(projected)], [torch.tensor(differences)])
    metrics["reference_seconds"] = seconds
    return {"projected": projected, "differences": differences, **metrics}


def audit_run(
    folder: Path,
    node: str | None = None,
    reference: str | None = None,
    batches: int = 8,
    console: Console | None = None,
    directions: int = 4,
    eps: float = 1e-5,
) -> dict[str, Any]:
    """Audit the run in ``folder`` at its checkpoint over ``batches`` cycles; the report.

    Raises:
        CheckpointError: no run folder, or no checkpoint in it.
        ConfigError: a bad ``node``/``reference``, or a reference that cannot be exact there.
    """
    console = console or Console(stderr=True)
    where = f"audit {folder}"
    if batches < 1:
        raise ConfigError(f"{where}: --batches {batches}; expected at least 1")
    path = folder / CHECKPOINT_NAME
    if not folder.is_dir():
        raise CheckpointError(f"{where}: no such run folder")
    if not path.is_file():
        raise CheckpointError(f"{where}: no {CHECKPOINT_NAME} in the folder: nothing to audit")
    spec, source = run_folder_spec(folder, [], command="audit")
    with run_folder_lock(folder):
        graph, state, _, _ = graph_at_checkpoint(spec, source, path)
    trainer = Trainer(graph, spec, None, console, progress=False)
    if reference == FINITE_DIFFERENCE:
        return _finite_difference_run(graph, trainer, state, path, node, batches, directions, eps)
    audits = chosen_audits(graph, node, reference, where)
    trainer.restore(state, path)  # parameters, counters, data positions: nothing written
    set_rng_state(state["rng"])
    start = {
        name: {k: v for k, v in copy.deepcopy(n.state_dict()).items() if k != "data"}
        for name, n in graph.nodes.items()
    }
    auditor = Auditor(graph.nodes, audits)
    auditor.install()
    graph.train()
    rows: list[dict[str, Any]] = []
    try:
        for cycle in range(batches):
            for name, n in graph.nodes.items():  # the checkpoint's state, new batches
                n.load_state_dict(copy.deepcopy(start[name]))
            pending = {edge_name(a, u.name) for a in audits for u in auditor.uppers[a]}
            for _ in range(4 * graph.checkpoint_period()):
                graph.step()
                for result in auditor.results:
                    if result.metrics:
                        rows.append({"cycle": cycle, "step": cycle, **result_row(result)})
                    pending.discard(edge_name(result.audited, result.upper))
                auditor.results.clear()
                if not pending:
                    break
    finally:
        auditor.remove()
    summary = audit_summary(rows)
    return {
        "run": str(folder),
        "checkpoint_step": int(state["step"]),
        "batches": batches,
        "audits": {name: vars(options) for name, options in audits.items()},
        "summary": summary,
        "rows": rows,
    }


def _finite_difference_run(
    graph: Graph,
    trainer: Trainer,
    state: dict[str, Any],
    path: Path,
    node: str | None,
    batches: int,
    directions: int,
    eps: float,
) -> dict[str, Any]:
    """``--reference finite_difference``: each upper node (or ``node``) checked at the
    checkpoint, ``batches`` cycles (each on the next batches), ``directions`` each."""
    uppers = [
        name
        for name, n in graph.nodes.items()
        if any(not p[1].hypergradient_in_graph for p in n._paths)
    ]
    if node is not None:
        if node not in uppers:
            raise ConfigError(
                f"audit: --node {node!r} composes no hypergradient; with --reference "
                f"{FINITE_DIFFERENCE} choose an upper node among {uppers}"
            )
        uppers = [node]
    trainer.restore(state, path)
    set_rng_state(state["rng"])
    graph.train()
    generator = torch.Generator().manual_seed(0)
    rows: list[dict[str, Any]] = []
    start = {
        name: {k: v for k, v in copy.deepcopy(n.state_dict()).items() if k != "data"}
        for name, n in graph.nodes.items()
    }
    for cycle in range(batches):
        for name, n in graph.nodes.items():  # the checkpoint's state, the next batches
            n.load_state_dict(copy.deepcopy(start[name]))
        for upper in uppers:
            check = finite_difference_check(graph, upper, directions, eps, generator)
            rows.append(
                {"cycle": cycle, "step": cycle, "audit": f"{upper} (composed)",
                 "reference": FINITE_DIFFERENCE, **check}
            )  # fmt: skip
        for _ in range(graph.checkpoint_period()):  # on to the next batches
            graph.step()
    return {
        "run": str(path.parent),
        "checkpoint_step": int(state["step"]),
        "batches": batches,
        "audits": {
            u: {"reference": FINITE_DIFFERENCE, "directions": directions, "eps": eps}
            for u in uppers
        },
        "summary": audit_summary(rows),
        "rows": rows,
    }


#: short column names of the table (medians over the audits)
HEADERS = {
    "cosine": "cosine",
    "norm_ratio": "ratio",
    "relative_error": "error",
    "same_sign": "sign",
    "reference_seconds": "ref s",
}


def audit_table(report: dict[str, Any]) -> Table:
    """The report's medians, one row per audited edge."""
    table = Table(
        box=box.SIMPLE,
        title=f"hypergradient audit of {report['run']} at step {report['checkpoint_step']} "
        f"({report['batches']} batches)\nmedians: cosine, norm ratio, relative error, share of "
        "same signs, reference seconds",
    )
    edges = list(report["summary"])
    table.add_column("edge", no_wrap=True, min_width=max((len(e) for e in edges), default=4))
    table.add_column("reference", no_wrap=True, min_width=8)
    table.add_column("n", justify="right", min_width=2)
    for key in MEASURES:
        table.add_column(HEADERS[key], justify="right", no_wrap=True)
    for edge, entry in report["summary"].items():
        cells = [f"{entry.get(f'median_{key}', float('nan')):.3g}" for key in MEASURES]
        table.add_row(edge, str(entry["reference"]), str(entry["audits"]), *cells)
    return table


def median_cosines(report: dict[str, Any]) -> dict[str, float]:
    """Each edge's median cosine (for scripts)."""
    return {
        edge: statistics.median([r["cosine"] for r in report["rows"] if r["audit"] == edge])
        for edge in report["summary"]
    }

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
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table

from metamask.checkpoint import load_checkpoint
from metamask.compose import build_graph
from metamask.config import spec_to_dict
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
    edge_name,
    result_row,
)
from metamask.hypergrad.registry import get_estimator
from metamask.resume import CHECKPOINT_NAME, check_same_run, run_folder_spec, saved_spec
from metamask.run import resolve_device
from metamask.seeding import seed_everything, set_rng_state
from metamask.spec_data import load_pretrain_data
from metamask.train import Trainer


def chosen_audits(
    graph: Graph, node: str | None, reference: str | None, where: str
) -> dict[str, AuditOptions]:
    """The audits to run: the spec's own (every cycle), else every node with an edge
    estimator (or ``node``) against ``reference`` (default ``unrolled``), refused in one line
    where the reference cannot be exact."""
    if reference is not None and reference not in REFERENCES:
        raise ConfigError(f"{where}: --reference {reference!r}; expected one of {list(REFERENCES)}")
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
        options = graph.audits.get(name, AuditOptions())
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


def audit_run(
    folder: Path,
    node: str | None = None,
    reference: str | None = None,
    batches: int = 8,
    console: Console | None = None,
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
        state = load_checkpoint(path)
        check_same_run(saved_spec(state, path), spec_to_dict(spec), path)
        if spec.train.threads > 0:
            torch.set_num_threads(spec.train.threads)
        device = resolve_device(spec.train.device)
        seed_everything(spec.seed)
        graph = build_graph(spec, load_pretrain_data(spec), device, source)
    audits = chosen_audits(graph, node, reference, where)
    trainer = Trainer(graph, spec, None, console, progress=False)
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

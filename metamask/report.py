"""Rich tables for people: a spec's graph, the dataset list, run results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from metamask.config import RunSpec
from metamask.data.base import DatasetEntry, LoadOptions
from metamask.topology import local_step_period


def graph_table(spec: RunSpec) -> Table:
    """Nodes of a spec's graph: type, estimator, optimizer, unroll and step period."""
    graph = spec.graph
    uppers = {u for ups in graph.l2u.values() for u in ups}
    table = Table(title=f"{spec.name}: optimization graph", title_justify="left")
    for column in ("node", "type", "role", "estimator", "optimizer", "unroll", "steps every"):
        table.add_column(column, no_wrap=column in ("node", "type"))
    for name, node in graph.nodes.items():
        role = "leaf" if name not in uppers else "upper"
        estimator = node.hypergradient.type if graph.l2u.get(name) else "-"
        if node.hypergradient.options and graph.l2u.get(name):
            estimator += " " + ", ".join(f"{k}={v}" for k, v in node.hypergradient.options.items())
        opt = node.optimizer
        optimizer = (
            "-"
            if opt is None
            else f"{opt.type} lr={opt.lr:g} wd={opt.weight_decay:g} {opt.schedule}"
        )
        period = local_step_period(graph, name)
        table.add_row(
            name, node.type, role, estimator, optimizer, str(node.unroll_steps), f"{period} it."
        )
    return table


def edge_lines(spec: RunSpec) -> list[str]:
    """The graph's edges, one line per kind."""
    graph = spec.graph
    u2l = ", ".join(f"{u} -> {lo}" for u, los in graph.u2l.items() for lo in los) or "none"
    l2u = ", ".join(f"{lo} -> {u}" for lo, ups in graph.l2u.items() for u in ups) or "none"
    return [
        f"upper-to-lower (hypergradient paths): {u2l}",
        f"lower-to-upper (execution order): {l2u}",
    ]


def datasets_table(entries: Mapping[str, DatasetEntry], options: LoadOptions) -> Table:
    """Every registered dataset with its facts and whether it can load here."""
    table = Table(title="metamask datasets", title_justify="left")
    for column in (
        "name",
        "domain",
        "modality",
        "input",
        "patch",
        "tokens",
        "classes",
        "metric",
        "source",
        "available",
    ):
        table.add_column(column, no_wrap=column == "name")
    for name, entry in sorted(entries.items()):
        info = entry.info
        reason = entry.requires(options)
        classes = {0: "regression"}.get(info.num_classes, str(info.num_classes))
        if not info.labelled:
            classes = "unlabelled"
        table.add_row(
            name,
            info.domain,
            info.modality,
            str(info.input_shape),
            str(info.patch),
            str(info.num_tokens),
            classes,
            info.metric,
            entry.source,
            "[green]yes[/]" if reason is None else f"[red]no[/]: {reason}",
        )
    return table


def results_table(rows: Iterable[Mapping[str, Any]], title: str, columns: Iterable[str]) -> Table:
    """A table of result rows (dicts) with the given columns; floats shown to 4 digits."""
    table = Table(title=title, title_justify="left")
    columns = list(columns)
    for i, column in enumerate(columns):
        table.add_column(column, no_wrap=i < 2)
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    return table


def print_table(table: Table, console: Console | None = None) -> None:
    (console or Console()).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)

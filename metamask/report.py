"""Rich tables for people: a spec's graph, the dataset list, run results.

Every table fits an 80-column terminal or log file without cutting a name: names never wrap
(``no_wrap``), nothing is cut with an ellipsis (other cells wrap at spaces), borders take one
column per gap, and long explanations (why a dataset cannot load) are numbered notes printed
below the table in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from metamask.config import OptimizerSpec, RunSpec
from metamask.data.base import DatasetEntry, LoadOptions
from metamask.topology import edge_estimator, local_step_period

#: short headers for long result keys (the keys stay as they are in results.json)
HEADERS = {"seconds_per_step": "s/step", "ratio_vs_mae": "vs mae", "probe_epoch": "epoch"}


def _table(title: str) -> Table:
    """A table with a rule under its header and one space between columns."""
    return Table(
        title=title or None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0),
    )


def graph_table(spec: RunSpec) -> Table:
    """Nodes of a spec's graph: type, estimator, optimizer, unroll and step period.

    A node's estimator is that of its edges up (``-`` for a node below nothing); the picture
    of ``metamask show --png`` labels its boxes with the same words.
    """
    graph = spec.graph
    uppers = {u for ups in graph.l2u.values() for u in ups}
    table = _table(f"{spec.name}: optimization graph")
    for column in ("node", "type", "role", "estimator", "optimizer", "unroll", "steps every"):
        table.add_column(column, no_wrap=column in ("node", "type"), overflow="fold")
    for name, node in graph.nodes.items():
        role = "leaf" if name not in uppers else "upper"
        estimator = edge_estimator(graph, name, options=True) or "-"
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


def optimizer_lines(spec: RunSpec, trained: Iterable[str] | None = None) -> list[str]:
    """Each node's optimizer with every setting resolved: what an ``optimizer:`` mapping that
    names only ``lr`` leaves to the defaults (AdamW, its weight decay and betas) is spelled out.

    ``trained``: the nodes that have parameters (a built graph's nodes with an optimizer); a
    node without an ``optimizer:`` gets the defaults when it has parameters. Without it, only
    the nodes that name an optimizer are listed.
    """
    has_params = set(trained) if trained is not None else None
    lines = []
    for name, node in spec.graph.nodes.items():
        if node.optimizer is None and (has_params is None or name not in has_params):
            continue
        opt = node.optimizer or OptimizerSpec()
        moments = f"momentum {opt.momentum:g}" if opt.type == "sgd" else f"betas {opt.betas}"
        extras = [f"warm-up {opt.warmup_steps} steps"] if opt.warmup_steps else []
        extras += ["no decay on biases and norms"] if opt.no_decay_bias_norm else []
        lines.append(
            f"  {name}: {opt.type} lr {opt.lr:g}, weight decay {opt.weight_decay:g}, {moments}, "
            f"{opt.schedule} schedule{''.join(', ' + e for e in extras)}"
            + (" (no optimizer key: all defaults)" if node.optimizer is None else "")
        )
    return (
        ["optimizers (resolved: unset keys take OptimizerSpec's defaults):", *lines]
        if lines
        else []
    )


def edge_lines(spec: RunSpec) -> list[str]:
    """The graph's edges, one line per kind."""
    graph = spec.graph
    u2l = ", ".join(f"{u} -> {lo}" for u, los in graph.u2l.items() for lo in los) or "none"
    l2u = ", ".join(f"{lo} -> {u}" for lo, ups in graph.l2u.items() for u in ups) or "none"
    return [
        f"upper-to-lower (hypergradient paths): {u2l}",
        f"lower-to-upper (execution order): {l2u}",
    ]


def datasets_table(
    entries: Mapping[str, DatasetEntry], options: LoadOptions
) -> tuple[Group, list[str]]:
    """Every registered dataset with its facts and whether it loads here: one table per
    modality and domain (its title), all with the same column widths.

    ``available`` is where it loads from (``embedded``: inside the installed wheels;
    ``folder``: found under ``--data-root``) or ``no (N)``, N numbering a note below the
    tables that says why (the same reason shares one note). Returns the tables and the notes;
    print each note with ``soft_wrap=True`` so that it stays whole (paths in one piece).
    """
    columns = ("name", "input", "patch", "tokens", "classes", "metric", "available")
    notes: dict[str, int] = {}
    groups: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for name, entry in sorted(entries.items(), key=lambda kv: (_group(kv[1]), kv[0])):
        info = entry.info
        reason = entry.requires(options)
        if reason is None:
            available = entry.source
        else:
            available = f"no ({notes.setdefault(reason, len(notes) + 1)})"
        classes = {0: "regression"}.get(info.num_classes, str(info.num_classes))
        groups.setdefault(_group(entry), []).append(
            (
                name,
                _shape(info.input_shape),
                _shape(info.patch),
                str(info.num_tokens),
                classes if info.labelled else "unlabelled",
                info.metric,
                available,
            )
        )
    rows = [row for group in groups.values() for row in group]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    tables = []
    for i, (group, group_rows) in enumerate(groups.items()):
        table = _table(" · ".join(group))
        table.show_header = i == 0
        for column, width in zip(columns, widths, strict=True):
            table.add_column(column, no_wrap=True, width=width)
        for row in group_rows:
            colour = "red" if row[-1].startswith("no") else "green"
            table.add_row(*row[:-1], f"[{colour}]{row[-1]}[/]")
        tables.append(table)
    lines = [f"({number}) {reason}" for reason, number in notes.items()]
    return Group(Text("metamask datasets", style="bold"), *tables), lines


def _group(entry: DatasetEntry) -> tuple[str, str]:
    return entry.info.modality, entry.info.domain


def _shape(shape: Iterable[int]) -> str:
    """(3, 32, 32) -> ``3x32x32``."""
    return "x".join(str(n) for n in shape)


def results_table(
    rows: Iterable[Mapping[str, Any]], title: str, columns: Iterable[str]
) -> RenderableType:
    """A table of result rows (dicts) with the given columns; floats shown to 4 digits.

    One row is shown as ``key  value`` lines (a run's summary: as many metrics as it computed,
    never too wide). Several rows are columns with short headers for long keys
    (:data:`HEADERS`); a cell without a space (a name, a number) is never wrapped, and cells
    with spaces wrap at them rather than being cut.
    """
    columns, rows = list(columns), list(rows)
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    if len(rows) == 1:  # the title above, whole (it often holds a path), not inside the table
        table = _table("")
        table.show_header = False
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("value", no_wrap=True, overflow="fold")
        for column, cell in zip(columns, cells[0], strict=True):
            table.add_row(HEADERS.get(column, column), cell)
        return Group(Text(title, overflow="fold"), table)
    table = _table(title)
    for i, column in enumerate(columns):
        spaces = any(" " in row[i] for row in cells)
        table.add_column(HEADERS.get(column, column), no_wrap=not spaces, overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def print_table(table: RenderableType, console: Console | None = None) -> None:
    (console or Console()).print(table)


def results_row(results: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a results.json as one table row: every metric computed (the probe's
    test and validation scores; fine-tuning's, when it ran) and the seconds per step."""
    row: dict[str, Any] = {
        "run": results.get("name"),
        "dataset": results.get("dataset"),
        "metric": results.get("metric"),
        "test": results.get("test"),
        "val": results.get("val"),
    }
    finetune = results.get("finetune")
    if isinstance(finetune, Mapping):
        row["metric"] = row["metric"] or finetune.get("metric")
        row["finetune test"] = finetune.get("test")
        row["finetune val"] = finetune.get("val")
    row["s/step"] = (results.get("train") or {}).get("seconds_per_step")
    return row


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)

"""``metamask compare``: plan, carry out and tabulate a comparison, in one call that the
command line and the experiment scripts share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from metamask.experiments.planning import Arm, FolderRule, Planned, plan
from metamask.experiments.plot import draw_comparison
from metamask.experiments.running import Finished, RunOne, carry_out, train_or_read
from metamask.experiments.tables import markdown, print_table, summarize, write_tables


@dataclass
class Comparison:
    """What :func:`compare` produced: the plan, every run's outcome in plan order, the table."""

    runs: list[Planned]
    finished: list[Finished]
    table: dict[str, Any]


def compare(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    out: Path,
    common: Sequence[str] = (),
    jobs: int = 1,
    baseline: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    command: str = "",
    title: str = "Comparison",
    folder: FolderRule | None = None,
    how: RunOne = train_or_read,
    write: bool = True,
) -> Comparison:
    """Every arm at every seed: planned and validated first (nothing is written when a spec
    or value is bad), then read back or trained, then ``table.json``, ``table.md`` and
    ``compare.png`` under ``out`` (with ``write``), rewritten after every run so that a
    stopped comparison leaves the table of what finished."""
    console = console or Console(stderr=True)
    runs = plan(arms, seeds, out, common, jobs, folder=folder)
    labels = [a.label for a in arms]
    if baseline is not None:
        summarize([], labels, baseline)  # an unknown --baseline is refused before training
    started = time.perf_counter()
    done: dict[int, Finished] = {}
    table: dict[str, Any] = summarize([], labels, baseline)
    for i, item in carry_out(runs, jobs, progress, console, how):
        done[i] = item
        finished = [done[k] for k in sorted(done)]
        table = summarize(finished, labels, baseline)
        if write:
            extra = {
                "command": command,
                "seeds": list(seeds),
                "wall_seconds": time.perf_counter() - started,
                "runs": [_row(f) for f in finished],
            }
            write_tables(out, table, extra, markdown(table, title, command))
    if write:
        draw_comparison(table, out / "compare.png")
    return Comparison(runs, [done[k] for k in sorted(done)], table)


def _row(item: Finished) -> dict[str, Any]:
    """One run as table.json lists it."""
    train = item.results.get("train") or {}
    return {
        "arm": item.run.arm.label,
        "seed": item.run.seed,
        "folder": str(item.run.folder),
        "scores": item.scores,
        "metric": item.results.get("metric"),
        "steps": train.get("steps"),
        "train_seconds": train.get("seconds"),
        "seconds_per_step": train.get("seconds_per_step"),
        "probe_seconds": item.results.get("probe_seconds"),
        "read_back": item.read_back,
        "wall_seconds": item.wall_seconds,
    }


def show(comparison: Comparison, console: Console, title: str = "Comparison") -> None:
    """Print the table and the sentences."""
    print_table(comparison.table, console, title)

"""Run a built graph for a budget of engine iterations: progress, metrics, timing, checkpoints.

Betty's ``Engine.run`` is a bare loop; metamask drives ``engine.train_step`` itself so that a
researcher sees a progress bar with the current losses, gets ``metrics.jsonl`` (one JSON object
per node per logged step) and an atomic checkpoint every N steps and at the end.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from metamask.checkpoint import rng_state, save_checkpoint
from metamask.config import RunSpec, spec_to_dict
from metamask.graph import Graph

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainSummary:
    """What a training run measured."""

    steps: int  # engine iterations run in this call
    seconds: float  # wall time of those iterations
    seconds_per_step: float  # median wall time per engine iteration (first 3 excluded)
    final: dict[str, dict[str, float]] = field(default_factory=dict)  # last metrics per node

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "seconds": self.seconds,
            "seconds_per_step": self.seconds_per_step,
            "final": self.final,
        }


class Trainer:
    """Drives a :class:`~metamask.graph.Graph` for ``spec.train.steps`` engine iterations."""

    def __init__(
        self,
        graph: Graph,
        spec: RunSpec,
        out_dir: Path | None = None,
        console: Console | None = None,
        progress: bool = True,
    ) -> None:
        self.graph = graph
        self.spec = spec
        self.out_dir = out_dir
        self.console = console or Console(stderr=True)
        self.show_progress = progress
        self.step = 0  # engine iterations done

    def run(self) -> TrainSummary:
        """Train to ``spec.train.steps``; returns timing and the last metrics of every node."""
        total, every = self.spec.train.steps, self.spec.train.log_every
        latest: dict[str, dict[str, Any]] = {}
        pending: set[str] = set()
        durations: list[float] = []
        metrics_file = self._open_metrics()
        self.graph.train()
        start = time.perf_counter()
        try:
            with self._progress() as bar:
                task = bar.add_task(
                    "pretraining", total=total, completed=self.step, losses="", rate=""
                )
                while self.step < total:
                    tick = time.perf_counter()
                    stepped = self.graph.step()
                    durations.append(time.perf_counter() - tick)
                    self.step += 1
                    for node in stepped:
                        latest[node.name] = {"local_step": node.local_step, **node.last_metrics}
                        pending.add(node.name)
                    if self.step % every == 0 or self.step == total:
                        self._log(metrics_file, latest, pending, time.perf_counter() - start)
                        pending.clear()
                        bar.update(task, losses=_describe(latest))
                    rate = len(durations) / (time.perf_counter() - start)
                    bar.update(task, completed=self.step, rate=f"{rate:.2f} it/s")
                    if self._checkpoint_due():
                        self.save()
        finally:
            if metrics_file is not None:
                metrics_file.close()
        if self.out_dir is not None:
            self.save()
        steady = durations[3:] if len(durations) > 3 else durations
        return TrainSummary(
            steps=len(durations),
            seconds=time.perf_counter() - start,
            seconds_per_step=statistics.median(steady) if steady else 0.0,
            final={k: {m: v for m, v in d.items() if m != "local_step"} for k, d in latest.items()},
        )

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "global_step": self.graph.engine.global_step,
            "spec": json.dumps(spec_to_dict(self.spec)),
            "nodes": {name: node.state_dict() for name, node in self.graph.nodes.items()},
            "rng": rng_state(),
        }

    def save(self) -> Path:
        """Write ``checkpoint.pt`` in the run folder atomically."""
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINT_NAME
        save_checkpoint(path, self.state_dict())
        return path

    def _checkpoint_due(self) -> bool:
        every = self.spec.train.checkpoint_every
        return (
            self.out_dir is not None
            and every > 0
            and self.step % every == 0
            and self.step < self.spec.train.steps
        )

    # -- logging ---------------------------------------------------------------------------------

    def _open_metrics(self) -> IO[str] | None:
        if self.out_dir is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return open(self.out_dir / "metrics.jsonl", "a")

    def _log(
        self,
        handle: IO[str] | None,
        latest: dict[str, dict[str, Any]],
        pending: set[str],
        elapsed: float,
    ) -> None:
        if handle is None:
            return
        for name in sorted(pending):
            row = {"step": self.step, "node": name, **latest[name], "time": round(elapsed, 3)}
            lr = _learning_rate(self.graph, name)
            if lr is not None:
                row["lr"] = lr
            handle.write(json.dumps(row) + "\n")
        handle.flush()

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[cyan]{task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.show_progress,
            transient=False,
        )


def _learning_rate(graph: Graph, name: str) -> float | None:
    optimizer = graph.nodes[name].optimizer
    return None if optimizer is None else float(optimizer.param_groups[0]["lr"])


def _describe(latest: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, metrics in latest.items():
        main = metrics.get("loss", metrics.get("support"))
        if main is not None:
            parts.append(f"{name} {main:.4f}")
    return "  ".join(parts)

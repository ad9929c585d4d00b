"""Trainer callbacks (metamask.callbacks): when they are called, and the metrics log they include."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import MAE_GRAPH, tiny_bundle, tiny_spec
from rich.console import Console

from metamask.compose import build_graph
from metamask.nodes.base import Node
from metamask.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


class Recorder:
    """Writes down every call, and raises at step ``fail_at`` if asked."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.events: list[Any] = []
        self.fail_at = fail_at

    def on_train_start(self, trainer: Trainer) -> None:
        self.events.append(("start", trainer.step))

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        self.events.append(("step", trainer.step, [node.name for node in stepped]))
        if trainer.step == self.fail_at:
            raise RuntimeError("callback failed")

    def on_train_end(self, trainer: Trainer) -> None:
        self.events.append(("end", trainer.step))


def trainer(steps: int, out: Path | None = None, **kwargs: Any) -> Trainer:
    spec = tiny_spec(MAE_GRAPH, train={"steps": steps, "log_every": 2})
    graph = build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))
    return Trainer(graph, spec, out, Console(quiet=True), progress=False, **kwargs)


def test_callbacks_see_start_every_step_and_end_in_order() -> None:
    first, second = Recorder(), Recorder()
    trainer(3, callbacks=[first, second]).run()
    expected = [
        ("start", 0),
        *[("step", step, ["reconstruct"]) for step in (1, 2, 3)],
        ("end", 3),
    ]
    assert first.events == expected and second.events == expected


def test_on_train_end_runs_when_training_stops_on_an_error(tmp_path: Path) -> None:
    failing = Recorder(fail_at=2)
    run = trainer(5, tmp_path / "run", callbacks=[failing])
    with pytest.raises(RuntimeError, match="callback failed"):
        run.run()
    assert failing.events[-1] == ("end", 2)
    log = run.callbacks[0]
    assert getattr(log, "_handle", "missing") is None  # metrics.jsonl was closed


def test_the_metrics_log_writes_every_log_every_steps_and_at_the_last(tmp_path: Path) -> None:
    run = trainer(5, tmp_path / "run")
    run.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4, 5]
    assert all(row["node"] == "reconstruct" and "loss" in row and "lr" in row for row in rows)
    times = [row["time"] for row in rows]
    assert times == sorted(times)


def test_a_callback_does_not_change_the_run() -> None:
    """Callbacks read; the parameters after training are bit for bit those without them."""
    runs = []
    for callbacks in ([], [Recorder()]):
        torch.manual_seed(0)
        run = trainer(3, callbacks=callbacks)
        run.run()
        runs.append([p.detach().clone() for p in run.graph.mae.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))

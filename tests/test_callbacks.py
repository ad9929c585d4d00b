"""Trainer callbacks (metamask.callbacks): when they are called, and the metrics log they include."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import MAE_GRAPH, tiny_bundle, tiny_spec
from rich.console import Console

from metamask.compose import build_graph
from metamask.errors import ConfigError
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


# -- TensorBoard event files (train.tensorboard) ----------------------------------------------


def tensorboard_run(out: Path, steps: int = 5) -> Trainer:
    """MetaMAE on the tiny backbone (two nodes, several terms), TensorBoard on, log every 2."""
    spec = tiny_spec(train={"steps": steps, "log_every": 2, "tensorboard": True})
    graph = build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))
    return Trainer(graph, spec, out, Console(quiet=True), progress=False)


def test_tensorboard_events_hold_the_scalars_of_metrics_jsonl(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tensorboard_run(tmp_path / "run").run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for term, value in row.items():
            if term not in ("step", "node", "time", "local_step"):
                expected.setdefault(f"{row['node']}/{term}", []).append((row["step"], value))
    assert {"adapt/support", "reconstruct/contrastive", "reconstruct/lr"} <= set(expected)
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        # event files hold float32: each value equals metrics.jsonl's rounded to float32
        assert got == [(step, float(np.float32(value))) for step, value in points], tag
    assert [step for step, _ in expected["reconstruct/loss"]] == [2, 4, 5]


def test_tensorboard_asked_for_but_missing_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"^train\.tensorboard: .*pip install tensorboard") as err:
        tensorboard_run(tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_tensorboard_off_by_default_writes_no_events(tmp_path: Path) -> None:
    trainer(2, tmp_path / "run").run()
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()

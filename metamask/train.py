"""Run a built graph for a budget of engine iterations: progress, metrics, checkpoints, stops.

Betty's ``Engine.run`` is a bare loop; metamask drives the engine itself so that a researcher
sees a progress bar with the current losses, gets ``metrics.jsonl`` (one JSON object per node
per logged step) and an atomic checkpoint every N steps and at the end, and so that a run
survives what happens to long runs:

- a checkpoint holds the whole graph (every node's state, Betty's counters, the data
  positions, the RNG states); :meth:`Trainer.restore` continues from it bit for bit;
- SIGINT / SIGTERM finish the current step, checkpoint and raise :class:`Interrupted`
  (a second signal stops at once, keeping the previous checkpoint);
- a non-finite loss or gradient raises :class:`NonFiniteError` naming the node, the step,
  the term and the last good checkpoint (or, with ``train.on_nonfinite: skip``, the node
  drops that batch);
- under data parallelism only rank 0 writes, and every process stops at the same step.
"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from metamask import distributed
from metamask.callbacks import (
    TENSORBOARD_DIR,
    Callback,
    HypergradientAudit,
    MetricsLog,
    StatefulCallback,
    TensorBoardLog,
)
from metamask.checkpoint import save_checkpoint
from metamask.config import RunSpec, spec_to_dict
from metamask.errors import Interrupted, LossScaleError, NonFiniteError
from metamask.graph import Graph
from metamask.mask_diversity import MaskDiversity, masking_source
from metamask.nodes.base import Node
from metamask.resume import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    CLOCK,
    METRICS_NAME,
    check_restorable,
    clock_state,
    resume_clock,
    tidy_folder,
)
from metamask.seeding import rng_state, set_rng_state


@dataclass
class TrainSummary:
    """What a training run measured."""

    steps: int  # the run's engine iterations, resumed legs included
    seconds: float  # the run's training wall time: the sum of its legs (metamask.resume)
    seconds_per_step: float  # median wall time per engine iteration (first 3 excluded)
    final: dict[str, dict[str, float]] = field(default_factory=dict)  # last metrics per node
    resumed_from: int | None = None  # the checkpoint's engine step, when resumed
    skipped: dict[str, int] = field(default_factory=dict)  # batches dropped per node (skip)
    checkpoint_seconds: float = 0.0  # wall time spent writing checkpoints (this call)
    #: one entry per resume: from_step, at (local time), seconds (that leg's training time)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    #: per audited edge, the hypergradient audit's medians (metamask.hypergrad.audit)
    audit: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "seconds": self.seconds,
            "seconds_per_step": self.seconds_per_step,
            "final": self.final,
            "resumed_from": self.resumed_from,
            "skipped": self.skipped,
            "checkpoint_seconds": self.checkpoint_seconds,
            "resumes": self.resumes,
            **({"audit": self.audit} if self.audit else {}),
        }


class Trainer:
    """Drives a :class:`~metamask.graph.Graph` for ``spec.train.steps`` engine iterations.

    After every step it calls its callbacks (:class:`metamask.callbacks.Callback`): with a run
    folder, first :class:`~metamask.mask_diversity.MaskDiversity` (a learned masker's
    diversity, added to the masking node's logged row) and
    :class:`~metamask.callbacks.MetricsLog` (``metrics.jsonl``), then ``callbacks`` in order.
    ``latest`` holds every node's last metrics, for them to read.
    Checkpoints stay the trainer's own: they wait for a step where every unroll window is
    closed, and signals stop the run at such a step.
    """

    def __init__(
        self,
        graph: Graph,
        spec: RunSpec,
        out_dir: Path | None = None,
        console: Console | None = None,
        progress: bool = True,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.graph = graph
        self.spec = spec
        self.out_dir = out_dir
        self.console = console or Console(stderr=True)
        self.show_progress = progress and distributed.is_main()
        self.writes = out_dir is not None and distributed.is_main()  # rank 0 writes files
        self.step = 0  # engine iterations done
        self.period = graph.checkpoint_period()  # checkpoints and stops wait for these steps
        self.last_checkpoint: int | None = None  # engine step of the newest checkpoint on disk
        self.resumed_from: int | None = None
        self.checkpoint_seconds = 0.0
        #: every node's metrics at its last step (``local_step`` included)
        self.latest: dict[str, dict[str, Any]] = {}
        #: the nodes whose metrics are logged at this step (those that stepped since the last
        #: logged step; every ``train.log_every`` steps and at the last), empty on other steps
        self.to_log: list[str] = []
        self.started = 0.0  # perf_counter at the start of run()
        #: the run's training seconds before this call (a resumed checkpoint's clock)
        self.elapsed_before = 0.0
        self.resumes: list[dict[str, Any]] = []  # the resume history (metamask.resume)
        self._ended: float | None = None  # perf_counter after the last step of run()
        self._signal: int | None = None
        self.callbacks: list[Callback] = []
        if self.writes and out_dir is not None:
            source = masking_source(graph)
            if source is not None:  # a learned masker: its diversity joins the logged rows
                self.callbacks.append(MaskDiversity(source))
            self.callbacks.append(MetricsLog(out_dir / METRICS_NAME))
            if spec.train.tensorboard:  # the same scalars as event files (needs tensorboard)
                folder = out_dir / TENSORBOARD_DIR
                self.callbacks.append(TensorBoardLog(folder))
        #: the hypergradient audit's callback, when a node's hypergradient has an audit
        self.audit: HypergradientAudit | None = None
        if graph.audits:
            metrics = out_dir / METRICS_NAME if self.writes and out_dir is not None else None
            events = None
            if metrics is not None and spec.train.tensorboard:
                events = metrics.parent / TENSORBOARD_DIR
            self.audit = HypergradientAudit(metrics, events)
            self.callbacks.append(self.audit)
        self.callbacks.extend(callbacks)

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_NAME

    def run(self) -> TrainSummary:
        """Train to ``spec.train.steps``; returns timing and the last metrics of every node."""
        total, every = self.spec.train.steps, self.spec.train.log_every
        latest = self.latest
        pending: set[str] = set()  # nodes that stepped since the last logged step
        durations: list[float] = []
        checkpoint_due = False
        self.graph.train()
        start = self.started = time.perf_counter()
        self._ended = None
        with self._signals(), self._callbacks(), self._progress() as bar:
            task = bar.add_task("pretraining", total=total, completed=self.step, losses="", rate="")
            while self.step < total:
                tick = time.perf_counter()
                stepped = self._engine_step()
                durations.append(time.perf_counter() - tick)
                self.step += 1
                for node in stepped:
                    latest[node.name] = {"local_step": node.local_step, **node.last_metrics}
                    pending.add(node.name)
                logged = self.step % every == 0 or self.step == total
                self.to_log = sorted(pending) if logged else []
                for callback in self.callbacks:
                    callback.on_step_end(self, stepped)
                if logged:
                    pending.clear()
                    bar.update(task, losses=_describe(latest))
                rate = len(durations) / (time.perf_counter() - start)
                bar.update(task, completed=self.step, rate=f"{rate:.2f} it/s")
                every_ckpt = self.spec.train.checkpoint_every
                checkpoint_due |= every_ckpt > 0 and self.step % every_ckpt == 0
                if self.step % self.period == 0:  # every unroll window closed
                    if checkpoint_due and self.step < total:
                        self.save()
                        checkpoint_due = False
                    if distributed.any_true(self._signal is not None):
                        self._stop_on_signal()
        self._ended = time.perf_counter()  # the final checkpoint and the summary: one clock
        if self.out_dir is not None:
            self.save()
        clock = self._clock()
        steady = durations[3:] if len(durations) > 3 else durations
        return TrainSummary(
            steps=self.step,
            seconds=clock["elapsed"],
            seconds_per_step=statistics.median(steady) if steady else 0.0,
            final={k: {m: v for m, v in d.items() if m != "local_step"} for k, d in latest.items()},
            resumed_from=self.resumed_from,
            skipped={n: node.skipped for n, node in self.graph.nodes.items() if node.skipped},
            checkpoint_seconds=self.checkpoint_seconds,
            resumes=clock["resumes"],
            audit=self.audit.summary if self.audit is not None else {},
        )

    def elapsed(self) -> float:
        """The run's training seconds so far: earlier legs (from the checkpoint resumed) plus
        this call of :meth:`run`."""
        return self.elapsed_before + self._leg_seconds()

    def _leg_seconds(self) -> float:
        """Seconds of this call of :meth:`run`, up to its last step once that is done."""
        end = self._ended if self._ended is not None else time.perf_counter()
        return end - self.started

    def _clock(self) -> dict[str, Any]:
        return clock_state(self.elapsed_before, self._leg_seconds(), self.resumes)

    def _engine_step(self) -> list[Node]:
        try:
            return self.graph.step()
        except (NonFiniteError, LossScaleError) as exc:
            if self.last_checkpoint is not None:
                keep = f"the last good checkpoint is {self.checkpoint_path}"
                keep += f" (step {self.last_checkpoint})"
            else:
                keep = "no checkpoint was written before it"
            if isinstance(exc, LossScaleError):  # every batch overflows: skipping cannot help
                raise LossScaleError(
                    f"{exc} (engine step {self.step + 1}); stopped: {keep}"
                ) from exc
            raise NonFiniteError(
                f"{exc} (engine step {self.step + 1}); stopped: {keep}; set "
                "train.on_nonfinite: skip to drop such batches instead"
            ) from exc

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole run's state: every node, Betty's step, the RNGs (tensors and plain data)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "global_step": self.graph.engine.global_step,
            "world_size": distributed.world_size(),
            "spec": json.dumps(spec_to_dict(self.spec)),
            "nodes": {name: node.state_dict() for name, node in self.graph.nodes.items()},
            "rng": rng_state(),
            "callbacks": {  # callbacks that keep state across steps (mask_diversity)
                type(callback).__name__: callback.state_dict()
                for callback in self.callbacks
                if isinstance(callback, StatefulCallback)
            },
            CLOCK: self._clock(),  # wall time, not training state: no effect on the run
        }

    def save(self) -> Path | None:
        """Write ``checkpoint.pt`` in the run folder atomically (rank 0 only)."""
        path = self.checkpoint_path
        if path is None:
            return None
        if self.writes:
            started = time.perf_counter()
            save_checkpoint(path, self.state_dict())
            self.checkpoint_seconds += time.perf_counter() - started
        self.last_checkpoint = self.step
        distributed.barrier()  # no process runs ahead of (or exits before) the write
        return path

    def restore(self, state: dict[str, Any], source: Path) -> None:
        """Continue from a checkpoint's state, once :func:`metamask.resume.check_restorable`
        has accepted it (:func:`metamask.resume.read_resume_checkpoint` reads one).

        The nodes restart their data iterators at the saved positions before the RNG states
        are set, so that nothing the restore itself draws reaches the training.
        """
        step = check_restorable(
            state, source, list(self.graph.nodes), self.period, self.spec.train.steps
        )
        nodes = state["nodes"]
        for name, node in self.graph.nodes.items():
            node.load_state_dict(nodes[name])
        self.graph.engine.global_step = int(state["global_step"])
        self.step = self.last_checkpoint = self.resumed_from = step
        self.elapsed_before, self.resumes = resume_clock(state, step)
        set_rng_state(state["rng"])
        saved = state.get("callbacks") or {}  # absent in checkpoints of older versions
        for callback in self.callbacks:
            if isinstance(callback, StatefulCallback) and type(callback).__name__ in saved:
                callback.load_state_dict(saved[type(callback).__name__])
        if self.writes and self.out_dir is not None:
            tidy_folder(self.out_dir, self.step)

    # -- signals ---------------------------------------------------------------------------------

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM set a flag the loop reads after each step (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: FrameType | None) -> None:
            if self._signal is not None:  # a second signal: stop now
                raise Interrupted(
                    f"{signal.Signals(signum).name} again during step {self.step + 1}: stopped "
                    f"without a new checkpoint{self._resume_hint()}",
                    signum,
                )
            self._signal = signum

        for sig in previous:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_on_signal(self) -> None:
        signum = self._signal if self._signal is not None else signal.SIGTERM
        self.save()
        raise Interrupted(
            f"{signal.Signals(signum).name}: stopped after step {self.step} of "
            f"{self.spec.train.steps}{self._resume_hint()}",
            signum,
        )

    def _resume_hint(self) -> str:
        if self.out_dir is None or self.last_checkpoint is None:
            return " (no checkpoint)"
        return (
            f"; checkpoint at step {self.last_checkpoint} in {self.out_dir} "
            f"(continue with: metamask run --resume {self.out_dir})"
        )

    # -- logging ---------------------------------------------------------------------------------

    @contextmanager
    def _callbacks(self) -> Iterator[None]:
        """``on_train_start`` before the first step; ``on_train_end`` after the last, and also
        when training stops on an error or a signal (files are closed either way)."""
        started: list[Callback] = []
        try:
            for callback in self.callbacks:
                callback.on_train_start(self)
                started.append(callback)
            yield
        finally:
            for callback in reversed(started):
                callback.on_train_end(self)

    def _progress(self) -> Progress:
        return _LossesBelow(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.show_progress,
            transient=False,
        )


class _LossesBelow(Progress):
    """The bar on one line (about 70 columns), each node's current loss on the line below
    (``name=value`` pairs: a narrow terminal or a log file wraps between nodes, never
    inside a name or cuts one)."""

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("losses"):
                yield Text(str(task.fields["losses"]), style="cyan")


def _describe(latest: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, metrics in latest.items():
        main = metrics.get("loss", metrics.get("support"))
        if main is not None:
            parts.append(f"{name}={main:.4f}")
    return "  ".join(parts)

"""A comparison's runs carried out: finished ones read back, stopped ones resumed, the rest
trained, one at a time or ``jobs`` side by side, with runs done / planned and an estimated
finish time on the console.

Each run is a normal run folder (``metamask run --resume``, ``eval`` and the rest work on it).
Side by side, each run is a worker process of its own (forked: the workers inherit the
loaded modules) with the thread share the plan gave its spec, so that two jobs do not
oversubscribe the cores; the results do not depend on ``jobs``, a run being seeded by its
spec alone.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from metamask.experiments.finished import finished_or_run, finished_results
from metamask.experiments.planning import Planned
from metamask.experiments.scores import run_scores


@dataclass
class Finished:
    """One planned run's outcome: its results.json, whether it was read back, and this
    call's wall seconds for it (reading it back, or training and evaluating it)."""

    run: Planned
    results: dict[str, Any]
    read_back: bool
    wall_seconds: float
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = run_scores(self.results)


#: what carries out one run (the default trains with :func:`finished_or_run`); a script with
#: a measure of its own (the controlled task's AUROC) passes its own
RunOne = Callable[[Planned, bool, Console], tuple[dict[str, Any], bool]]


def train_or_read(run: Planned, progress: bool, console: Console) -> tuple[dict[str, Any], bool]:
    """The run's results.json: read back when finished, else trained (resumed from its
    checkpoint when it has one). Returns them and whether they were read back."""
    return finished_or_run(run.spec, run.folder, str(run.arm.source), progress, console)


def _one(run: Planned, progress: bool, console: Console, how: RunOne) -> Finished:
    started = time.perf_counter()
    results, read_back = how(run, progress, console)
    return Finished(run, results, read_back, time.perf_counter() - started)


def _quietly(run: Planned, how: RunOne) -> Finished:
    """:func:`_one` in a worker process: no progress bars (they would interleave)."""
    return _one(run, False, Console(stderr=True, quiet=True), how)


class Progress:
    """Runs done out of planned, and when the rest should be done: the mean wall time of the
    runs trained so far, times those left, over the jobs (runs read back take no time)."""

    def __init__(self, planned: int, jobs: int, console: Console) -> None:
        self.planned, self.jobs, self.console = planned, jobs, console
        self.done = 0
        self.trained: list[float] = []
        self.to_train = planned

    def start(self, to_train: int) -> None:
        self.to_train = to_train
        done = self.planned - to_train
        self.console.print(
            f"compare: {self.planned} runs planned, {done} finished before, {to_train} to train"
            + (f", {self.jobs} side by side" if self.jobs > 1 and to_train > 1 else ""),
            highlight=False,
        )

    def finished(self, item: Finished) -> None:
        self.done += 1
        if not item.read_back:
            self.trained.append(item.wall_seconds)
        scores = ", ".join(
            f"{k} {v:.4f}" for k, v in item.scores.items() if not k.startswith("audit.")
        )
        how = "read back" if item.read_back else f"{item.wall_seconds:.0f} s"
        self.console.print(
            f"[{self.done}/{self.planned}] {item.run.label}: {scores or 'no scores'} ({how})"
            f"{self.eta()}",
            highlight=False,
            soft_wrap=True,
        )

    def eta(self) -> str:
        left = self.to_train - len(self.trained)
        if left <= 0 or not self.trained:
            return ""
        seconds = sum(self.trained) / len(self.trained) * left / min(self.jobs, left)
        at = time.strftime("%H:%M", time.localtime(time.time() + seconds))
        return f"; {left} left, done about {at} (~{seconds / 60:.0f} min)"


def carry_out(
    runs: Sequence[Planned],
    jobs: int = 1,
    progress: bool = True,
    console: Console | None = None,
    how: RunOne = train_or_read,
    is_finished: Callable[[Planned], bool] | None = None,
) -> Iterator[tuple[int, Finished]]:
    """(plan index, outcome) of every run as it finishes, ``jobs`` at a time; progress lines
    on ``console``. ``is_finished`` tells which runs will be read back (default: their
    results.json holds their spec), for the count and the estimate."""
    console = console or Console(stderr=True)
    done_before = is_finished or (lambda r: finished_results(r.folder, r.spec) is not None)
    meter = Progress(len(runs), jobs, console)
    meter.start(sum(not done_before(r) for r in runs))
    if jobs <= 1:
        for i, run in enumerate(runs):
            item = _one(run, progress, console, how)
            meter.finished(item)
            yield i, item
        return
    context = multiprocessing.get_context("fork")  # the workers inherit the loaded modules
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures: dict[Future[Finished], int] = {
            pool.submit(_quietly, run, how): i for i, run in enumerate(runs)
        }
        try:
            for future in as_completed(futures):
                item = future.result()  # a run's error (bad data, a signal) stops the rest
                meter.finished(item)
                yield futures[future], item
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # runs in flight stop on their own
            raise

"""Trainer callbacks: the protocol, and the metrics log every run with a folder writes.

A callback sees the trainer at three moments: ``on_train_start`` (before the first step of
this call of :meth:`~metamask.train.Trainer.run`), ``on_step_end`` (after every engine step,
with the nodes that stepped) and ``on_train_end`` (after the last step, and also when
training stops on an error or a signal). Pictures every N steps
(:class:`metamask.pictures.maskers.MaskPictures`), extra logs or periodic probes are
callbacks; so is ``metrics.jsonl`` (:class:`MetricsLog`). A callback must not draw from the
global random generators: that would change the run's random stream, and a resumed run would
differ.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from metamask.errors import ConfigError, OutputError

if TYPE_CHECKING:
    from metamask.graph import Graph
    from metamask.nodes.base import Node
    from metamask.train import Trainer


class Callback(Protocol):
    """Something the trainer calls around and after every engine step.

    ``trainer.step`` is the number of engine iterations done, ``trainer.graph`` the graph,
    ``trainer.latest`` every node's last metrics, ``trainer.to_log`` the nodes logged at this
    step (empty when it is not a logged step), ``trainer.out_dir`` the run folder (None
    without one); ``stepped`` are the nodes that took a step in this iteration.
    """

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


@runtime_checkable
class StatefulCallback(Protocol):
    """A callback whose state across steps travels in the trainer's checkpoints (under its
    class name), so that a resumed run continues as the uninterrupted one does."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MetricsLog:
    """``metrics.jsonl``: one JSON object per node per logged step (``trainer.to_log``: every
    ``train.log_every`` engine steps and at the last), with each loss term, the gradient norm,
    the learning rate and the run's training seconds (``time``: a resumed run continues from
    its checkpoint's clock, so it never goes back). Appended unbuffered, each step's rows in
    one write, so a killed run leaves whole lines (a resumed run first drops the rows past its
    checkpoint)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (on_train_end)
        except OSError as exc:
            raise OutputError(f"{self.path}: could not write ({exc.strerror or exc})") from None

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        if not trainer.to_log:
            return
        assert self._handle is not None, "MetricsLog.on_train_start was not called"
        elapsed = round(trainer.elapsed(), 3)
        rows = []
        for name, metrics, lr in logged_metrics(trainer):
            row = {"step": trainer.step, "node": name, **metrics, "time": elapsed}
            if lr is not None:
                row["lr"] = lr
            rows.append(json.dumps(row) + "\n")
        append_whole(self._handle, "".join(rows).encode())

    def on_train_end(self, trainer: Trainer) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def append_whole(handle: IO[bytes], data: bytes) -> None:
    """Append ``data`` to an unbuffered file, or nothing of it: on a write error (full disk,
    file size limit) the file is cut back to its previous length and OutputError raised."""
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        with suppress(OSError):
            os.ftruncate(fd, size)
        raise OutputError(f"{handle.name}: could not write ({exc.strerror or exc})") from None


def logged_metrics(trainer: Trainer) -> list[tuple[str, dict[str, Any], float | None]]:
    """For each node logged at this step (``trainer.to_log``): its name, its last metrics
    (``local_step`` included) and its current learning rate (None without an optimizer)."""
    return [
        (name, trainer.latest[name], learning_rate(trainer.graph, name)) for name in trainer.to_log
    ]


def learning_rate(graph: Graph, name: str) -> float | None:
    """Node ``name``'s current learning rate (its first parameter group), if it has one."""
    optimizer = graph.nodes[name].optimizer
    return None if optimizer is None else float(optimizer.param_groups[0]["lr"])


TENSORBOARD_DIR = "tensorboard"  # the event files' folder in the run folder


class TensorBoardLog:
    """TensorBoard event files in ``OUT/tensorboard/`` (``train.tensorboard: true``): on the
    steps :class:`MetricsLog` writes, every scalar of its rows (each node's terms and its
    learning rate) as ``<node>/<term>`` at the engine step. Flushed at each logged step, so a
    killed run keeps its curves; a resumed run hides the events past its checkpoint
    (``purge_step``), as it drops those rows of ``metrics.jsonl``. Needs the ``tensorboard``
    package, which is checked when the callback is made: asked for but missing is a
    :class:`~metamask.errors.ConfigError` before anything is written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer_class = summary_writer_class()
        self._writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        purge = trainer.step + 1 if trainer.step > 0 else None  # resumed: hide later events
        try:
            self._writer = self._writer_class(str(self.folder), purge_step=purge)
        except OSError as exc:
            raise OutputError(f"{self.folder}: could not write ({exc.strerror or exc})") from None

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        if not trainer.to_log:
            return
        assert self._writer is not None, "TensorBoardLog.on_train_start was not called"
        for name, metrics, lr in logged_metrics(trainer):
            scalars = {k: v for k, v in metrics.items() if k != "local_step"}
            if lr is not None:
                scalars["lr"] = lr
            for term, value in scalars.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{name}/{term}", value, trainer.step)
        self._writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def summary_writer_class() -> Any:
    """torch's ``SummaryWriter``, or a one-line ConfigError when ``tensorboard`` is missing."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "train.tensorboard: true needs the 'tensorboard' package, which is not installed "
            "(pip install tensorboard)"
        ) from None
    return SummaryWriter


class HypergradientAudit:
    """The hypergradient audit's cadence and logs (``hypergradient: {audit: ...}`` on a node,
    ``latent_solver: {audit: ...}`` on an adapt node).

    Installs :class:`metamask.hypergrad.audit.Auditor`'s hooks (and, for latent solvers,
    :class:`metamask.hypergrad.latent_audit.LatentAuditor`'s) on the graph's nodes at the
    start and takes them off at the end. After each engine step, each finished audit of an
    edge ``audited->upper`` becomes a ``metrics.jsonl`` row (``{"step", "audit": edge,
    "reference", "cosine", "norm_ratio", "relative_error", "same_sign",
    "reference_seconds", ...}``, no ``node`` key: loss readers skip it) and TensorBoard
    scalars ``audit/<edge>/<measure>``; a reference CG that stopped on non-positive
    curvature is warned about on the console. :attr:`summary` holds the medians per edge
    (from the whole ``metrics.jsonl`` of a run folder, earlier legs of a resumed run
    included), which the end of the run prints.
    """

    def __init__(self, path: Path | None, tensorboard: Path | None = None) -> None:
        self.path = path
        self.tensorboard = tensorboard
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, dict[str, Any]] = {}
        self._auditors: list[Any] = []  # the edge audits' Auditor, the latent audits' one
        self._handle: IO[bytes] | None = None
        self._writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        from metamask.hypergrad.audit import AuditOptions, Auditor
        from metamask.hypergrad.latent_audit import LatentAuditor

        audits = trainer.graph.audits
        edges = {n: o for n, o in audits.items() if isinstance(o, AuditOptions)}
        latents = {n: o for n, o in audits.items() if not isinstance(o, AuditOptions)}
        self._auditors = [Auditor(trainer.graph.nodes, edges)] if edges else []
        if latents:
            self._auditors.append(LatentAuditor(trainer.graph.nodes, latents))
        for auditor in self._auditors:
            auditor.install()
        try:
            if self.path is not None:
                self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (on_train_end)
            if self.tensorboard is not None:
                purge = trainer.step + 1 if trainer.step > 0 else None
                self._writer = summary_writer_class()(str(self.tensorboard), purge_step=purge)
        except OSError as exc:
            raise OutputError(f"{self.path}: could not write ({exc.strerror or exc})") from None

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        from metamask.hypergrad.audit import result_row

        results = []
        for auditor in self._auditors:
            results += auditor.results
            auditor.results = []
        if not results:
            return
        elapsed = round(trainer.elapsed(), 3)
        lines = []
        for result in results:
            if result.warning:
                trainer.console.print(f"[yellow]audit:[/] {result.warning}", highlight=False)
            row = {"step": trainer.step, **result_row(result), "time": elapsed}
            self.rows.append(row)
            lines.append(json.dumps(row) + "\n")
            if self._writer is not None:
                for key, value in result.metrics.items():
                    self._writer.add_scalar(f"audit/{row['audit']}/{key}", value, trainer.step)
        if self._handle is not None:
            append_whole(self._handle, "".join(lines).encode())
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        from metamask.hypergrad.audit import audit_summary, read_audit_rows

        for auditor in self._auditors:
            auditor.remove()
        self._auditors = []
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        rows = read_audit_rows(self.path) if self.path is not None else self.rows
        self.summary = audit_summary(rows)
        for edge, entry in self.summary.items():
            cosine = entry.get("median_cosine")
            shown = "no audit finished" if cosine is None else f"median cosine {cosine:+.3f}"
            trainer.console.print(
                f"hypergradient audit {edge}: {shown} over {entry['audits']} audits "
                f"(reference {entry['reference']})",
                highlight=False,
            )

"""One run, end to end: spec -> data -> graph -> training -> evaluation -> results.json; and
the evaluation of a finished run again from its folder (``metamask eval``).

``results.json`` keeps every evaluation of the run: ``evaluations`` lists them in order (the
run's own first, then each ``metamask eval``: when, at which checkpoint step, with which
``eval`` settings, and the scores), and the top-level fields (``metric``, ``test``, ``val``,
``probe_epoch``, ``probe_seconds``, ``finetune``) hold the newest value of each. The newest
probe's per-epoch curve is in ``probe_curve.json`` only (not repeated in ``evaluations``).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from metamask import distributed
from metamask.checkpoint import load_checkpoint, write_json
from metamask.compose import build_graph
from metamask.config import RunSpec, spec_to_dict
from metamask.config.imports import import_modules, with_imports
from metamask.data.base import DataBundle
from metamask.downstream.finetune import FinetuneResult, fine_tune
from metamask.downstream.init_from import start_weights
from metamask.downstream.probe import ProbeResult, linear_probe
from metamask.errors import CheckpointError, ConfigError
from metamask.folder_lock import run_folder_lock
from metamask.graph import Graph
from metamask.pictures.run_pictures import draw_run_pictures
from metamask.resume import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    RESULTS_NAME,
    budget_extension,
    check_not_finished,
    check_same_run,
    read_resume_checkpoint,
    resume_folder,
    run_folder_spec,
    saved_spec,
    write_run_spec,
)
from metamask.seeding import seed_everything
from metamask.spec_data import load_eval_data, load_pretrain_data
from metamask.train import Trainer, TrainSummary

#: what ``metamask eval --only`` may name
EVALUATIONS = ("probe", "finetune")


@dataclass
class RunResult:
    """What a run produced; ``results`` is what results.json holds."""

    graph: Graph
    train: TrainSummary
    probe: ProbeResult | None
    results: dict[str, Any]
    out_dir: Path | None
    finetune: FinetuneResult | None = None


def graph_at_checkpoint(
    spec: RunSpec, source: str, path: Path
) -> tuple[Graph, dict[str, Any], DataBundle, torch.device]:
    """A stopped or finished run's graph built again, and its checkpoint, for another look.

    Called under the run folder's lock (``metamask eval``, ``metamask audit``): the checkpoint
    at ``path`` is read and checked to be this spec's run, then the graph is built as the run
    built it (threads, device, seed); restoring the state into it is the caller's choice.
    """
    state = load_checkpoint(path)
    check_same_run(saved_spec(state, path), spec_to_dict(spec), path)
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    device = resolve_device(spec.train.device)
    seed_everything(spec.seed)
    bundle = load_pretrain_data(spec)
    return build_graph(spec, bundle, device, source), state, bundle, device


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; explicit CUDA requests need a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:N)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but no CUDA device is available here")
    return device


def run_spec(
    spec: RunSpec,
    out_dir: Path | None = None,
    source: str = "<spec>",
    progress: bool = True,
    console: Console | None = None,
    resume: Path | None = None,
    finished_ok: bool = True,
) -> RunResult:
    """Pretrain the spec's graph, evaluate it, and (with ``out_dir``) write results.json.

    With ``resume`` (a run folder or its checkpoint file), training continues from the
    checkpoint, which must come from the same spec (see :mod:`metamask.resume`). Resuming a
    finished run trains nothing and evaluates it again (earlier evaluations kept); with
    ``finished_ok=False`` (the command line) it is refused, pointing to ``metamask eval``.
    The folder is held for the run (:mod:`metamask.folder_lock`): a second process is refused.
    Under data parallelism (:mod:`metamask.distributed`) every process trains; rank 0 evaluates and
    writes the files.
    """
    if out_dir is None or not distributed.is_main():  # only the writing process holds it
        return _run_spec(spec, out_dir, source, progress, console, resume, finished_ok)
    with run_folder_lock(out_dir):
        return _run_spec(spec, out_dir, source, progress, console, resume, finished_ok)


def _run_spec(
    spec: RunSpec,
    out_dir: Path | None,
    source: str,
    progress: bool,
    console: Console | None,
    resume: Path | None,
    finished_ok: bool,
) -> RunResult:
    """:func:`run_spec`'s body, with the run folder held."""
    console = console or Console(stderr=True)
    import_modules(spec.imports, source)  # before the data: a user module may register it
    checkpoint = read_resume_checkpoint(spec, resume) if resume is not None else None
    if checkpoint is not None and resume is not None:
        folder = resume_folder(resume)
        assert folder is not None
        if not finished_ok:
            check_not_finished(checkpoint[0], spec, folder)
        note = budget_extension(saved_spec(*checkpoint), spec)
        if note is not None:
            console.print(f"metamask: {note}", highlight=False, soft_wrap=True)
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    parallel = distributed.current()
    device = parallel.device if parallel else resolve_device(spec.train.device)
    seed_everything(spec.seed)
    bundle = load_pretrain_data(spec)
    graph = build_graph(spec, bundle, device, source)
    start = start_weights(graph.mae, spec, out_dir, resuming=checkpoint is not None)
    trainer = Trainer(graph, spec, out_dir, console, progress)
    if checkpoint is not None:
        trainer.restore(*checkpoint)
    if out_dir is not None and distributed.is_main():  # what `--resume DIR` alone reads
        write_run_spec(out_dir, spec)
    summary = trainer.run()
    if parallel is not None:  # evaluation runs in rank 0 alone, outside data parallelism
        distributed.shutdown()
        if not parallel.is_main:
            return RunResult(graph, summary, None, {}, out_dir)
    eval_bundle = load_eval_data(spec, bundle, source)
    wanted = EVALUATIONS if spec.eval.enabled else ()
    evaluation = evaluate_model(graph, spec, eval_bundle, device, wanted, progress, console)
    probe, finetune = evaluation.probe, evaluation.finetune
    history = _earlier_evaluations(out_dir) if resume is not None else []
    if evaluation.ran:
        history.append(evaluation.entry("run", summary.steps, spec, eval_bundle.info.name))
    results = {
        "name": spec.name,
        "dataset": bundle.info.name,
        "eval_dataset": eval_bundle.info.name,
        "seed": spec.seed,
        "device": str(device),
        "precision": spec.train.precision,
        "metric": probe.metric if probe else None,
        "test": probe.test if probe else None,
        "val": probe.val if probe else None,
        "probe_epoch": probe.epoch if probe else None,
        "probe_seconds": evaluation.probe_seconds,
        "finetune": finetune.to_dict() if finetune else None,
        "train": summary.to_dict(),
        "parameters": sum(p.numel() for p in graph.mae.parameters()),
        "init_from": start,  # model.init_from: the start weights loaded (None: a fresh init)
        "spec": spec_to_dict(spec),
        "versions": versions(),
        "evaluations": history,  # a resumed run keeps those of its earlier finish
    }
    if summary.audit:  # the hypergradient audit's medians per edge (metamask.hypergrad.audit)
        results["audit"] = summary.audit
    if out_dir is not None:
        write_json(out_dir / RESULTS_NAME, results)
        if probe is not None:
            write_json(out_dir / "probe_curve.json", probe.curve)
        # losses.png, reconstructions.png, masks.png (a learned masker): nothing random drawn
        draw_run_pictures(graph, bundle.val, out_dir, out_dir / METRICS_NAME)
    return RunResult(graph, summary, probe, results, out_dir, finetune)


@dataclass
class Evaluation:
    """The scores of one evaluation of a pretrained model (either part may be absent)."""

    probe: ProbeResult | None = None
    probe_seconds: float | None = None
    finetune: FinetuneResult | None = None

    @property
    def ran(self) -> bool:
        return self.probe is not None or self.finetune is not None

    def entry(self, by: str, step: int, spec: RunSpec, eval_dataset: str) -> dict[str, Any]:
        """This evaluation as an entry of results.json's ``evaluations`` history."""
        probe = self.probe
        return {
            "by": by,  # "run" (the end of training) or "eval" (metamask eval)
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "step": step,  # the engine step of the evaluated parameters
            "eval_dataset": eval_dataset,
            "eval": spec_to_dict(spec.eval),  # the settings it used
            "metric": probe.metric if probe else None,
            "test": probe.test if probe else None,
            "val": probe.val if probe else None,
            "probe_epoch": probe.epoch if probe else None,
            "probe_seconds": self.probe_seconds,  # the newest probe's curve: probe_curve.json
            "finetune": self.finetune.to_dict() if self.finetune else None,
        }


def evaluate_model(
    graph: Graph,
    spec: RunSpec,
    eval_bundle: DataBundle,
    device: torch.device,
    wanted: tuple[str, ...] = EVALUATIONS,
    progress: bool = False,
    console: Console | None = None,
) -> Evaluation:
    """The linear probe and (when ``eval.finetune`` is set) fine-tuning of ``graph``'s model,
    those of ``wanted`` only; nothing for unlabelled evaluation data. Progress bars on
    ``console`` (stderr) unless ``progress`` is False."""
    result = Evaluation()
    if not eval_bundle.info.labelled:
        return result
    if "probe" in wanted:
        started = time.perf_counter()
        result.probe = linear_probe(
            graph.mae, eval_bundle, spec.eval.probe, device, spec.seed, progress, console
        )
        result.probe_seconds = time.perf_counter() - started
    # after the probe: fine-tunes a copy, the pretrained encoder stays as is
    if "finetune" in wanted and spec.eval.finetune is not None:
        result.finetune = fine_tune(
            graph.mae, eval_bundle, spec.eval.finetune, device, spec.seed, progress, console
        )
    return result


def evaluate_run(
    folder: Path,
    overrides: list[str] | None = None,
    only: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    imports: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate the run in ``folder`` again from its checkpoint; returns the new results.json.

    The spec is the folder's (``spec.yaml``, else the checkpoint's) with ``overrides``, which
    may change only what does not change the trained model (``eval.*``, where the data lives,
    the device, threads). ``only`` (``probe`` or ``finetune``) runs one part; by default the
    probe, and fine-tuning when ``eval.finetune`` is set. ``imports`` (``--import``) adds
    modules to those the run's spec imports (:mod:`metamask.config.imports`). Earlier
    results are kept: the new evaluation is appended to ``evaluations`` (:mod:`metamask.run`'s
    docstring). The folder is held while it is read and written (:mod:`metamask.folder_lock`).

    Raises:
        CheckpointError: ``folder`` is no run folder or holds no checkpoint; overrides that
            would change the trained model.
        ConfigError: fine-tuning asked for (``only=finetune``) without an ``eval.finetune``
            block, or unlabelled evaluation data.
    """
    console = console or Console(stderr=True)
    path = folder / CHECKPOINT_NAME
    if folder.is_dir() and not path.is_file():
        raise CheckpointError(
            f"eval {folder}: no {CHECKPOINT_NAME} in the folder: nothing to evaluate (the run "
            "stopped before its first checkpoint)"
        )
    spec, source = run_folder_spec(folder, overrides or [], command="eval")
    if imports:  # --import: imported now, and listed in the spec the new scores answer to
        spec = with_imports(spec, imports)
    import_modules(spec.imports, source)  # what the run imported (its spec.yaml says)
    wanted = EVALUATIONS if only is None else (only,)
    if wanted == ("finetune",) and spec.eval.finetune is None:
        raise ConfigError(
            f"eval {folder}: --only finetune, but the spec has no eval.finetune block; "
            "set one, e.g. --set eval.finetune.epochs=20"
        )
    with run_folder_lock(folder):
        graph, state, bundle, device = graph_at_checkpoint(spec, source, path)
        trainer = Trainer(graph, spec, None, console, progress=False)
        trainer.restore(state, path)  # the parameters only: no folder, nothing tidied
        eval_bundle = load_eval_data(spec, bundle, source)
        if not eval_bundle.info.labelled:
            raise ConfigError(
                f"eval {folder}: the evaluation data {eval_bundle.info.name!r} has no labels: "
                "nothing to probe or fine-tune"
            )
        evaluation = evaluate_model(graph, spec, eval_bundle, device, wanted, progress, console)
        results = _read_results(folder / RESULTS_NAME)
        if not results:  # a run stopped before its results: what the checkpoint tells
            results = {
                "name": spec.name,
                "dataset": bundle.info.name,
                "seed": spec.seed,
                "train": {"steps": trainer.step, "seconds": trainer.elapsed_before},
                "parameters": sum(p.numel() for p in graph.mae.parameters()),
            }
        history = list(results.get("evaluations") or [])
        if not history and results.get("test") is not None:  # written before the history
            history.append({"by": "run", **{k: results.get(k) for k in _SCORES}})
        entry = evaluation.entry("eval", trainer.step, spec, eval_bundle.info.name)
        history.append(entry)
        for key in _SCORES:
            if entry[key] is not None:
                results[key] = entry[key]
        results.update(
            eval_dataset=eval_bundle.info.name,
            device=str(device),
            spec=spec_to_dict(spec),  # the spec the newest scores answer to
            versions=versions(),
            evaluations=history,
        )
        write_json(folder / RESULTS_NAME, results)
        if evaluation.probe is not None:
            write_json(folder / "probe_curve.json", evaluation.probe.curve)
    return results


#: results.json's top-level scores: the newest of each (an evaluation may compute a part)
_SCORES = ("metric", "test", "val", "probe_epoch", "probe_seconds", "finetune")


def _earlier_evaluations(folder: Path | None) -> list[dict[str, Any]]:
    """The evaluations an earlier finish of this run wrote (a budget extension keeps them)."""
    try:
        results = _read_results(folder / RESULTS_NAME) if folder is not None else {}
    except CheckpointError:
        return []  # unreadable: the new results.json replaces it
    earlier = results.get("evaluations")
    return list(earlier) if isinstance(earlier, list) else []


def _read_results(path: Path) -> dict[str, Any]:
    """results.json as a mapping; {} when absent; CheckpointError when unreadable."""
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc}); move it aside") from None
    if not isinstance(results, dict):
        raise CheckpointError(f"{path}: expected a JSON object; move it aside")
    return results


def versions() -> dict[str, str]:
    import betty
    import timm
    import torchopt

    import metamask

    return {
        "metamask": metamask.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "betty": getattr(betty, "__version__", "0.2.1"),
        "torchopt": torchopt.__version__,
        "timm": timm.__version__,
    }

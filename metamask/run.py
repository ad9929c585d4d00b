"""One run, end to end: spec -> data -> graph -> training -> evaluation -> results.json."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from metamask import distributed
from metamask.checkpoint import write_json
from metamask.compose import build_graph
from metamask.config import RunSpec, spec_to_dict
from metamask.errors import ConfigError
from metamask.evaluate import ProbeResult, linear_probe
from metamask.finetune import FinetuneResult, fine_tune
from metamask.folder_lock import run_folder_lock
from metamask.graph import Graph
from metamask.plots import save_mask_picture
from metamask.resume import read_resume_checkpoint
from metamask.seeding import seed_everything
from metamask.spec_data import load_eval_data, load_pretrain_data
from metamask.train import Trainer, TrainSummary


@dataclass
class RunResult:
    """What a run produced; ``results`` is what results.json holds."""

    graph: Graph
    train: TrainSummary
    probe: ProbeResult | None
    results: dict[str, Any]
    out_dir: Path | None
    finetune: FinetuneResult | None = None


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
) -> RunResult:
    """Pretrain the spec's graph, evaluate it, and (with ``out_dir``) write results.json.

    With ``resume`` (a run folder or its checkpoint file), training continues from the
    checkpoint, which must come from the same spec (see :mod:`metamask.resume`). The folder
    is held for the run (:mod:`metamask.folder_lock`): a second process is refused. Under data
    parallelism (:mod:`metamask.distributed`) every process trains; rank 0 evaluates and
    writes the files.
    """
    if out_dir is None or not distributed.is_main():  # only the writing process holds it
        return _run_spec(spec, out_dir, source, progress, console, resume)
    with run_folder_lock(out_dir):
        return _run_spec(spec, out_dir, source, progress, console, resume)


def _run_spec(
    spec: RunSpec,
    out_dir: Path | None,
    source: str,
    progress: bool,
    console: Console | None,
    resume: Path | None,
) -> RunResult:
    """:func:`run_spec`'s body, with the run folder held."""
    console = console or Console(stderr=True)
    checkpoint = read_resume_checkpoint(spec, resume) if resume is not None else None
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    parallel = distributed.current()
    device = parallel.device if parallel else resolve_device(spec.train.device)
    seed_everything(spec.seed)
    bundle = load_pretrain_data(spec)
    graph = build_graph(spec, bundle, device, source)
    trainer = Trainer(graph, spec, out_dir, console, progress)
    if checkpoint is not None:
        trainer.restore(*checkpoint)
    summary = trainer.run()
    if parallel is not None:  # evaluation runs in rank 0 alone, outside data parallelism
        distributed.shutdown()
        if not parallel.is_main:
            return RunResult(graph, summary, None, {}, out_dir)
    probe = None
    eval_bundle = load_eval_data(spec, bundle, source)
    if spec.eval.enabled and eval_bundle.info.labelled:
        started = time.perf_counter()
        probe = linear_probe(graph.mae, eval_bundle, spec.eval.probe, device, spec.seed)
        probe_seconds = time.perf_counter() - started
    finetune = None  # after the probe: fine-tunes a copy, the pretrained encoder stays as is
    if spec.eval.enabled and spec.eval.finetune is not None and eval_bundle.info.labelled:
        finetune = fine_tune(graph.mae, eval_bundle, spec.eval.finetune, device, spec.seed)
    results = {
        "name": spec.name,
        "dataset": bundle.info.name,
        "eval_dataset": eval_bundle.info.name,
        "seed": spec.seed,
        "device": str(device),
        "metric": probe.metric if probe else None,
        "test": probe.test if probe else None,
        "val": probe.val if probe else None,
        "probe_epoch": probe.epoch if probe else None,
        "probe_seconds": probe_seconds if probe else None,
        "finetune": finetune.to_dict() if finetune else None,
        "train": summary.to_dict(),
        "parameters": sum(p.numel() for p in graph.mae.parameters()),
        "spec": spec_to_dict(spec),
        "versions": versions(),
    }
    if out_dir is not None:
        write_json(out_dir / "results.json", results)
        if probe is not None:
            write_json(out_dir / "probe_curve.json", probe.curve)
        save_mask_picture(graph, bundle.val, out_dir)  # MLO-MAE: what the masker learned
    return RunResult(graph, summary, probe, results, out_dir, finetune)


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

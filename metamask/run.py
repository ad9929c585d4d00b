"""One run, end to end: spec -> data -> graph -> training -> evaluation -> results.json."""

from __future__ import annotations

import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec, spec_to_dict
from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.registry import get_dataset, load_dataset
from metamask.data.user_arrays import array_dataset_entry, load_array_dataset
from metamask.errors import ConfigError, DataError
from metamask.evaluate import ProbeResult, linear_probe
from metamask.graph import Graph, build_graph
from metamask.train import Trainer, TrainSummary


@dataclass
class RunResult:
    """What a run produced; ``results`` is what results.json holds."""

    graph: Graph
    train: TrainSummary
    probe: ProbeResult | None
    results: dict[str, Any]
    out_dir: Path | None


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


def load_options(spec: RunSpec) -> LoadOptions:
    return LoadOptions(
        seed=spec.seed, val_fraction=spec.data.val_fraction, data_root=spec.data.data_root
    )


def pretrain_info(spec: RunSpec) -> DatasetInfo:
    """Facts of the spec's pretraining data, without loading it."""
    if spec.data.arrays is not None:
        return array_dataset_entry(spec.data.dataset, spec.data.arrays).info
    return get_dataset(spec.data.dataset).info


def load_pretrain_data(spec: RunSpec) -> DataBundle:
    """The spec's pretraining dataset: a registered one, or the user's arrays (data.arrays)."""
    if spec.data.arrays is not None:
        return load_array_dataset(spec.data.dataset, spec.data.arrays, load_options(spec))
    return load_dataset(spec.data.dataset, load_options(spec))


def load_eval_data(spec: RunSpec, pretrain: DataBundle, source: str = "<spec>") -> DataBundle:
    """The probe's dataset: the pretraining one, or ``eval.dataset`` (transfer, same shape)."""
    if spec.eval.dataset is None or spec.eval.dataset == pretrain.info.name:
        return pretrain
    bundle = load_dataset(spec.eval.dataset, load_options(spec))
    ours, theirs = pretrain.info, bundle.info
    if (ours.modality, ours.input_shape, ours.vocab_size) != (
        theirs.modality,
        theirs.input_shape,
        theirs.vocab_size,
    ):
        raise DataError(
            f"{source}: eval.dataset: {theirs.name} has {theirs.modality} inputs "
            f"{theirs.input_shape} but the encoder was pretrained on {ours.name} "
            f"({ours.modality} {ours.input_shape})"
        )
    return bundle


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_spec(
    spec: RunSpec,
    out_dir: Path | None = None,
    source: str = "<spec>",
    progress: bool = True,
    console: Console | None = None,
) -> RunResult:
    """Pretrain the spec's graph, evaluate it, and (with ``out_dir``) write results.json."""
    console = console or Console(stderr=True)
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    device = resolve_device(spec.train.device)
    seed_everything(spec.seed)
    bundle = load_pretrain_data(spec)
    graph = build_graph(spec, bundle, device, source)
    summary = Trainer(graph, spec, out_dir, console, progress).run()
    probe = None
    eval_bundle = load_eval_data(spec, bundle, source)
    if spec.eval.enabled and eval_bundle.info.labelled:
        started = time.perf_counter()
        probe = linear_probe(graph.mae, eval_bundle, spec.eval.probe, device, spec.seed)
        probe_seconds = time.perf_counter() - started
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
        "train": summary.to_dict(),
        "parameters": sum(p.numel() for p in graph.mae.parameters()),
        "spec": spec_to_dict(spec),
        "versions": versions(),
    }
    if out_dir is not None:
        write_json(out_dir / "results.json", results)
        if probe is not None:
            write_json(out_dir / "probe_curve.json", probe.curve)
    return RunResult(graph, summary, probe, results, out_dir)


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

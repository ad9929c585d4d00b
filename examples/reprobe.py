"""Evaluate finished runs again from their checkpoints, with today's probe settings.

    python examples/reprobe.py runs/table_all/*/*/seed*         # every run of a table
    python examples/reprobe.py RUN_DIR --set eval.probe.epochs=200

A run folder holds results.json (its resolved spec) and checkpoint.pt (the whole graph). The
graph is rebuilt from that spec, restored, and linear-probed again; results.json gets the new
probe (the old test metric stays under ``reprobed.previous_test``) and the spec it now answers
to, so ``examples/metamae_dabs.py --reuse`` keeps it. Training is not repeated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.compose import build_graph
from metamask.config import RunSpec, apply_override, spec_from_dict, spec_to_dict
from metamask.errors import MetamaskError
from metamask.evaluate import linear_probe
from metamask.resume import read_resume_checkpoint
from metamask.spec_data import load_eval_data, load_pretrain_data
from metamask.train import Trainer


def spec_of(results: dict[str, Any], overrides: list[str]) -> RunSpec:
    """The run's spec, from the resolved form results.json holds back to the YAML form."""
    saved = json.loads(json.dumps(results["spec"]))
    for node in saved["graph"]["nodes"].values():
        node.update(node.pop("options", {}) or {})
        estimator = node.get("hypergradient") or {}
        estimator.update(estimator.pop("options", {}) or {})
        if estimator == {"type": "first_order"}:
            node.pop("hypergradient")  # the default; top nodes refuse an explicit one
        for key in [k for k, v in node.items() if v is None]:
            node.pop(key)
    for item in overrides:
        apply_override(saved, item)  # as `metamask run --set`: values parsed as YAML
    return spec_from_dict(saved, "results.json")


def reprobe(run: Path, overrides: list[str]) -> tuple[float | None, float]:
    """Probe the run again; returns (previous, new) test metric."""
    results = json.loads((run / "results.json").read_text())
    spec = spec_of(results, overrides)
    torch.set_num_threads(max(1, spec.train.threads))
    device = torch.device("cpu")
    bundle = load_pretrain_data(spec)
    graph = build_graph(spec, bundle, device, str(run / "results.json"))
    trainer = Trainer(graph, spec, None, Console(quiet=True), False)
    trainer.restore(*read_resume_checkpoint(spec, run))
    started = time.perf_counter()
    probe = linear_probe(
        graph.mae, load_eval_data(spec, bundle), spec.eval.probe, device, spec.seed
    )
    previous = results.get("test")
    results.update(
        metric=probe.metric,
        test=probe.test,
        val=probe.val,
        probe_epoch=probe.epoch,
        probe_seconds=time.perf_counter() - started,
        spec=spec_to_dict(spec),
        reprobed={"previous_test": previous, "at": time.strftime("%Y-%m-%d %H:%M:%S")},
    )
    write_json(run / "results.json", results)
    write_json(run / "probe_curve.json", probe.curve)
    return previous, probe.test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parser.parse_args(argv)
    console = Console()
    failed = 0
    for run in args.runs:
        try:
            before, after = reprobe(run, args.overrides)
        except (MetamaskError, OSError, KeyError) as exc:
            Console(stderr=True).print(f"[red]{run}: {exc}[/]", highlight=False)
            failed += 1
            continue
        was = "-" if before is None else f"{before:.4f}"
        console.print(f"{run}: test {was} -> {after:.4f}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What the hypergradient audit costs: an audit step next to a training step, per reference.

    python benchmarks/audit_cost.py --out benchmarks/results/audit_cost.json   # ~15 min, 1 thread
    python benchmarks/audit_cost.py --steps 4 --backbone tiny                  # a smoke run

Each configuration trains ``problems/mlomae-digits.yaml`` (``--backbone``, one thread, no
probe) for ``--steps`` engine steps in a fresh child process: without an audit, then with
both edges (``pretrain`` and ``head``, darts as in the spec) audited every mask step against
each reference (``unrolled``, ``cg`` and ``implicit_cg`` with ``--iterations``). Reported per
configuration: the median wall seconds of an engine step (``seconds_per_step`` of the run:
with an audit every mask step, half the engine steps hold one), the median seconds of one
audit's reference per edge (``reference_seconds``: for ``unrolled`` its replayed steps and its
backward, for the solvers their iterations), the median cosine per edge, and the child's
peak resident memory (VmHWM). MetaMAE is not in the table: its inner node passes gradients
inside autograd (a latent solver), which the audit refuses (docs/hypergradients.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench_common import peak_rss_mib, spawn, write_results

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "problems" / "mlomae-digits.yaml"


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; its step seconds, audit medians and peak memory."""
    import torch

    from metamask.cli import main
    from metamask.hypergrad.audit import audit_summary, read_audit_rows

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["run", str(SPEC), "--quiet", "--out", str(out)]
        for override in payload["overrides"]:
            args += ["--set", override]
        if main(args) != 0:
            raise RuntimeError(f"run failed: {args}")
        results = json.loads((out / "results.json").read_text())
        rows = read_audit_rows(out / "metrics.jsonl")
    return {
        "config": payload["config"],
        "seconds_per_step": results["train"]["seconds_per_step"],
        "audit": audit_summary(rows),
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    common = [
        f"model.backbone={args.backbone}",
        "train.threads=1",
        f"train.steps={args.steps}",
        "eval.enabled=false",
        "train.log_every=1",
    ]
    configs: dict[str, list[str]] = {"no audit": []}
    for reference in ("unrolled", "cg", "implicit_cg"):
        extra = "" if reference == "unrolled" else f", iterations: {args.iterations}"
        audit = f"{{every: 1, reference: {reference}{extra}}}"
        configs[f"audit {reference}"] = [
            f"graph.nodes.{node}.hypergradient={{type: darts, audit: {audit}}}"
            for node in ("pretrain", "head")
        ]
    rows = []
    for name, overrides in configs.items():
        row = spawn(__file__, {"config": name, "overrides": common + overrides})
        rows.append(row)
        edges = ", ".join(
            f"{edge}: ref {e.get('median_reference_seconds', float('nan')):.2f} s, "
            f"cos {e.get('median_cosine', float('nan')):+.3f}"
            for edge, e in row["audit"].items()
        )
        print(
            f"{name:18s} step {row['seconds_per_step']:.3f} s  peak {row['peak_rss_mib']:.0f} MiB"
            + (f"  {edges}" if edges else ""),
            flush=True,
        )
    if args.out is not None:
        write_results(args, rows)
    base = statistics.median([rows[0]["seconds_per_step"]])
    print(f"(no-audit engine step: {base:.3f} s; measured under load on a shared machine)")


if __name__ == "__main__":
    main()

"""What the hypergradient audit costs: an audit step next to a training step, per reference.

    python benchmarks/audit_cost.py --out benchmarks/results/audit_cost.json   # ~15 min, 1 thread
    python benchmarks/audit_cost.py --steps 4 --backbone tiny                  # a smoke run
    python benchmarks/audit_cost.py --graphs metamae                           # MetaMAE rows only

Each configuration trains for ``--steps`` engine steps (one thread, no probe) in a fresh child
process, without an audit and then audited at every step against each reference:

- ``mlomae``: ``problems/mlomae-digits.yaml`` (``--backbone``), both edges (``pretrain`` and
  ``head``, darts as published) against ``unrolled``, ``cg`` and ``implicit_cg`` with
  ``--iterations``;
- ``metamae``: ``problems/metamae-basicmotions.yaml`` (``--metamae-backbone``, the spec's own
  ``small`` by default) trained with the ``first_order`` latent solver, audited
  (``latent_solver.audit``) against ``unrolled`` and ``implicit`` (``--iterations`` CG steps).

Reported per configuration: the median wall seconds of an engine step (``seconds_per_step`` of
the run: with an audit every mask step, half of MLO-MAE's engine steps hold one; every MetaMAE
step holds one), the median seconds of one audit's reference per edge (``reference_seconds``:
for ``unrolled`` its replayed steps and its backward, for the solvers their iterations; for a
latent audit the reference solve, the outer loss again and its two backwards), the median
cosine per edge, and the child's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench_common import peak_rss_mib, spawn, write_results

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "problems" / "mlomae-digits.yaml"
METAMAE = ROOT / "problems" / "metamae-basicmotions.yaml"


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; its step seconds, audit medians and peak memory."""
    import torch

    from metamask.cli import main
    from metamask.hypergrad.audit import audit_summary, read_audit_rows

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["run", payload["spec"], "--quiet", "--out", str(out)]
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
    parser.add_argument("--metamae-backbone", default="small")
    parser.add_argument("--graphs", nargs="+", default=["mlomae", "metamae"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    common = [
        "train.threads=1",
        f"train.steps={args.steps}",
        "eval.enabled=false",
        "train.log_every=1",
    ]
    #: name -> (spec, its overrides)
    configs: dict[str, tuple[Path, list[str]]] = {}
    if "mlomae" in args.graphs:
        backbone = [f"model.backbone={args.backbone}"]
        darts = [f"graph.nodes.{n}.hypergradient.type=darts" for n in ("pretrain", "head")]
        configs["mlomae no audit"] = (SPEC, backbone + darts)  # the spec's head is sama: pin darts
        for reference in ("unrolled", "cg", "implicit_cg"):
            extra = "" if reference == "unrolled" else f", iterations: {args.iterations}"
            audit = f"{{every: 1, reference: {reference}{extra}}}"
            configs[f"mlomae audit {reference}"] = (
                SPEC,
                backbone
                + [
                    f"graph.nodes.{node}.hypergradient={{type: darts, audit: {audit}}}"
                    for node in ("pretrain", "head")
                ],
            )
    if "metamae" in args.graphs:
        backbone = [f"model.backbone={args.metamae_backbone}"]
        solver = "graph.nodes.adapt.latent_solver={type: first_order"
        configs["metamae no audit"] = (METAMAE, [*backbone, solver + "}"])
        for reference in ("unrolled", "implicit"):
            extra = "" if reference == "unrolled" else f", iterations: {args.iterations}"
            audit = f", audit: {{every: 1, reference: {reference}{extra}}}}}"
            configs[f"metamae audit {reference}"] = (METAMAE, [*backbone, solver + audit])
    rows = []
    for name, (spec, overrides) in configs.items():
        row = spawn(__file__, {"config": name, "spec": str(spec), "overrides": common + overrides})
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
    bases = [
        f"{r['config']}: {r['seconds_per_step']:.3f} s" for r in rows if "no audit" in r["config"]
    ]
    print(f"(engine steps without an audit: {', '.join(bases)}; measured under load)")


if __name__ == "__main__":
    main()

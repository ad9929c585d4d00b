"""Every edge estimator on MLO-MAE digits, audited against ``unrolled`` while it trains (seeds).

    nice -n 10 python benchmarks/audit_table.py --out benchmarks/results/audit_table  # resumable
    python benchmarks/audit_table.py --out /tmp/audit_table --steps 8 --seeds 0     # a smoke run

For each estimator pair ``P+H`` (``P`` on ``problems/mlomae-digits.yaml``'s ``pretrain``, the
masker's edge, ``H`` on ``head``; a single name: the same on both) and each seed, one run of
``--steps`` engine steps (``--backbone``, one thread, no probe) with both nodes audited
against ``unrolled`` every ``--every`` mask steps (a node that runs ``unrolled`` itself is not
audited). Each finished run is a folder under ``--out`` (``metamask run`` with its own
``results.json``); a run already finished is skipped, so the script resumes where it was
stopped. After each run, ``table.json`` and ``table.md`` under ``--out`` are rewritten from
every finished run: per pair and edge, the cosine with the reference at each audit (mean over
seeds) and the median over training per seed. The ``composed`` edge is the masker's whole
gradient against the exact one-cycle gradient (``unrolled`` on both edges): the audit's joint
row ``pretrain+head->mask`` when both nodes are audited, else the one audited edge's row (the
other edge is ``unrolled`` already).

MetaMAE (its latent solvers) and ``metamae+mask`` (its masker edge) on basicmotions:
``benchmarks/latent_audit_table.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "problems" / "mlomae-digits.yaml"
#: the edge estimators with their options (cg and the solvers with enough iterations to solve)
ESTIMATORS = {
    "darts": "{type: darts}",
    "sama": "{type: sama}",
    "neumann": "{type: neumann, iterations: 5, alpha: 0.1}",
    "cg": "{type: cg, iterations: 20}",
    "implicit_cg": "{type: implicit_cg, iterations: 20}",
    "implicit_neumann": "{type: implicit_neumann, iterations: 5, alpha: 0.1}",
    "unrolled": "{type: unrolled}",
}
#: the pairs run by default: each estimator on both edges, then mixed pairs (pretrain+head)
PAIRS = [
    *(name for name in ESTIMATORS if name != "unrolled"),
    "darts+sama",
    "darts+unrolled",
    "unrolled+darts",
    "neumann+sama",
]
NODES = ("pretrain", "head")


def hypergradient(estimator: str, every: int) -> str:
    """The node's ``hypergradient`` block: the estimator with an unrolled audit (none on
    ``unrolled`` itself, which is the reference)."""
    block = ESTIMATORS[estimator]
    if estimator == "unrolled":
        return block
    return block[:-1] + f", audit: {{every: {every}, reference: unrolled}}}}"


def pair(name: str) -> tuple[str, str]:
    """``P+H`` (or one name for both) as the (pretrain, head) estimators."""
    pretrain, _, head = name.partition("+")
    return pretrain, head or pretrain


def write(path: Path, text: str) -> None:
    """``text`` into ``path`` atomically (a stopped script leaves no half-written file)."""
    from metamask.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write(text.encode()))


def run_one(out: Path, estimator: str, seed: int, args: argparse.Namespace) -> bool:
    """Train one run into ``out`` (skipped when finished); True when it finished."""
    if (out / "results.json").is_file():
        return True
    command = [sys.executable, "-m", "metamask", "run", str(SPEC), "--quiet", "--out", str(out)]
    if (out / "checkpoint.pt").is_file():
        command = [sys.executable, "-m", "metamask", "run", "--resume", str(out), "--quiet"]
    else:
        settings = [
            f"model.backbone={args.backbone}",
            "train.threads=1",
            f"train.steps={args.steps}",
            f"train.checkpoint_every={args.checkpoint_every}",
            "eval.enabled=false",
            "train.log_every=1",
            f"seed={seed}",
        ]
        settings += [
            f"graph.nodes.{node}.hypergradient={hypergradient(name, args.every)}"
            for node, name in zip(NODES, pair(estimator), strict=True)
        ]
        for setting in settings:
            command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        write(out.parent / f"{out.name}.error.txt", done.stderr[-4000:])
        print(f"{out.name}: failed ({done.stderr.strip().splitlines()[-1:]})", flush=True)
        return False
    return True


def table(folder: Path) -> dict[str, Any]:
    """Every finished run's audits: per estimator and edge, cosines by seed and upper step."""
    from metamask.hypergrad.audit import read_audit_rows

    found: dict[str, dict[str, dict[str, Any]]] = {}
    for run in sorted(folder.glob("*-seed*")):
        if not (run / "results.json").is_file():
            continue
        estimator, seed = run.name.rsplit("-seed", 1)
        audited = [n for n, e in zip(NODES, pair(estimator), strict=True) if e != "unrolled"]
        whole = "+".join(audited) + "->mask"  # the row that has every edge by its reference
        for row in read_audit_rows(run / "metrics.jsonl"):
            if "cosine" not in row:
                continue
            ratio = row.get("norm_ratio", float("nan"))  # absent when the reference is 0
            for name in [row["audit"]] + (["composed"] if row["audit"] == whole else []):
                if name == whole and len(audited) > 1:
                    continue  # listed as `composed` only
                edge = found.setdefault(estimator, {}).setdefault(name, {})
                edge.setdefault(seed, []).append((row["upper_step"], row["cosine"], ratio))
    return found


def markdown(found: dict[str, Any]) -> str:
    """The table: per estimator pair and edge (in :data:`PAIRS` order), median cosine per seed
    and mean cosine per audit."""
    lines = [
        "| estimator | edge | median cosine per seed | median norm ratio "
        "| mean cosine by mask step |",
        "|---|---|---|---|---|",
    ]
    order = {name: i for i, name in enumerate(PAIRS)}
    for estimator in sorted(found, key=lambda name: (order.get(name, len(order)), name)):
        edges = found[estimator]
        for edge, seeds in edges.items():
            medians = [statistics.median(c for _, c, _ in rows) for rows in seeds.values()]
            ratios = [r for rows in seeds.values() for _, _, r in rows if r == r]
            steps: dict[int, list[float]] = {}
            for rows in seeds.values():
                for step, cosine, _ in rows:
                    steps.setdefault(step, []).append(cosine)
            over = ", ".join(f"{s}: {statistics.mean(c):+.2f}" for s, c in sorted(steps.items()))
            lines.append(
                f"| {estimator} | {edge} | {', '.join(f'{m:+.3f}' for m in medians)} "
                f"({len(medians)} seeds) | {statistics.median(ratios) if ratios else 0:.3g} "
                f"| {over} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=PAIRS, help="names or P+H pairs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # seed-major: every estimator has one seed before any has three
        for estimator in args.estimators:
            out = args.out / f"{estimator}-seed{seed}"
            if run_one(out, estimator, seed, args):
                found = table(args.out)
                write(args.out / "table.json", json.dumps(found, indent=1) + "\n")
                write(args.out / "table.md", markdown(found))
                print(f"{out.name}: done", flush=True)


if __name__ == "__main__":
    main()

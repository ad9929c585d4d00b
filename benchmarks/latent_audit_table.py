"""MetaMAE's latent solvers and metamae+mask's masker edge on basicmotions, audited in training.

    nice -n 10 python benchmarks/latent_audit_table.py --out benchmarks/results/latent_audit
    python benchmarks/latent_audit_table.py --out /tmp/latent_audit --steps 8 --seeds 0  # smoke

The sibling of ``benchmarks/audit_table.py`` (MLO-MAE digits) for the MetaMAE rows of
docs/hypergradients.md "on your graph". For each case and seed, one run of ``--steps`` engine
steps (the spec's own backbone unless ``--backbone``, one thread, no probe):

- ``metamae-first_order`` / ``metamae-implicit``: ``problems/metamae-basicmotions.yaml`` trained
  with that latent solver, audited against ``unrolled`` every ``--every`` outer steps
  (``latent_solver: {type: ..., audit: {...}}``: metamask.hypergrad.latent_audit);
- ``metamae+mask-darts``: ``problems/metamae+mask-basicmotions.yaml`` (darts on the masker's
  edge ``reconstruct->mask``), that edge audited against ``unrolled`` every ``--mask-every``
  mask steps.

Each finished run is a folder under ``--out``; a finished run is skipped and a stopped one
resumed from its checkpoint. After each run ``table.json`` and ``table.md`` under ``--out``
are rewritten from every finished run, and the table printed: per case and edge, the median
over training of the cosine, relative error and norm ratio per seed, the lowest cosine of any
audit, and the whole gradient's median cosine (``total_cosine``: direct terms included; latent
audits only). Cosines near 1 are printed as 1 - cosine.
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
METAMAE = ROOT / "problems" / "metamae-basicmotions.yaml"
METAMAE_MASK = ROOT / "problems" / "metamae+mask-basicmotions.yaml"
#: case -> (spec, the setting that trains and audits it; {every} is filled in)
CASES = {
    "metamae-first_order": (
        METAMAE,
        "graph.nodes.adapt.latent_solver="
        "{{type: first_order, audit: {{every: {every}, reference: unrolled}}}}",
    ),
    "metamae-implicit": (
        METAMAE,
        "graph.nodes.adapt.latent_solver="
        "{{type: implicit, audit: {{every: {every}, reference: unrolled}}}}",
    ),
    "metamae+mask-darts": (
        METAMAE_MASK,
        "graph.nodes.reconstruct.hypergradient="
        "{{type: darts, audit: {{every: {mask_every}, reference: unrolled}}}}",
    ),
}


def run_one(out: Path, case: str, seed: int, args: argparse.Namespace) -> bool:
    """Train one run into ``out`` (skipped when finished); True when it finished."""
    if (out / "results.json").is_file():
        return True
    spec, audit = CASES[case]
    command = [sys.executable, "-m", "metamask", "run", str(spec), "--quiet", "--out", str(out)]
    if (out / "checkpoint.pt").is_file():
        command = [sys.executable, "-m", "metamask", "run", "--resume", str(out), "--quiet"]
    else:
        settings = [
            "train.threads=1",
            f"train.steps={args.steps}",
            f"train.checkpoint_every={args.checkpoint_every}",
            "eval.enabled=false",
            "train.log_every=10",
            f"seed={seed}",
            audit.format(every=args.every, mask_every=args.mask_every),
        ]
        if args.backbone:
            settings.append(f"model.backbone={args.backbone}")
        for setting in settings:
            command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        (out.parent / f"{out.name}.error.txt").write_text(done.stderr[-4000:])
        print(f"{out.name}: failed ({done.stderr.strip().splitlines()[-1:]})", flush=True)
        return False
    return True


def table(folder: Path) -> dict[str, Any]:
    """Every finished run's audit rows: per case and edge, by seed, in step order."""
    from metamask.hypergrad.audit import read_audit_rows

    found: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for run in sorted(folder.glob("*-seed*")):
        if not (run / "results.json").is_file():
            continue
        case, seed = run.name.rsplit("-seed", 1)
        for row in read_audit_rows(run / "metrics.jsonl"):
            if "cosine" in row:
                edge = found.setdefault(case, {}).setdefault(row["audit"], {})
                edge.setdefault(seed, []).append(row)
    return found


def _cosine(value: float) -> str:
    return f"1-{1 - value:.1e}" if value > 0.999 else f"{value:+.3f}"


def markdown(found: dict[str, Any]) -> str:
    """The table (one row per case and edge; per-seed values comma-separated)."""
    lines = [
        "| case | edge | audits | median cosine per seed | lowest cosine | median relative "
        "error per seed | median norm ratio | median whole-gradient cosine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, edges in sorted(found.items()):
        for edge, seeds in edges.items():
            rows = [r for seed_rows in seeds.values() for r in seed_rows]

            def median(key: str, seed_rows: list[dict[str, Any]]) -> float:
                return statistics.median(float(r[key]) for r in seed_rows if key in r)

            cosines = ", ".join(_cosine(median("cosine", v)) for v in seeds.values())
            errors = ", ".join(f"{median('relative_error', v):.2g}" for v in seeds.values())
            ratio = median("norm_ratio", rows)
            whole = _cosine(median("total_cosine", rows)) if "total_cosine" in rows[0] else "-"
            lowest = _cosine(min(float(r["cosine"]) for r in rows))
            lines.append(
                f"| {case} | {edge} | {len(rows)} ({len(seeds)} seeds) | {cosines} | {lowest} "
                f"| {errors} | {ratio:.3g} | {whole} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="outer steps between audits")
    parser.add_argument("--mask-every", type=int, default=10, help="mask steps between audits")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--backbone", default=None, help="default: the spec's own (small)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # seed-major: every case has one seed before any has three
        for case in args.cases:
            out = args.out / f"{case}-seed{seed}"
            if run_one(out, case, seed, args):
                found = table(args.out)
                (args.out / "table.json").write_text(json.dumps(found, indent=1) + "\n")
                (args.out / "table.md").write_text(markdown(found))
                print(f"{out.name}: done", flush=True)
    print(markdown(table(args.out)), end="")


if __name__ == "__main__":
    main()

"""Issue 23's long runs: does a downstream-guided masker beat random masks, and with what?

    python examples/masker_long.py --jobs 2         # 2 datasets x 6 arms x 3 seeds x 1000 steps
    python examples/masker_long.py --table-only     # the tables and pictures of what finished
    python examples/masker_long.py --quick          # smoke test: tiny model, 8 steps, seed 0

Arms, on ``controlled_patches`` (the class sits in 8 known patches of 64; the masker's AUROC
says whether it finds them) and ``digits`` (problems/mlomae-digits.yaml's data and budget):

- ``mae``: random masks (problems/mae-controlled_patches.yaml, problems/mae-digits-mlo.yaml);
- ``published``: the published masker settings: ``flat_mlp``, masker lr 1e-3, ``darts`` on
  both of the masker's edges, audited against ``unrolled`` every ``--audit-every`` masker
  steps (the audit counts its upper node's steps: 50 masker steps are 100 engine steps);
- ``frozen``: the control, the published masker held at its initialisation (masker lr 1e-12,
  ``darts``): masks from an untrained masking network. (``first_order`` on the pretrain edge,
  the issue's "no signal" control, is refused by the graph: no gradient would reach the
  masker, so the masker would stay where it starts: this arm, without the refusal);
- ``token-exact``: the per-token ``token_mlp`` masker (hidden 64), masker lr 1e-3,
  ``unrolled`` (exact) on both edges: the one lever whose sign held across seeds in the first
  screen (docs/results.md §7);
- ``token-alive``: ``token-exact`` with the keep-alive options of the screen's ``alive``
  variant: ``keep_mean`` (each image's mean masking probability held at the mask ratio) and
  the ``normalised`` weighting. On digits ``token-exact`` pushed every probability to 0 and
  the probability-weighted loss vanished; ``keep_mean`` makes that collapse impossible;
- ``token-frozen``: ``token-alive``'s masker (and weighting) held at its initialisation (masker
  lr 1e-12, ``darts``): the control that tells what ``token-alive`` gains by training its
  masker from what it gains by its masker's form (per-token, mean-matched, normalised).

Every arm pretrains the MAE at the shipped lr 1e-3 (warm-up 20, cosine), so that only the
masking differs (the published MAE lr 1e-4 is problems/mlomae-*-published.yaml's). Each run
reports the downstream probe and fine-tune (test split), the masker's measures at
initialisation and after training (:mod:`metamask.experiments.masker_measures`: auroc on the
controlled task, entropy, image information, overlap, mean p, saturation), the audit's cosine
over training and its median per edge, seconds per engine step and the peak resident memory
of the run's own process.

Each run is trained in a child process (``--one``), in its own run folder under
``--out/runs/<dataset>-<arm>-seed<k>/``, and leaves ``long.json`` there. A stopped
experiment trains only what is missing when started again: a finished run is read back, a
stopped one resumes from its checkpoint. Runs go seed by seed, so a partial experiment has
whole seeds. Writes ``table.json``, ``table.md``, ``learned_maps.png`` (controlled task)
and ``audit_cosines.png`` under ``--out`` (default ``results/masker_long``).
"""

from __future__ import annotations

import argparse
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec, load_spec
from metamask.errors import MetamaskError
from metamask.experiments import finished_results, spec_as_json, write_text
from metamask.experiments.finished import finished_or_run
from metamask.hypergrad.audit import read_audit_rows
from metamask.resume import CHECKPOINT_NAME

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = ROOT / "problems"
#: dataset -> (its MLO-MAE spec, its MAE baseline spec)
DATASETS: dict[str, tuple[str, str]] = {
    "controlled_patches": ("mlomae-controlled_patches.yaml", "mae-controlled_patches.yaml"),
    "digits": ("mlomae-digits.yaml", "mae-digits-mlo.yaml"),
}
MASKER = "graph.nodes.pretrain.masker"
EDGES = ("pretrain", "head")  # the masker's two edges: their nodes' hypergradient estimators
MASKER_LR = ["graph.nodes.mask.optimizer.lr=1e-3"]
TOKEN = [f"{MASKER}.type=token_mlp", f"{MASKER}.hidden=64"]
ALIVE = [f"{MASKER}.keep_mean=true", f"{MASKER}.weighting=normalised"]
FROZEN_LR = "graph.nodes.mask.optimizer.lr=1e-12"  # the masker stays where it starts


def estimators(name: str) -> list[str]:
    return [f"graph.nodes.{node}.hypergradient.type={name}" for node in EDGES]


#: arm -> (which spec: "mae" or "mlomae", its overrides, whether its edges are audited)
ARMS: dict[str, tuple[str, list[str], bool]] = {
    "mae": ("mae", [], False),
    "published": ("mlomae", [f"{MASKER}.type=flat_mlp", *MASKER_LR, *estimators("darts")], True),
    "frozen": (
        "mlomae",
        [f"{MASKER}.type=flat_mlp", FROZEN_LR, *estimators("darts")],
        False,
    ),
    "token-exact": ("mlomae", [*TOKEN, *MASKER_LR, *estimators("unrolled")], False),
    "token-alive": ("mlomae", [*TOKEN, *ALIVE, *MASKER_LR, *estimators("unrolled")], False),
    "token-frozen": ("mlomae", [*TOKEN, *ALIVE, FROZEN_LR, *estimators("darts")], False),
}
#: the digits spec's fine-tuning, given to every dataset (controlled_patches has a probe only)
FINETUNE = [
    "eval.finetune.epochs=10",
    "eval.finetune.lr=1e-3",
    "eval.finetune.weight_decay=0.05",
    "eval.finetune.batch_size=64",
    "eval.finetune.warmup_epochs=1",
    "eval.finetune.pool=global",
]
STEPS, AUDIT_EVERY, SEEDS = 1000, 50, (0, 1, 2)
QUICK = ["model.backbone=tiny", "eval.probe.epochs=2", "eval.finetune.epochs=1"]


def spec_for(dataset: str, arm: str, seed: int, args: argparse.Namespace) -> RunSpec:
    """The resolved spec of one run (``--set`` overrides come last)."""
    method, overrides, audited = ARMS[arm]
    mlomae, mae = DATASETS[dataset]
    audit = [
        item
        for node in EDGES
        for item in (
            f"graph.nodes.{node}.hypergradient.audit.every={args.audit_every}",
            f"graph.nodes.{node}.hypergradient.audit.reference=unrolled",
        )
    ]
    sets = [
        f"seed={seed}",
        f"train.steps={args.steps}",
        f"train.threads={args.threads}",
        *FINETUNE,
        *overrides,
        *(audit if audited else []),
        *(QUICK if args.quick else []),
        *args.overrides,
    ]
    return load_spec(PROBLEMS / (mlomae if method == "mlomae" else mae), sets)


def folder_of(dataset: str, arm: str, seed: int, args: argparse.Namespace) -> Path:
    return args.out / "runs" / f"{dataset}-{arm}-seed{seed}"


def _score(value: Any) -> float | None:
    """A probe's or fine-tune's test score from results.json (a number or a dict with 'test')."""
    if isinstance(value, dict):
        value = value.get("test")
    return float(value) if isinstance(value, int | float) else None


def audit_series(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """The run's audit cosines over training, per edge: (engine step, cosine)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in read_audit_rows(folder / "metrics.jsonl"):
        if isinstance(row.get("cosine"), int | float):
            series.setdefault(str(row["audit"]), []).append((int(row["step"]), row["cosine"]))
    return series


def train_one(dataset: str, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train (or resume, or read back) one run in this process and write its ``long.json``."""
    from metamask.experiments.masker_measures import (
        at_checkpoint,
        at_initialisation,
        held_out_inputs,
    )

    spec = spec_for(dataset, arm, seed, args)
    folder = folder_of(dataset, arm, seed, args)
    done = finished_results(folder, spec, "long.json")
    if done is not None:
        return dict(done)
    console = Console(stderr=True)
    learned = ARMS[arm][0] == "mlomae"
    x = held_out_inputs(spec) if learned else None
    initial = at_initialisation(spec, x) if x is not None else None
    started = time.perf_counter()
    results, _ = finished_or_run(spec, folder, str(folder), not args.quiet, console)
    wall = time.perf_counter() - started
    final = at_checkpoint(spec, str(folder), folder / CHECKPOINT_NAME, x) if x is not None else None
    train = results["train"]
    row = {
        "spec": spec_as_json(spec),
        "dataset": dataset,
        "arm": arm,
        "seed": seed,
        "steps": train["steps"],
        "probe": _score(results.get("test")),
        "finetune": _score(results.get("finetune")),
        "metric": results.get("metric"),
        "init": initial,
        "final": final,
        "audit": results.get("audit") or {},
        "audit_series": audit_series(folder),
        "seconds_per_step": train["seconds_per_step"],
        "train_seconds": train["seconds"],
        "wall_seconds": wall,
        # this process's peak resident set (Linux: KiB): the run's model, data and graphs
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    write_json(folder / "long.json", row)
    return row


def planned(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """Every run, seed by seed (a stopped experiment then has whole seeds)."""
    return [(d, a, s) for s in args.seeds for d in args.datasets for a in args.arms]


def run_child(run: tuple[str, str, int], args: argparse.Namespace, console: Console) -> int:
    """Train one run in a child process; returns its exit code."""
    dataset, arm, seed = run
    command = [sys.executable, str(Path(__file__).resolve()), *args.passed, "--one", dataset, arm]
    command += [str(seed)]
    console.print(f"start {dataset}-{arm}-seed{seed}", highlight=False)
    code = subprocess.call(command)
    console.print(f"end   {dataset}-{arm}-seed{seed}: exit {code}", highlight=False)
    return code


# ---------------------------------------------------------------------------------- the tables
def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summary_rows(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (dataset, arm): seeds, means and spreads of every measure."""
    out = []
    for dataset in args.datasets:
        for arm in args.arms:
            mine = [r for r in rows if r["dataset"] == dataset and r["arm"] == arm]
            if not mine:
                continue
            entry: dict[str, Any] = {
                "dataset": dataset,
                "arm": arm,
                "seeds": [r["seed"] for r in mine],
                "probe": [r["probe"] for r in mine if r["probe"] is not None],
                "finetune": [r["finetune"] for r in mine if r["finetune"] is not None],
                "seconds_per_step": [r["seconds_per_step"] for r in mine],
                "peak_mib": [r["peak_mib"] for r in mine],
            }
            for when in ("init", "final"):
                for key in ("auroc", "entropy", "image_info", "overlap", "mean_p", "saturated"):
                    values = [r[when][key] for r in mine if r[when] and key in r[when]]
                    if values:
                        entry[f"{when}_{key}"] = values
            edges: dict[str, list[float]] = {}
            for r in mine:
                for edge, summary in r["audit"].items():
                    if isinstance(summary.get("median_cosine"), int | float):
                        edges.setdefault(edge, []).append(summary["median_cosine"])
            entry["audit_median_cosine"] = edges
            out.append(entry)
    return out


def against_random_masks(
    rows: list[dict[str, Any]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every learned arm − ``mae`` on the same dataset, paired by seed, per downstream score:
    the mean difference, its 95% t interval (none for a single shared seed) and the seeds
    where the arm is ahead (:func:`metamask.experiments.stats.paired`)."""
    from metamask.experiments.stats import paired

    def by_seed(dataset: str, arm: str, score: str) -> dict[int, float]:
        return {
            r["seed"]: r[score]
            for r in rows
            if r["dataset"] == dataset and r["arm"] == arm and r[score] is not None
        }

    out = []
    for dataset in args.datasets:
        for score in ("probe", "finetune"):
            base = by_seed(dataset, "mae", score)
            for arm in args.arms:
                scores = by_seed(dataset, arm, score)
                if arm == "mae" or not set(scores) & set(base):
                    continue
                pair = paired(arm, scores, "mae", base)
                out.append(
                    {
                        "dataset": dataset,
                        "score": score,
                        "arm": arm,
                        "seeds": list(pair.seeds),
                        "differences": list(pair.differences),
                        "mean": pair.mean,
                        "low": pair.low,
                        "high": pair.high,
                        "wins": pair.wins,
                        "verdict": pair.verdict,
                        "sentence": pair.sentence(),
                    }
                )
    return out


def markdown(summary: list[dict[str, Any]], against: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Masker long runs: learned masks against random ones",
        "",
        f"`{command}`",
        "",
        "Mean ± sd over the seeds listed. probe / finetune: test accuracy. auroc, entropy, "
        "image info (bits per token), overlap, saturated: the masker after training (init: at "
        "initialisation). audit: "
        "median cosine per run with the exact (unrolled) masker gradient, per edge. "
        "s / step: measured under load.",
        "",
        "| dataset | arm | seeds | probe | finetune | auroc init -> final | entropy | image info "
        "| overlap | saturated | audit median cosine | s / step | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in summary:
        auroc = (
            f"{_mean_sd(e['init_auroc'])} -> {_mean_sd(e['final_auroc'])}"
            if "final_auroc" in e
            else "–"
        )
        audits = "; ".join(
            f"{edge} {', '.join(f'{c:+.2f}' for c in cosines)}"
            for edge, cosines in e["audit_median_cosine"].items()
        )
        lines.append(
            f"| {e['dataset']} | {e['arm']} | {','.join(map(str, e['seeds']))} "
            f"| {_mean_sd(e['probe'])} | {_mean_sd(e['finetune'])} | {auroc} "
            f"| {_mean_sd(e.get('final_entropy', []))} | {_mean_sd(e.get('final_image_info', []))} "
            f"| {_mean_sd(e.get('final_overlap', []))} "
            f"| {_mean_sd(e.get('final_saturated', []))} | {audits or '–'} "
            f"| {_mean_sd(e['seconds_per_step'])} | {_mean_sd(e['peak_mib'])} |"
        )
    if against:
        lines += [
            "",
            "Against random masks: arm − mae on the same dataset, paired by seed, in accuracy "
            "points, with the 95% t interval over the seeds both have.",
            "",
            "| dataset | score | arm | seeds | arm − mae | seeds ahead | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for a in against:
            interval = (
                f" [{100 * a['low']:+.1f}, {100 * a['high']:+.1f}]" if a["low"] is not None else ""
            )
            lines.append(
                f"| {a['dataset']} | {a['score']} | {a['arm']} | {','.join(map(str, a['seeds']))} "
                f"| {100 * a['mean']:+.1f}{interval} | {a['wins']}/{len(a['seeds'])} "
                f"| {a['verdict']} |"
            )
    return "\n".join(lines) + "\n"


def pictures(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[Path]:
    """learned_maps.png (the controlled task's maps) and audit_cosines.png, from the rows."""
    from metamask.data.embedded.controlled import informative_map
    from metamask.pictures.masker_runs import audit_cosines, learned_maps

    drawn = []
    controlled = [r for r in rows if r["dataset"] == "controlled_patches" and r["final"]]
    if controlled:
        maps: dict[str, list[tuple[str, Sequence[float], float | None]]] = {}
        for arm in args.arms:
            mine = sorted((r for r in controlled if r["arm"] == arm), key=lambda r: r["seed"])
            if mine:
                first = mine[0]["init"]
                maps[arm] = [(f"init seed {mine[0]['seed']}", first["map"], first.get("auroc"))]
                maps[arm] += [
                    (f"seed {r['seed']}", r["final"]["map"], r["final"].get("auroc")) for r in mine
                ]
        informative = informative_map("controlled_patches")
        title = "mean masking probability\n(test images; red: informative)"
        drawn.append(learned_maps(maps, args.out / "learned_maps.png", list(informative), title))
    lines: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for r in rows:
        for edge, points in r["audit_series"].items():
            label = f"{edge} seed {r['seed']}"
            lines.setdefault(f"{r['dataset']} {r['arm']}", {})[label] = [tuple(p) for p in points]
    audit = audit_cosines(lines, args.out / "audit_cosines.png", "masker gradient vs exact")
    if audit is not None:
        drawn.append(audit)
    return drawn


def tables(args: argparse.Namespace, console: Console) -> int:
    """Read every finished run's long.json, write the tables and pictures; returns how many."""
    rows = []
    for dataset, arm, seed in planned(args):
        folder = folder_of(dataset, arm, seed, args)
        done = finished_results(folder, spec_for(dataset, arm, seed, args), "long.json")
        if done is not None:
            rows.append(done)
    summary = summary_rows(rows, args)
    command = shlex.join(["python", "examples/masker_long.py", *args.passed])
    against = against_random_masks(rows, args)
    runs = [{k: v for k, v in r.items() if k != "spec"} for r in rows]
    write_json(
        args.out / "table.json",
        {"command": command, "summary": summary, "against_random_masks": against, "runs": runs},
    )
    text = markdown(summary, against, command)
    write_text(args.out / "table.md", text)
    pictures(rows, args)
    console.print(text, highlight=False, markup=False)
    console.print(f"{len(rows)} of {len(planned(args))} runs finished", highlight=False)
    return len(rows)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=None, help="engine steps per run")
    parser.add_argument("--audit-every", type=int, default=None, help="masker steps per audit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model, 8 steps, seed 0")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--table-only", action="store_true", help="train nothing")
    parser.add_argument(
        "--one", nargs=3, metavar=("DATASET", "ARM", "SEED"), help=argparse.SUPPRESS
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    for flag, value, least in (
        ("--steps", args.steps, 2),
        ("--audit-every", args.audit_every, 1),
        ("--threads", args.threads, 1),
        ("--jobs", args.jobs, 1),
    ):
        if value is not None and value < least:
            parser.error(f"{flag}: expected at least {least}, got {value}")
    args.seeds = args.seeds or ([0] if args.quick else list(SEEDS))
    args.steps = args.steps or (8 if args.quick else STEPS)
    args.audit_every = args.audit_every or (2 if args.quick else AUDIT_EVERY)
    args.out = args.out or Path("results") / ("masker_long-quick" if args.quick else "masker_long")
    # what a child gets: the same experiment, without the parent-only flags
    args.passed, skip = [], 0
    for i, item in enumerate(raw):
        if skip:
            skip -= 1
            continue
        if item == "--jobs" or item == "--one":
            skip = 1 if item == "--jobs" else 3
            continue
        if item.startswith("--jobs=") or item == "--table-only":
            continue
        args.passed.append(raw[i])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=True)
    try:  # every spec first: a bad --set stops before anything is trained
        for dataset, arm, seed in planned(args):
            spec_for(dataset, arm, seed, args)
        if args.one is not None:
            dataset, arm, seed = args.one[0], args.one[1], int(args.one[2])
            train_one(dataset, arm, seed, args)
            return 0
    except MetamaskError as exc:
        console.print(f"masker_long: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    if not args.table_only:
        missing = [
            run
            for run in planned(args)
            if finished_results(folder_of(*run, args), spec_for(*run, args), "long.json") is None
        ]
        console.print(f"{len(missing)} of {len(planned(args))} runs to train", highlight=False)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            codes = list(pool.map(lambda run: run_child(run, args, console), missing))
        failed = [run for run, code in zip(missing, codes, strict=True) if code != 0]
        if failed:
            console.print(f"masker_long: {len(failed)} runs failed: {failed}", highlight=False)
    tables(args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())

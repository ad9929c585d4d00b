"""Experiment 1: MLO-MAE vs MAE on digits and synthetic_wafers, with and without augmentation.

    python examples/mlomae_vs_mae.py --jobs 2                 # everything: seeds 0 1 2
    python examples/mlomae_vs_mae.py --datasets digits --seeds 0
    python examples/mlomae_vs_mae.py --quick                  # smoke test: tiny model, 3 steps

MLO-MAE's masker masks the ``r L`` most probable tokens of an input: a deterministic choice. With
no augmentation an image is the same input at every epoch, so it gets (nearly) the same mask at
every epoch and the encoder never learns from the rest of it. The published code trains on
random crops and flips (``data.augment``, docs/datasets.md). This experiment asks whether
augmentation closes MLO-MAE's gap to MAE.

Each cell is one dataset x condition x method, at ``--seeds``, with one budget (``--steps``)
for every run:

- ``plain``: ``problems/mlomae-<dataset>.yaml`` and its MAE baseline
  ``problems/mae-<dataset>-mlo.yaml`` (the same data, model, pretraining optimizer, budget and
  evaluation; random masks, no upper levels; its node has the same name, so it draws the very
  batches MLO-MAE's pretraining draws);
- ``aug``: the ``-aug`` versions of both (digits: random crop with 4 pixels of zero padding;
  synthetic_wafers: the same and horizontal flips). Every level of MLO-MAE sees augmented
  views, as published; the probe and the fine-tuning never do.

Each run is evaluated by the spec's linear probe and full fine-tuning (both selected on
validation, test reported once). Runs use one CPU thread unless ``--threads`` says otherwise;
``--jobs N`` trains N runs side by side, each in its own process (the results do not depend on
it: each run is seeded by its spec alone). Planning, reading back, resuming and running side by
side are :mod:`metamask.experiments`' (as ``metamask compare``); the cells, gaps, table and
plot are this experiment's own.

Writes under ``--out`` (default ``results/mlomae_vs_mae``; ``--quick``:
``results/mlomae_vs_mae-quick``): ``table.json`` (every run's row: scores, budget, wall time;
each cell's mean ± std and per-seed values; MLO-MAE − MAE per seed, paired), ``table.md`` and
``mlomae_vs_mae.png`` (bars with error bars over seeds, each seed a dot), and ``runs/`` (each run's
folder, with its results.json, metrics.jsonl and pictures; masks.png for MLO-MAE). Rerun the
same command to continue after a stop: finished runs are read back, not trained again, and a
run stopped by Ctrl-C or SIGTERM resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec, spec_to_dict
from metamask.errors import MetamaskError
from metamask.experiments import spec_digest
from metamask.experiments.planning import Arm, Planned
from metamask.experiments.planning import plan as plan_runs
from metamask.experiments.running import Finished, carry_out
from metamask.experiments.tables import stat, write_text
from metamask.pictures.figures import save_figure

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
DATASETS = ("digits", "synthetic_wafers")
CONDITIONS = ("plain", "aug")
METHODS = ("mae", "mlomae")
LABELS = {"mae": "MAE", "mlomae": "MLO-MAE", "plain": "no augmentation", "aug": "augmentation"}
#: the budget (engine steps of batch 32): the specs' own, that of docs/mlomae.md's digits table.
#: Estimated on one thread: training 12 x 400 x (0.1 + 0.5) s, evaluation (probe + 10 epochs of
#: fine-tuning) about 75 s a run: about 80 CPU-minutes, 40 minutes with --jobs 2 on 2 cores
STEPS = 400
#: --quick: the tiny backbone, 3 steps, one seed, one probe and one fine-tuning epoch
QUICK = ["model.backbone=tiny", "eval.probe.epochs=2", "eval.finetune.epochs=1"]


def spec_file(dataset: str, condition: str, method: str) -> Path:
    """``problems/mlomae-<dataset>[-aug].yaml`` or its MAE baseline."""
    name = f"mlomae-{dataset}" if method == "mlomae" else f"mae-{dataset}-mlo"
    return PROBLEMS / f"{name}{'-aug' if condition == 'aug' else ''}.yaml"


def cell_of(run: Planned) -> tuple[str, str, str]:
    """(dataset, condition, method) of a planned run: its arm's label ``d/c/m``."""
    dataset, condition, method = run.arm.label.split("/")
    return dataset, condition, method


def folder(out: Path, arm: Arm, seed: int, spec: RunSpec) -> Path:
    """``OUT/runs/<dataset>/<condition>/<method>-seed<N>``."""
    dataset, condition, method = arm.label.split("/")
    return out / "runs" / dataset / condition / f"{method}-seed{seed}"


def plan(
    datasets: Sequence[str],
    conditions: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    extra: Sequence[str],
    out: Path = Path("results/mlomae_vs_mae"),
    jobs: int = 1,
) -> list[Planned]:
    """Every run as a comparison's plan (:mod:`metamask.experiments.planning`): one arm per
    dataset x condition x method, seed-major (MAE and MLO-MAE of a seed run side by side);
    the spec file, then ``extra`` (``--set``, ``--quick``, threads), the budget, the seed."""
    arms = [
        Arm(f"{d}/{c}/{m}", spec_file(d, c, m))
        for d in datasets
        for c in conditions
        for m in methods
    ]
    return plan_runs(arms, seeds, out, [*extra, f"train.steps={steps}"], jobs, folder=folder)


def row_of(item: Finished) -> dict[str, Any]:
    """One finished run's row of table.json."""
    p, results = item.run, item.results
    dataset, condition, method = cell_of(p)
    train, tuned = results["train"], results["finetune"] or {}
    return {
        "dataset": dataset,
        "condition": condition,
        "method": method,
        "seed": p.seed,
        "spec": str(p.arm.source.relative_to(PROBLEMS.parent)),
        "run": spec_digest(p.spec),
        "steps": train["steps"],
        "batch_size": p.spec.data.batch_size,
        "augment": spec_to_dict(p.spec)["data"]["augment"],
        "metric": results["metric"],
        "probe_test": results["test"],
        "probe_val": results["val"],
        "finetune_test": tuned.get("test"),
        "finetune_val": tuned.get("val"),
        # this call's wall time (data, build, training, probe, fine-tuning, pictures); a run read
        # back reports the time of reading it, so its training time is in train_seconds
        "wall_seconds": item.wall_seconds,
        "read_back": item.read_back,
        "train_seconds": train["seconds"],
        "seconds_per_step": train["seconds_per_step"],
        "probe_seconds": results.get("probe_seconds"),
        "finetune_seconds": tuned.get("seconds"),
        "threads": p.spec.train.threads,
        "folder": str(p.folder),
    }


SCORES = ("finetune_test", "probe_test")


def summarize(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each cell's mean ± std and per-seed values, and MLO-MAE − MAE per dataset and condition,
    paired by seed (both runs of a seed draw the same pretraining batches)."""
    cells, gaps = [], []
    keys = dict.fromkeys((r["dataset"], r["condition"]) for r in rows)
    for dataset, condition in keys:
        mine = [r for r in rows if (r["dataset"], r["condition"]) == (dataset, condition)]
        by_method = {m: {r["seed"]: r for r in mine if r["method"] == m} for m in METHODS}
        for method, runs in by_method.items():
            if not runs:
                continue
            done = [runs[s] for s in sorted(runs)]
            cell = {"dataset": dataset, "condition": condition, "method": method}
            cell |= {"metric": done[0]["metric"], "seeds": [r["seed"] for r in done]}
            for score in SCORES:
                values = [r[score] for r in done if r[score] is not None]
                if values:
                    cell[score] = stat(values)
            cell["steps"] = done[0]["steps"]
            cell["train_seconds"] = stat([r["train_seconds"] for r in done])
            cell["seconds_per_step"] = stat([r["seconds_per_step"] for r in done])
            cells.append(cell)
        paired = sorted(set(by_method["mae"]) & set(by_method["mlomae"]))
        if paired:
            gap: dict[str, Any] = {"dataset": dataset, "condition": condition, "seeds": paired}
            for score in SCORES:
                diffs = [
                    by_method["mlomae"][s][score] - by_method["mae"][s][score]
                    for s in paired
                    if by_method["mlomae"][s][score] is not None
                    and by_method["mae"][s][score] is not None
                ]
                if diffs:
                    gap[score] = stat(diffs)
            gaps.append(gap)
    return {"cells": cells, "gaps": gaps}


def _pm(stat: dict[str, Any] | None, scale: float = 100.0) -> str:
    if not stat:
        return "-"
    return f"{scale * stat['mean']:.1f} ± {scale * stat['std']:.1f}"


def _seeds(stat: dict[str, Any] | None, scale: float = 100.0) -> str:
    return ", ".join(f"{scale * v:.1f}" for v in stat["values"]) if stat else "-"


def write_markdown(path: Path, summary: dict[str, Any], command: str, wall: float) -> None:
    cells, gaps = summary["cells"], summary["gaps"]
    lines = [
        "# MLO-MAE vs MAE, with and without augmentation",
        "",
        f"`{command}`",
        "",
        "Test score (%, the dataset's metric) at the epoch selected on validation: full "
        "fine-tuning and linear probe, mean ± std over seeds, then each seed's value (seed "
        "order). Budget: engine steps x batch size of pretraining (MLO-MAE's upper levels "
        f"step as its graph says). Wall time of this invocation: {wall / 60:.1f} min.",
        "",
        "| dataset | condition | method | metric | steps | fine-tune | per seed | probe | "
        "per seed | train s/run | s/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in cells:
        lines.append(
            f"| {c['dataset']} | {LABELS[c['condition']]} | {LABELS[c['method']]} | "
            f"{c['metric']} | {c['steps']} | {_pm(c.get('finetune_test'))} | "
            f"{_seeds(c.get('finetune_test'))} | {_pm(c.get('probe_test'))} | "
            f"{_seeds(c.get('probe_test'))} | {c['train_seconds']['mean']:.0f} | "
            f"{c['seconds_per_step']['mean']:.3f} |"
        )
    if gaps:
        lines += [
            "",
            "MLO-MAE − MAE, paired by seed (points of the metric, mean ± std of the per-seed "
            "differences):",
            "",
            "| dataset | condition | seeds | fine-tune gap | per seed | probe gap | per seed |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for g in gaps:
            lines.append(
                f"| {g['dataset']} | {LABELS[g['condition']]} | {len(g['seeds'])} | "
                f"{_pm(g.get('finetune_test'))} | {_seeds(g.get('finetune_test'))} | "
                f"{_pm(g.get('probe_test'))} | {_seeds(g.get('probe_test'))} |"
            )
    text = "\n".join(lines) + "\n"
    write_text(path, text)


def draw(path: Path, summary: dict[str, Any]) -> Path | None:
    """Grouped bars: per dataset (columns) and score (rows), conditions on the x axis, MAE and
    MLO-MAE side by side; error bars = std over seeds, each seed a dot."""
    cells = summary["cells"]
    if not cells:
        return None
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    scores = [s for s in SCORES if any(s in c for c in cells)]
    figure, axes = plt.subplots(
        len(scores),
        len(datasets),
        figsize=(4.2 * len(datasets), 3.4 * len(scores)),
        layout="constrained",
        squeeze=False,
    )
    width, colours = 0.38, {"mae": "tab:blue", "mlomae": "tab:orange"}
    for col, dataset in enumerate(datasets):
        conditions = [k for k in CONDITIONS if any(c["condition"] == k for c in cells)]
        for row, score in enumerate(scores):
            ax = axes[row][col]
            for m, method in enumerate(METHODS):
                for x, condition in enumerate(conditions):
                    cell = next(
                        (
                            c
                            for c in cells
                            if (c["dataset"], c["condition"], c["method"])
                            == (dataset, condition, method)
                        ),
                        None,
                    )
                    if cell is None or score not in cell:
                        continue
                    stat, at = cell[score], x + (m - 0.5) * width
                    label = LABELS[method] if x == 0 else None
                    ax.bar(
                        at,
                        stat["mean"],
                        width,
                        yerr=stat["std"],
                        capsize=4,
                        color=colours[method],
                        alpha=0.8,
                        label=label,
                    )
                    ax.scatter(
                        [at] * len(stat["values"]), stat["values"], s=10, color="black", zorder=3
                    )
            ax.set_xticks(range(len(conditions)), [LABELS[k] for k in conditions])
            metric = next(c["metric"] for c in cells if c["dataset"] == dataset)
            kind = "fine-tune" if score == "finetune_test" else "linear probe"
            ax.set_ylabel(f"{kind}: test {metric}")
            steps = next(c["steps"] for c in cells if c["dataset"] == dataset)
            ax.set_title(f"{dataset} ({steps} steps)")
            ax.grid(axis="y", alpha=0.3)
            # the axis starts near the lowest score, not at 0: the gaps are a few points
            mine = [c[score] for c in cells if c["dataset"] == dataset and score in c]
            low = min(min(m["values"]) for m in mine) if mine else 0.0
            high = max(max(m["values"] + [m["mean"] + m["std"]]) for m in mine) if mine else 1.0
            bottom = max(0.0, low - 0.5 * (high - low) - 0.02)
            ax.set_ylim(bottom, high + 0.35 * (high - bottom))
            ax.legend(fontsize=8, loc="upper left", ncols=2)
    figure.suptitle(
        "MLO-MAE vs MAE: mean ± std over seeds (dots: seeds; the axes do not start at 0)",
        fontsize=10,
    )
    return save_figure(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    parser.add_argument("--steps", type=int, default=None, help=f"train.steps (default {STEPS})")
    parser.add_argument("--threads", type=int, default=1, help="train.threads of every run")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny model, 3 steps, seed 0"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs side by side, each in its own process"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    steps = args.steps if args.steps is not None else (3 if args.quick else STEPS)
    if steps < 1 or args.threads < 0 or args.jobs < 1:
        parser.error("--steps and --jobs must be >= 1, --threads >= 0")
    default_out = "results/mlomae_vs_mae-quick" if args.quick else "results/mlomae_vs_mae"
    out = args.out or Path(default_out)
    extra = [*(QUICK if args.quick else []), f"train.threads={args.threads}", *args.overrides]
    command = shlex.join(["python", "examples/mlomae_vs_mae.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    try:
        runs = plan(args.datasets, args.conditions, args.methods, seeds, steps, extra, out,
                    args.jobs)  # fmt: skip
        done: dict[int, dict[str, Any]] = {}
        rows: list[dict[str, Any]] = []
        for i, item in carry_out(runs, args.jobs, not args.quiet, console):
            done[i] = row_of(item)
            rows = [done[k] for k in sorted(done)]  # in plan order, whichever finished first
            summary = summarize(rows)
            wall = time.perf_counter() - started
            table = {"command": command, "steps": steps, "seeds": seeds, "wall_seconds": wall}
            write_json(out / "table.json", {**table, **summary, "runs": rows})
            write_markdown(out / "table.md", summary, command, wall)
        picture = draw(out / "mlomae_vs_mae.png", summarize(rows))
    except MetamaskError as exc:
        console.print(f"mlomae_vs_mae: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    console.print((out / "table.md").read_text(), highlight=False, soft_wrap=True)
    console.print(
        f"wrote {out / 'table.json'}, {out / 'table.md'}" + (f", {picture}" if picture else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

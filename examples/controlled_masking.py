"""Experiment 2: does a learned masker concentrate where the right mask is known, and by when?

    python examples/controlled_masking.py                  # seeds 0 1 2, budgets 50 100 200
    python examples/controlled_masking.py --seeds 0 --budgets 100
    python examples/controlled_masking.py --quick          # smoke test: tiny model, 4 steps

The data sets (docs/datasets.md) write the class only in a known set of tokens, every other
token being noise of the same mean and variance: ``controlled_patches`` (3 x 32 x 32 images,
8 informative patches of 64) and ``controlled_signal`` (2 x 128 signals, 4 informative
segments of 16); ``metamask.data.embedded.controlled.informative_map`` is the ground truth.
MLO-MAE (``problems/mlomae-controlled_patches.yaml``) runs on the images, metamae+mask
(``problems/metamae+mask-controlled_signal.yaml``) on the signals, each at every budget
(``train.steps``: a run of its own, with its own schedule) and seed.

After each run, the masker scores the test split's inputs (eval mode, no gradients), and:

- ``auroc``: per image, the chance that an informative token's masking probability exceeds a
  noise token's (ties count half), averaged over images. 0.5: no concentration; above 0.5:
  the masker masks the informative tokens first; below: it keeps them visible.
- ``ratio``: mean probability on informative tokens / mean probability on noise tokens.
- ``masked_informative``, ``masked_noise``: the share of informative (noise) tokens the chosen
  top-probability masks hide; random masks hide ``mask_ratio`` of both.

Both maskers are trained by the ``mask`` node to lower the head's loss on held-out labelled
data (split B), through pretraining. Noise tokens are unpredictable; the informative ones are
the only tokens a masked auto-encoder can reconstruct (from the class that the visible
informative tokens reveal). So the masker could learn to mask the informative tokens (the
reconstruction that teaches the class) or to keep them visible (the encoder always sees the
class). "Concentrates where it should" means here: ``auroc`` away from 0.5, the same side at
every seed; which side is what the table says, not presumed.

Writes under ``--out`` (default ``results/controlled_masking``; ``--quick``:
``results/controlled_masking-quick``): ``table.json`` (every run's row: the measures, the
linear probe's test accuracy, budget, wall time; each method x budget's mean ± std),
``table.md``, ``maps_<method>.png`` (the mean masking probability over test inputs and seeds,
one panel per budget, informative tokens outlined), ``concentration.png`` (auroc and the masked
shares against the budget, each seed a dot) and ``runs/`` (each run's folder: results.json,
metrics.jsonl with the masker's diversity, masks.png, mask_diversity.png). Finished runs are
read back, not trained again, when the command is rerun. Planning and running (``--jobs``
side by side) are :mod:`metamask.experiments`' (as ``metamask compare``); the measures, table
and pictures are this experiment's own.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec
from metamask.data.embedded.controlled import informative_map
from metamask.errors import MetamaskError
from metamask.experiments import finished_results, spec_as_json
from metamask.experiments.planning import Arm, Planned
from metamask.experiments.planning import plan as plan_runs
from metamask.experiments.running import carry_out
from metamask.experiments.stats import mean_std
from metamask.experiments.tables import write_text
from metamask.mask_diversity import masking_source, probabilities_and_masks
from metamask.pictures.figures import save_figure
from metamask.run import run_spec
from metamask.spec_data import load_pretrain_data

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
#: method -> its spec file (the dataset is the spec's)
METHODS = {
    "mlomae": "mlomae-controlled_patches.yaml",
    "metamae+mask": "metamae+mask-controlled_signal.yaml",
}
BUDGETS = (50, 100, 200)
SEEDS = (0, 1, 2)
QUICK = ["model.backbone=tiny", "eval.probe.epochs=2"]  # with budget 4 and seed 0


def auroc(prob: np.ndarray, informative: np.ndarray) -> float:
    """Mean over rows of P(p[informative] > p[noise]) (ties half) for probabilities (N, L)."""
    pos, neg = prob[:, informative], prob[:, ~informative]
    greater = (pos[:, :, None] > neg[:, None, :]).mean(axis=(1, 2))
    ties = (pos[:, :, None] == neg[:, None, :]).mean(axis=(1, 2))
    return float((greater + 0.5 * ties).mean())


def concentration(prob: np.ndarray, mask: np.ndarray, informative: np.ndarray) -> dict[str, float]:
    """This script's measures (its docstring) of probabilities and masks (N, L) against the
    informative tokens (L,)."""
    return {
        "auroc": auroc(prob, informative),
        "ratio": float(prob[:, informative].mean() / prob[:, ~informative].mean()),
        "masked_informative": float(mask[:, informative].mean()),
        "masked_noise": float(mask[:, ~informative].mean()),
    }


def folder(out: Path, arm: Arm, seed: int, spec: RunSpec) -> Path:
    """``OUT/runs/<method>-<budget>steps-seed<N>``."""
    method, budget = arm.label.split("/")
    return out / "runs" / f"{method}-{budget}steps-seed{seed}"


def plan(args: argparse.Namespace) -> list[Planned]:
    """Every method x budget x seed, as a comparison's plan (each spec validated before
    anything is trained), in the order method, budget, seed."""
    common = [f"train.threads={args.threads}", *(QUICK if args.quick else []), *args.overrides]
    arms = [
        Arm(f"{method}/{budget}", PROBLEMS / METHODS[method], (f"train.steps={budget}",))
        for method in args.methods
        for budget in args.budgets
    ]
    runs = plan_runs(arms, args.seeds, args.out, common, args.jobs, folder=folder)
    order = {arm.label: i for i, arm in enumerate(arms)}
    return sorted(runs, key=lambda r: (order[r.arm.label], args.seeds.index(r.seed)))


def measured(run: Planned, progress: bool, console: Console) -> tuple[dict[str, Any], bool]:
    """Train and probe ``run`` into its folder, then measure its masker on the test split;
    a finished run of the same spec (its concentration.json) is read back instead."""
    spec, out = run.spec, run.folder
    done = out / "concentration.json"
    finished = finished_results(out, spec, done.name)
    if finished is not None:
        return dict(finished), True
    started = time.perf_counter()
    result = run_spec(spec, out, source=str(out), progress=progress, console=console)
    wall = time.perf_counter() - started
    source = masking_source(result.graph)
    assert source is not None, f"{spec.name}: no learned masker"
    test = load_pretrain_data(spec).test
    x = torch.stack([test[i][0] for i in range(len(test))])  # type: ignore[arg-type]
    prob, mask = probabilities_and_masks(result.graph, source.masker, x)
    informative = informative_map(spec.data.dataset)
    row = {
        "spec": spec_as_json(spec),
        "dataset": spec.data.dataset,
        "budget": spec.train.steps,
        "seed": spec.seed,
        **concentration(prob.numpy(), mask.numpy(), informative),
        "mask_ratio": spec.model.mask_ratio,
        "probe_test": result.probe.test if result.probe else None,
        "train_seconds": result.train.seconds,
        "seconds_per_step": result.train.seconds_per_step,
        "wall_seconds": wall,
        "mean_map": prob.numpy().mean(axis=0).tolist(),
    }
    write_json(done, row)
    return row, False


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method x budget: mean and std over seeds of every measure, and the seeds."""
    cells = []
    for method in dict.fromkeys(r["method"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["method"] == method}):
            mine = [r for r in rows if r["method"] == method and r["budget"] == budget]
            cell: dict[str, Any] = {"method": method, "budget": budget}
            cell["seeds"] = [r["seed"] for r in mine]
            keys = ("auroc", "ratio", "masked_informative", "masked_noise", "probe_test")
            for key in (*keys, "wall_seconds"):
                values = [r[key] for r in mine if r[key] is not None]
                if values:
                    cell[key], cell[f"{key}_std"] = mean_std(values)
                    cell[f"{key}_per_seed"] = values
            cells.append(cell)
    return cells


def markdown(cells: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Controlled masking: where the learned masker's probability goes",
        "",
        f"`{command}`",
        "",
        "auroc: P(informative token's p > noise token's p) per test input, averaged "
        "(0.5 = no concentration; > 0.5 masks the informative tokens first, < 0.5 keeps them "
        "visible); ratio: mean p informative / noise; masked inf. / noise: share hidden by the "
        "chosen masks (random masks: the mask ratio for both). Mean ± std over seeds.",
        "",
        "| method | budget (steps) | seeds | auroc | ratio | masked inf. | masked noise "
        "| probe test acc. | wall s / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(c: dict[str, Any], key: str, digits: int = 3) -> str:
        if key not in c:
            return "-"
        return f"{c[key]:.{digits}f} ± {c[key + '_std']:.{digits}f}"

    for c in cells:
        lines.append(
            f"| {c['method']} | {c['budget']} | {' '.join(map(str, c['seeds']))} "
            f"| {cell(c, 'auroc')} | {cell(c, 'ratio')} | {cell(c, 'masked_informative')} "
            f"| {cell(c, 'masked_noise')} | {cell(c, 'probe_test')} "
            f"| {c.get('wall_seconds', 0.0):.0f} |"
        )
    return "\n".join(lines) + "\n"


def draw_maps(rows: list[dict[str, Any]], method: str, path: Path) -> Path:
    """The mean probability map over test inputs and seeds, one panel per budget."""
    mine = [r for r in rows if r["method"] == method]
    budgets = sorted({r["budget"] for r in mine})
    dataset = mine[0]["dataset"]
    informative = informative_map(dataset)
    image = dataset == "controlled_patches"
    figure, axes = plt.subplots(
        1,
        len(budgets),
        figsize=(max(6.0, 3.4 * len(budgets) + 0.6), 3.8 if image else 3.0),
        squeeze=False,
        layout="constrained",
    )
    for ax, budget in zip(axes[0], budgets, strict=True):
        maps = np.array([r["mean_map"] for r in mine if r["budget"] == budget])
        mean = maps.mean(axis=0)
        if image:
            side = math.isqrt(len(mean))
            shown = ax.imshow(mean.reshape(side, side), cmap="magma")
            for k in np.flatnonzero(informative):
                row, col = divmod(int(k), side)
                box = Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, ec="cyan", lw=2)
                ax.add_patch(box)
            ax.set_xticks([])
            ax.set_yticks([])
            figure.colorbar(shown, ax=ax, shrink=0.8)
        else:
            colours = np.where(informative, "tab:orange", "tab:blue")
            ax.bar(np.arange(len(mean)), mean, color=colours, edgecolor="k")
            low, high = float(mean.min()), float(mean.max())
            pad = 0.1 * (high - low) + 1e-6
            ax.set_ylim(low - pad, high + pad)
            ax.set_xlabel("token (orange: informative)")
            ax.set_ylabel("mean masking probability")
        ax.set_title(f"{budget} steps, {len(maps)} seed(s)", fontsize=9)
    where = "cyan squares" if image else "orange bars"
    figure.suptitle(
        f"{method} on {dataset}: mean masking probability\nover test inputs and seeds "
        f"(informative: {where}; each panel its own range)",
        fontsize=9,
    )
    return save_figure(figure, path)


def draw_concentration(cells: list[dict[str, Any]], path: Path) -> Path:
    """auroc, and the masked shares, against the budget; mean ± std, each seed a dot."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for method in dict.fromkeys(c["method"] for c in cells):
        mine = [c for c in cells if c["method"] == method]
        budgets = [c["budget"] for c in mine]
        line = axes[0].errorbar(
            budgets,
            [c["auroc"] for c in mine],
            yerr=[c["auroc_std"] for c in mine],
            marker="o",
            capsize=4,
            label=method,
        )
        colour = line[0].get_color()
        for c in mine:
            seeds = c["auroc_per_seed"]
            axes[0].scatter([c["budget"]] * len(seeds), seeds, color=colour, s=10, alpha=0.5)
        for key, style in (("masked_informative", "-"), ("masked_noise", ":")):
            axes[1].errorbar(
                budgets,
                [c[key] for c in mine],
                yerr=[c[f"{key}_std"] for c in mine],
                marker="o",
                capsize=4,
                ls=style,
                color=colour,
                label=f"{method}: {key.replace('_', ' ')}",
            )
    axes[0].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[0].set_ylabel("auroc of p for 'informative' (0.5: none)")
    axes[1].set_ylabel("share of tokens masked")
    for ax in axes:
        ax.set_xlabel("budget (engine steps)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("does the masking probability concentrate?", fontsize=10)
    axes[1].set_title("which tokens the chosen masks hide", fontsize=10)
    return save_figure(figure, path)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--budgets", type=int, nargs="+", default=None, help="train.steps")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 steps, seed 0")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.budgets is not None and min(args.budgets) < 1:
        parser.error(f"--budgets: expected engine steps >= 1, got {args.budgets}")
    if args.threads < 1:
        parser.error(f"--threads: expected at least 1, got {args.threads}")
    args.seeds = args.seeds or ([0] if args.quick else list(SEEDS))
    args.budgets = args.budgets or ([4] if args.quick else list(BUDGETS))
    name = "controlled_masking-quick" if args.quick else "controlled_masking"
    args.out = args.out or Path("results") / name
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=True)
    command = shlex.join(["python", "examples/controlled_masking.py", *(argv or sys.argv[1:])])
    try:  # every spec first: a bad --set stops before anything is trained
        runs = plan(args)
        rows: list[dict[str, Any]] = [{} for _ in runs]
        for i, item in carry_out(runs, args.jobs, not args.quiet, console, measured):
            row = item.results
            rows[i] = {"method": item.run.arm.label.split("/")[0]} | {
                k: v for k, v in row.items() if k != "spec"
            }
            console.print(
                f"  auroc {row['auroc']:.3f}  ratio {row['ratio']:.3f}  masked informative "
                f"{row['masked_informative']:.3f} / noise {row['masked_noise']:.3f}  "
                f"wall {row['wall_seconds']:.1f} s",
                highlight=False,
            )
    except MetamaskError as exc:
        console.print(f"controlled_masking: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    cells = summarise(rows)
    write_json(args.out / "table.json", {"command": command, "cells": cells, "runs": rows})
    text = markdown(cells, command)
    write_text(args.out / "table.md", text)
    for method in args.methods:
        draw_maps(rows, method, args.out / f"maps_{method}.png")
    draw_concentration(cells, args.out / "concentration.png")
    console.print(text, highlight=False, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

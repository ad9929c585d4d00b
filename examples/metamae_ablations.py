"""The MetaMAE paper's ablations on embedded analogs, each against MAE, with error bars over seeds.

    python examples/metamae_ablations.py                      # all four, seeds 0 1 2, 250 steps
    python examples/metamae_ablations.py --only depth         # one ablation
    python examples/metamae_ablations.py --quick              # smoke test: tiny model, 3 steps

The ablations (docs/methods.md §2.5; ``--only`` picks one):

- ``depth``: decoder depth 0, 2, 4, 6 on satimage (multispectral; the paper: EuroSAT). At depth 0
  a hidden token's prediction is its mask token and position alone, so the query loss gives the
  encoder no gradient (as in the published code); only the task contrast trains it.
- ``nearby``: the nearby-S ratio (``adapt.s_ratio``) 0, 0.1, 0.5, 1.0 on basicmotions (sensor
  time series; the paper: PAMAP2).
- ``lambda``: the contrastive weight (``reconstruct.reg_weight``) 0.01, 0.1, 1.0 on
  synthetic_wafers (the paper: WM-811K wafer maps).
- ``parts``: on basicmotions, full MetaMAE; without latent adaptation (``adapt.inner_steps: 0``:
  z1 = z0, so the contrast compares z0 with itself); without the task contrast (``reg_weight: 0``);
  without both; and plain MAE.

Every run is ``problems/<metamae|mae>-<dataset>.yaml`` with the setting's ``--set``-style
overrides, ``train.steps=--steps`` (one budget for all) and ``seed``; it is evaluated by the
spec's linear probe. MAE (``problems/mae-<dataset>.yaml``, same budget, the spec's own decoder
depth: 4 on the ``small`` backbone) is run for each ablation's dataset and drawn as a reference
line.

Writes under ``--out`` (default ``results/metamae_ablations``; ``--quick``:
``results/metamae_ablations-quick``): ``table.json`` (every run: ablation, dataset, setting,
seed, steps, probe metric, final losses, wall seconds), ``table.md`` (mean ± std per setting),
``<ablation>.png`` (metric against setting, error bars over seeds, MAE's level as a line) and
``runs/`` (each run's folder). Rerun the same command to continue after a stop: finished runs
are read back (a run is identified by its resolved spec, so one that two ablations share is
trained once), and a run stopped by Ctrl-C or SIGTERM resumes from its checkpoint. Planning,
reading back and resuming are :mod:`metamask.experiments`' (as ``metamask compare``); the
ablations, their table and plots are this script's own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec
from metamask.errors import MetamaskError
from metamask.experiments import spec_digest
from metamask.experiments.planning import Arm, Planned
from metamask.experiments.planning import plan as plan_runs
from metamask.experiments.running import Finished, carry_out
from metamask.experiments.stats import mean_std
from metamask.experiments.tables import write_text
from metamask.pictures.figures import save_figure

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
#: the proposed common budget: the whole experiment in about 40 CPU-minutes on one thread
STEPS = 250
QUICK = ["model.backbone=tiny", "eval.probe.epochs=2"]  # --quick: with 3 steps, one seed


@dataclass(frozen=True)
class Setting:
    """One point of an ablation: a method's spec with overrides."""

    label: str
    method: str  # the spec prefix: problems/<method>-<dataset>.yaml
    overrides: tuple[str, ...] = ()
    reference: bool = False  # MAE: drawn as a horizontal line, not as a point


@dataclass(frozen=True)
class Ablation:
    name: str
    dataset: str
    axis: str  # what the settings vary
    settings: tuple[Setting, ...]


MAE = Setting("MAE", "mae", reference=True)  # each ablation's dataset, the same budget
ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation(
            "depth",
            "satimage",
            "decoder depth (blocks)",
            (
                *(Setting(str(d), "metamae", (f"model.decoder.depth={d}",)) for d in (0, 2, 4, 6)),
                MAE,
            ),
        ),
        Ablation(
            "nearby",
            "basicmotions",
            "nearby-S ratio (adapt.s_ratio)",
            (
                *(
                    Setting(str(s), "metamae", (f"graph.nodes.adapt.s_ratio={s}",))
                    for s in (0.0, 0.1, 0.5, 1.0)
                ),
                MAE,
            ),
        ),
        Ablation(
            "lambda",
            "synthetic_wafers",
            "contrastive weight λ (reconstruct.reg_weight)",
            (
                *(
                    Setting(str(w), "metamae", (f"graph.nodes.reconstruct.reg_weight={w}",))
                    for w in (0.01, 0.1, 1.0)
                ),
                MAE,
            ),
        ),
        Ablation(
            "parts",
            "basicmotions",
            "MetaMAE's parts",
            (
                Setting("MetaMAE", "metamae"),
                Setting("no adaptation", "metamae", ("graph.nodes.adapt.inner_steps=0",)),
                Setting("no contrast", "metamae", ("graph.nodes.reconstruct.reg_weight=0",)),
                Setting(
                    "neither",
                    "metamae",
                    ("graph.nodes.adapt.inner_steps=0", "graph.nodes.reconstruct.reg_weight=0"),
                ),
                MAE,
            ),
        ),
    )
}


@dataclass(frozen=True)
class Point:
    """One run of the plan: an ablation's setting at a seed, as a comparison's planned run."""

    ablation: Ablation
    setting: Setting
    run: Planned

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def spec(self) -> RunSpec:
        return self.run.spec

    @property
    def run_id(self) -> str:
        """A digest of the resolved spec: the same spec is the same run, in any ablation."""
        return spec_digest(self.run.spec)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.ablation.name, self.setting.label, self.seed)


def folder(out: Path, arm: Arm, seed: int, spec: RunSpec) -> Path:
    """``OUT/runs/<ablation>/<setting>-seed<N>-<digest, 8 digits>``."""
    ablation, label = arm.label.split("/", 1)
    slug = label.replace(" ", "-")
    return out / "runs" / ablation / f"{slug}-seed{seed}-{spec_digest(spec)[:8]}"


def plan(
    ablations: Sequence[Ablation],
    seeds: Sequence[int],
    steps: int,
    extra: Sequence[str],
    out: Path = Path("results/metamae_ablations"),
) -> list[Point]:
    """Every run of ``ablations`` at ``seeds``, ablation by ablation: the spec file, ``extra``
    (``--set``; ``--quick``), the budget, the setting's overrides, then the seed."""
    settings = {f"{a.name}/{s.label}": (a, s) for a in ablations for s in a.settings}
    arms = [
        Arm(label, PROBLEMS / f"{s.method}-{a.dataset}.yaml", s.overrides)
        for label, (a, s) in settings.items()
    ]
    runs = plan_runs(arms, seeds, out, [*extra, f"train.steps={steps}"], folder=folder)
    points = [Point(*settings[r.arm.label], r) for r in runs]
    order = {label: i for i, label in enumerate(settings)}
    return sorted(points, key=lambda p: (order[p.run.arm.label], list(seeds).index(p.seed)))


def earlier_walls(table: Path) -> dict[str, float]:
    """run id -> the wall seconds an earlier call of this script recorded in ``table``
    (none when it is absent or unreadable: each run's results.json is the record that
    counts, and the table is rewritten from them)."""
    try:
        rows = json.loads(table.read_text()).get("runs", [])
        return {str(r["run"]): float(r["wall_seconds"]) for r in rows}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def row_of(p: Point, item: Finished, earlier: dict[str, float]) -> dict[str, Any]:
    """The table's row of ``p``, from the run that carried it out (maybe another setting's).

    A run read back keeps the wall time the call that trained it recorded (``earlier``), so a
    rerun reproduces the table; without one, its training and probe seconds stand in."""
    results = item.results
    train = results["train"]
    wall = item.wall_seconds
    if item.read_back:
        wall = earlier.get(p.run_id, train["seconds"] + (results.get("probe_seconds") or 0.0))
    return {
        "ablation": p.ablation.name,
        "dataset": p.ablation.dataset,
        "setting": p.setting.label,
        "method": p.setting.method,
        "overrides": list(p.setting.overrides),
        "seed": p.seed,
        "steps": train["steps"],
        "run": p.run_id,
        "metric": results["metric"],
        "test": results["test"],
        "val": results["val"],
        "final": train["final"],  # each node's last logged loss terms
        # the training call's wall time (data, build, training, probe, pictures); a resumed
        # run's earlier legs are in train_seconds
        "wall_seconds": wall,
        "train_seconds": train["seconds"],
        "seconds_per_step": train["seconds_per_step"],
        "probe_seconds": results.get("probe_seconds"),
        "folder": str(item.run.folder),
    }


def summarize(runs: list[Point], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per ablation and setting, of the planned runs with a row in the
    table (an ablation none of whose runs was asked for is left out, even where another one
    shares its runs)."""
    by_key = {(r["ablation"], r["setting"], r["seed"], r["run"]): r for r in rows}
    summary = []
    for name in dict.fromkeys(p.ablation.name for p in runs):
        ablation = ABLATIONS[name]
        for setting in ablation.settings:
            done = [
                by_key[key]
                for p in runs
                if p.ablation.name == name
                and p.setting == setting
                and (key := (*p.key, p.run_id)) in by_key
            ]
            if not done:
                continue
            summary.append(
                {
                    "ablation": name,
                    "dataset": ablation.dataset,
                    "setting": setting.label,
                    "reference": setting.reference,
                    "metric": done[0]["metric"],
                    "seeds": [r["seed"] for r in done],
                    "tests": [r["test"] for r in done],
                    **_mean_std("test", [r["test"] for r in done]),
                    **_mean_std("val", [r["val"] for r in done]),
                    **_mean_std("loss", [_outer_loss(r) for r in done]),
                    "wall_seconds_mean": statistics.fmean(r["wall_seconds"] for r in done),
                }
            )
    return summary


def _mean_std(name: str, values: list[float]) -> dict[str, float]:
    mean, std = mean_std(values)
    return {f"{name}_mean": mean, f"{name}_std": std}


def _outer_loss(row: dict[str, Any]) -> float:
    """The pretraining node's last logged loss (the total: reconstruction + λ·contrast)."""
    return float(row["final"]["reconstruct"]["loss"])


def write_markdown(path: Path, summary: list[dict[str, Any]], command: str, steps: int) -> None:
    lines = [
        "# MetaMAE ablations on embedded analogs",
        "",
        f"`{command}`",
        "",
        f"{steps} steps per run; mean ± std over seeds of the linear probe's test metric "
        "(model selected on validation), its validation metric, the pretraining node's last "
        "logged loss, and the mean wall seconds per run.",
    ]
    for name in dict.fromkeys(r["ablation"] for r in summary):
        rows = [r for r in summary if r["ablation"] == name]
        ablation = ABLATIONS[name]
        lines += [
            "",
            f"## {name}: {ablation.axis} on {ablation.dataset} ({rows[0]['metric']})",
            "",
            "| setting | seeds | test | val | last loss | wall s/run |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            lines.append(
                f"| {r['setting']} | {len(r['seeds'])} | {r['test_mean']:.4f} ± {r['test_std']:.4f}"
                f" | {r['val_mean']:.4f} ± {r['val_std']:.4f}"
                f" | {r['loss_mean']:.4f} ± {r['loss_std']:.4f} | {r['wall_seconds_mean']:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    write_text(path, text)


def draw(path: Path, name: str, summary: list[dict[str, Any]], steps: int) -> Path | None:
    """The ablation's metric against its settings: mean ± std, each seed a dot, MAE a line."""
    rows = [r for r in summary if r["ablation"] == name]
    points = [r for r in rows if not r["reference"] or name == "parts"]
    if not points:
        return None
    ablation = ABLATIONS[name]
    figure, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    xs = list(range(len(points)))
    ax.errorbar(
        xs,
        [r["test_mean"] for r in points],
        yerr=[r["test_std"] for r in points],
        fmt="o-" if name != "parts" else "o",
        capsize=5,
        label="mean ± std over seeds",
    )
    for x, r in zip(xs, points, strict=True):
        ax.scatter([x] * len(r["tests"]), r["tests"], s=12, color="grey", alpha=0.7, zorder=3)
    for r in rows:
        if r["reference"]:
            mean, std = r["test_mean"], r["test_std"]
            ax.axhline(mean, color="tab:red", ls="--", lw=1, label=f"MAE ({mean:.3f} ± {std:.3f})")
            ax.axhspan(mean - std, mean + std, color="tab:red", alpha=0.1)
    ax.set_xticks(xs, [r["setting"] for r in points])
    ax.set_xlabel(ablation.axis)
    ax.set_ylabel(f"linear probe, test {rows[0]['metric']}")
    seeds = max(len(r["seeds"]) for r in rows)
    ax.set_title(f"MetaMAE on {ablation.dataset}: {name} ({steps} steps, seeds: {seeds})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    parser.add_argument("--steps", type=int, default=None, help=f"train.steps (default {STEPS})")
    parser.add_argument("--only", choices=sorted(ABLATIONS), default=None, help="one ablation")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny model, 3 steps, 2 probe epochs"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    args = parser.parse_args(argv)
    console = Console()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    steps = args.steps if args.steps is not None else (3 if args.quick else STEPS)
    if steps < 1:
        parser.error(f"--steps: expected an integer >= 1, got {steps}")
    out = args.out or Path(
        "results/metamae_ablations-quick" if args.quick else "results/metamae_ablations"
    )
    extra = [*(QUICK if args.quick else []), *args.overrides]
    command = shlex.join(["python", "examples/metamae_ablations.py", *(argv or sys.argv[1:])])
    try:
        everything = plan(list(ABLATIONS.values()), seeds, steps, extra, out)  # the summary's
        wanted = [p for p in everything if args.only in (None, p.ablation.name)]
        unique: dict[str, Planned] = {}
        for p in wanted:  # a spec two settings share is trained once, in the first's folder
            unique.setdefault(p.run_id, p.run)
        earlier = earlier_walls(out / "table.json")
        carried = carry_out(list(unique.values()), args.jobs, not args.quiet, console)
        done = {spec_digest(item.run.spec): item for _, item in carried}
        rows = []
        for p in wanted:
            row = row_of(p, done[p.run_id], earlier)
            if done[p.run_id].run is not p.run:
                first = next(q for q in wanted if q.run is done[p.run_id].run)
                row["shared_with"] = f"{first.ablation.name}/{first.setting.label}"
            rows.append(row)
        table = out / "table.json"
        if not wanted:
            return 0
        summary = summarize(everything, rows)
        write_json(table, {"runs": rows, "summary": summary, "command": command})
        write_markdown(out / "table.md", summary, command, steps)
        for name in dict.fromkeys(r["ablation"] for r in summary):
            draw(out / f"{name}.png", name, summary, steps)
    except MetamaskError as exc:
        Console(stderr=True).print(f"[bold red]metamae_ablations: error:[/] {exc}", highlight=False)
        return exc.exit_code  # 2 bad input, 3 non-finite, 130 / 143 interrupted
    console.print(f"written: {out / 'table.json'}, {out / 'table.md'} and the ablations' PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

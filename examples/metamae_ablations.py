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
``runs/`` (each run's folder). Rerun the same command to continue after a stop: runs whose
result is in ``table.json`` are skipped (a run is identified by its resolved spec, so one that
two ablations share is trained once), and a run stopped by Ctrl-C or SIGTERM resumes from
its checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec, load_spec, spec_to_dict
from metamask.errors import MetamaskError, OutputError
from metamask.experiments import finished_or_run, mean_std, write_text
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
class Planned:
    """One run of the plan: an ablation's setting at a seed, as a resolved spec."""

    ablation: Ablation
    setting: Setting
    seed: int
    spec: RunSpec
    source: Path
    run_id: str  # a digest of the resolved spec: the same spec is the same run

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.ablation.name, self.setting.label, self.seed)


def run_id(spec: RunSpec) -> str:
    """A digest of ``spec`` as resolved (every default written out)."""
    text = json.dumps(spec_to_dict(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(
    ablations: Sequence[Ablation], seeds: Sequence[int], steps: int, extra: Sequence[str]
) -> list[Planned]:
    """Every run of ``ablations`` at ``seeds``: the spec file, then the setting's overrides,
    then ``extra`` (``--set``; ``--quick``), then the budget and the seed."""
    runs = []
    for ablation in ablations:
        for setting in ablation.settings:
            source = PROBLEMS / f"{setting.method}-{ablation.dataset}.yaml"
            for seed in seeds:
                overrides = [*setting.overrides, *extra, f"train.steps={steps}", f"seed={seed}"]
                spec = load_spec(source, overrides)
                runs.append(Planned(ablation, setting, seed, spec, source, run_id(spec)))
    return runs


def read_table(path: Path) -> list[dict[str, Any]]:
    """The runs already in ``table.json``; none when it does not exist."""
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text()).get("runs")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise OutputError(
            f"{path}: expected the JSON this script writes ({{'runs': [...]}}), could not read "
            f"it ({exc}); move it away to start afresh"
        ) from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "run" in r for r in rows):
        raise OutputError(f"{path}: 'runs' is not a list of this script's rows")
    return rows


def run_folder(out: Path, p: Planned) -> Path:
    slug = p.setting.label.replace(" ", "-")
    return out / "runs" / p.ablation.name / f"{slug}-seed{p.seed}-{p.run_id[:8]}"


def train_one(p: Planned, folder: Path, progress: bool, console: Console) -> dict[str, Any]:
    """Train and probe one planned run in ``folder`` (resuming its checkpoint); its row."""
    started = time.perf_counter()
    results, _ = finished_or_run(p.spec, folder, str(p.source), progress, console)
    train = results["train"]
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
        # this call's wall time (data, build, training, probe, pictures); a resumed run's
        # earlier legs are in train_seconds
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": train["seconds"],
        "seconds_per_step": train["seconds_per_step"],
        "probe_seconds": results.get("probe_seconds"),
        "folder": str(folder),
    }


def summarize(runs: list[Planned], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        everything = plan(list(ABLATIONS.values()), seeds, steps, extra)  # the summary's runs
        wanted = [p for p in everything if args.only in (None, p.ablation.name)]
        table = out / "table.json"
        rows = read_table(table)
        by_run = {r["run"]: r for r in rows}
        have = {(r["ablation"], r["setting"], r["seed"], r["run"]) for r in rows}
        for i, p in enumerate(wanted, 1):
            if (*p.key, p.run_id) in have:
                continue
            if p.run_id in by_run:  # the same spec in another ablation (MAE, defaults)
                first = by_run[p.run_id]
                row = {**first, "ablation": p.ablation.name, "setting": p.setting.label}
                row["shared_with"] = f"{first['ablation']}/{first['setting']}"
                console.print(
                    f"[{i}/{len(wanted)}] {'/'.join(map(str, p.key))}: {row['shared_with']}'s run"
                )
            else:
                console.print(
                    f"[bold][{i}/{len(wanted)}] {p.ablation.name}[/] {p.setting.label} on "
                    f"{p.ablation.dataset}, seed {p.seed}: {steps} steps"
                )
                row = train_one(p, run_folder(out, p), not args.quiet, console)
                console.print(
                    f"  test {row['metric']} {row['test']:.4f}, {row['wall_seconds']:.1f} s"
                )
                by_run[p.run_id] = row
            rows.append(row)
            have.add((*p.key, p.run_id))
            write_json(table, {"runs": rows})  # after every run: a restart skips it
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

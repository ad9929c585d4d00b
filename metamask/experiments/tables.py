"""A comparison's table: per arm mean ± std and each seed of every score, train seconds; per
arm against the baseline the paired difference with its interval, win count and sentence;
written as ``table.json`` and ``table.md`` and printed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from metamask.checkpoint import atomic_write, write_json
from metamask.errors import ConfigError
from metamask.experiments.running import Finished
from metamask.experiments.scores import run_metric, scale_and_unit, seconds_per_step, train_seconds
from metamask.experiments.stats import LEVEL, METHOD, mean_std, paired


def write_text(path: Path, text: str) -> None:
    """Write a table (markdown) atomically: a stopped script never leaves half a file."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def stat(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` over seeds."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "values": list(values)}


def summarize(
    finished: Sequence[Finished], arms: Sequence[str], baseline: str | None = None
) -> dict[str, Any]:
    """The comparison's table as JSON-ready data: ``arms`` (in order, those with a finished
    run) and ``comparisons`` (each other arm − ``baseline``, default the first arm, per score
    scored by both)."""
    by_arm: dict[str, list[Finished]] = {a: [] for a in arms}
    for item in finished:
        by_arm.setdefault(item.run.arm.label, []).append(item)
    base = baseline or arms[0]
    if base not in by_arm:
        raise ConfigError(f"--baseline {base}: not an arm; the arms are {', '.join(arms)}")
    rows: list[dict[str, Any]] = []
    for arm in arms:
        mine = sorted(by_arm[arm], key=lambda f: f.run.seed)
        if not mine:
            continue
        names = list(dict.fromkeys(k for f in mine for k in f.scores))
        trained = [t for f in mine if (t := train_seconds(f.results)) is not None]
        steps = [s for f in mine if (s := seconds_per_step(f.results)) is not None]
        rows.append(
            {
                "arm": arm,
                "spec": str(mine[0].run.arm.source),
                "overrides": list(mine[0].run.arm.overrides),
                "metric": run_metric(mine[0].results),
                "steps": mine[0].run.spec.train.steps,
                "seeds": [f.run.seed for f in mine],
                "scores": {
                    name: {
                        **stat([f.scores[name] for f in mine if name in f.scores]),
                        "seeds": [f.run.seed for f in mine if name in f.scores],
                    }
                    for name in names
                },
                "train_seconds": stat(trained) if trained else None,
                "seconds_per_step": statistics.median(steps) if steps else None,
                "folders": [str(f.run.folder) for f in mine],
            }
        )
    comparisons = []
    reference = next((r for r in rows if r["arm"] == base), None)
    for row in rows:
        if reference is None or row is reference:
            continue
        for name, score in row["scores"].items():
            theirs = reference["scores"].get(name)
            if theirs is None:
                continue
            mine_by_seed = dict(zip(score["seeds"], score["values"], strict=True))
            base_by_seed = dict(zip(theirs["seeds"], theirs["values"], strict=True))
            if not set(mine_by_seed) & set(base_by_seed):
                continue
            pair = paired(row["arm"], mine_by_seed, base, base_by_seed)
            scale, unit = scale_and_unit(name)
            comparisons.append(
                {
                    "score": name,
                    **asdict(pair),
                    "verdict": pair.verdict,
                    "sentence": f"{name}: {pair.sentence(scale, unit)}",
                }
            )
    return {
        "baseline": base,
        "interval": f"{LEVEL:.0%} {METHOD} interval of the mean paired difference "
        "(Student's t, n-1 degrees of freedom)",
        "arms": rows,
        "comparisons": comparisons,
    }


def _pm(score: dict[str, Any], scale: float, digits: int) -> str:
    return f"{scale * score['mean']:.{digits}f} ± {scale * score['std']:.{digits}f}"


def _each(values: Sequence[float], scale: float, digits: int) -> str:
    return ", ".join(f"{scale * v:.{digits}f}" for v in values)


def _seconds(trained: dict[str, Any] | None) -> str:
    return f"{trained['mean']:.0f}" if trained else "-"


def _digits(scale: float) -> int:
    return 1 if scale == 100.0 else 4


def _interval(c: dict[str, Any], scale: float, digits: int) -> str:
    if c["low"] is None:
        return "no interval (1 seed)"
    return f"[{scale * c['low']:+.{digits}f}, {scale * c['high']:+.{digits}f}]"


def markdown(table: dict[str, Any], title: str = "Comparison", command: str = "") -> str:
    """``table`` (:func:`summarize`) as markdown: the arms, then the paired differences."""
    lines = [f"# {title}", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += [
        "Scores: the probe's test metric (and fine-tuning's, and an audit's numbers where the "
        "runs have them), in points for fractions; mean ± std over seeds, then each seed "
        "(seed order). Train s: mean training wall time of a run.",
        "",
        "| arm | score | metric | steps | seeds | mean ± std | per seed | train s | s/step |",
        "| --- | --- | --- | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for row in table["arms"]:
        for name, score in row["scores"].items():
            scale, _ = scale_and_unit(name)
            d = _digits(scale)
            trained = row["train_seconds"]
            sps = row["seconds_per_step"]
            lines.append(
                f"| {row['arm']} | {name} | {row['metric'] or '-'} | {row['steps']} | "
                f"{' '.join(map(str, score['seeds']))} | {_pm(score, scale, d)} | "
                f"{_each(score['values'], scale, d)} | "
                f"{_seconds(trained)} | {f'{sps:.3f}' if sps else '-'} |"
            )
    if table["comparisons"]:
        lines += [
            "",
            f"Each arm − {table['baseline']}, paired by seed; {table['interval']}:",
            "",
            "| arm | score | seeds | difference | 95% interval | per seed "
            "| ahead / tied / behind |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in table["comparisons"]:
            scale, _ = scale_and_unit(c["score"])
            d = _digits(scale)
            lines.append(
                f"| {c['arm']} | {c['score']} | {len(c['seeds'])} | "
                f"{scale * c['mean']:+.{d}f} | {_interval(c, scale, d)} | "
                f"{', '.join(f'{scale * v:+.{d}f}' for v in c['differences'])} | "
                f"{c['wins']} / {c['ties']} / {c['losses']} |"
            )
        lines += [""] + [f"- {c['sentence']}" for c in table["comparisons"]]
    return "\n".join(lines) + "\n"


def print_table(table: dict[str, Any], console: Console, title: str = "Comparison") -> None:
    """The arms as a rich table, then one sentence per comparison."""
    shown = Table(title=title)
    for column in ("arm", "score", "mean ± std", "per seed", "train s"):
        shown.add_column(column)
    for row in table["arms"]:
        for name, score in row["scores"].items():
            scale, _ = scale_and_unit(name)
            d = _digits(scale)
            trained = row["train_seconds"]
            shown.add_row(
                row["arm"],
                name,
                _pm(score, scale, d),
                _each(score["values"], scale, d),
                _seconds(trained),
            )
    console.print(shown)
    for c in table["comparisons"]:
        console.print(c["sentence"], highlight=False, soft_wrap=True)


def write_tables(out: Path, table: dict[str, Any], extra: dict[str, Any], md: str) -> None:
    """``table.json`` (``extra`` + the table) and ``table.md`` under ``out``."""
    write_json(out / "table.json", {**extra, **table})
    write_text(out / "table.md", md)

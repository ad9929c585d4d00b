"""``compare.png``: each score's arms (mean ± std over seeds, each seed a dot) beside the
paired differences against the baseline with their 95% intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from metamask.experiments.scores import scale_and_unit
from metamask.pictures.figures import save_figure


def draw_comparison(table: dict[str, Any], path: Path) -> Path | None:
    """One row per score: left the arms, right each arm − baseline (None: nothing finished)."""
    arms = table["arms"]
    names = list(dict.fromkeys(n for row in arms for n in row["scores"]))
    if not names:
        return None
    figure, axes = plt.subplots(
        len(names), 2, figsize=(11, 0.6 + 3.2 * len(names)), squeeze=False, layout="constrained"
    )
    for (left, right), name in zip(axes, names, strict=True):
        scale, unit = scale_and_unit(name)
        mine = [row for row in arms if name in row["scores"]]
        xs = range(len(mine))
        for x, row in zip(xs, mine, strict=True):
            score = row["scores"][name]
            left.bar(
                x,
                scale * score["mean"],
                0.6,
                yerr=scale * score["std"],
                capsize=4,
                color="tab:blue",
                alpha=0.6,
            )
            left.scatter(
                [x] * len(score["values"]),
                [scale * v for v in score["values"]],
                s=12,
                color="black",
                zorder=3,
            )
        low = min(scale * v for row in mine for v in row["scores"][name]["values"])
        high = max(scale * v for row in mine for v in row["scores"][name]["values"])
        pad = 0.5 * (high - low) + 1e-3 * max(abs(high), 1.0)
        left.set_ylim(low - pad, high + pad)  # the gaps are small: not from 0
        left.set_xticks(list(xs), [row["arm"] for row in mine], rotation=15, fontsize=8)
        left.set_ylabel(f"{name} ({unit})" if unit else name)
        left.set_title(f"{name}: mean ± std over seeds (dots: seeds; axis not from 0)", fontsize=9)
        left.grid(axis="y", alpha=0.3)
        pairs = [c for c in table["comparisons"] if c["score"] == name]
        for y, c in enumerate(pairs):
            right.scatter(
                [scale * d for d in c["differences"]],
                [y] * len(c["differences"]),
                s=12,
                color="grey",
                zorder=3,
            )
            if c["low"] is not None:
                right.errorbar(
                    scale * c["mean"],
                    y,
                    xerr=[[scale * (c["mean"] - c["low"])], [scale * (c["high"] - c["mean"])]],
                    fmt="o",
                    capsize=5,
                    color="tab:red",
                )
            else:
                right.scatter([scale * c["mean"]], [y], color="tab:red")
        right.axvline(0.0, color="k", lw=0.8, ls="--")
        right.set_yticks(
            list(range(len(pairs))), [f"{c['arm']} − {c['baseline']}" for c in pairs], fontsize=8
        )
        right.set_xlabel(f"paired difference ({unit})" if unit else "paired difference")
        right.set_title(f"{name}: 95% t interval (dots: seeds)", fontsize=9)
        right.grid(axis="x", alpha=0.3)
    return save_figure(figure, path)

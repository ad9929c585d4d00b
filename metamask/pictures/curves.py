"""``losses.png``: every logged term of every node against the engine step, from
``metrics.jsonl`` (one panel per node; the learning rate on its own axis)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from metamask.mask_diversity import DIVERSITY_KEYS
from metamask.pictures.figures import save_figure

#: metrics.jsonl keys that are not terms of a loss (mask diversity: mask_diversity.png)
NOT_TERMS = ("step", "node", "local_step", "time", "lr", *DIVERSITY_KEYS)


def read_metrics(path: Path) -> dict[str, list[dict[str, float]]]:
    """The rows of ``metrics.jsonl`` by node, in file order (a torn last line is skipped)."""
    rows: dict[str, list[dict[str, float]]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "node" in row and "step" in row:
            rows.setdefault(str(row["node"]), []).append(row)
    return rows


def loss_curves(metrics: Path, path: Path, title: str = "") -> Path | None:
    """Draw ``metrics``' terms per node into ``path``; None (nothing written) without rows."""
    rows = read_metrics(metrics) if metrics.is_file() else {}
    if not rows:
        return None
    figure, axes = plt.subplots(
        len(rows), 1, figsize=(7.5, 2.6 * len(rows) + 0.6), squeeze=False, layout="constrained"
    )
    for ax, (node, node_rows) in zip(axes[:, 0], rows.items(), strict=True):
        steps = [row["step"] for row in node_rows]
        terms = [k for k in node_rows[-1] if k not in NOT_TERMS and _number(node_rows[-1][k])]
        positive = True
        for term in terms:
            values = [row.get(term, math.nan) for row in node_rows]
            positive &= all(v > 0 for v in values if _number(v))
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=term)
        if positive and terms:
            ax.set_yscale("log")
        ax.set_title(f"node {node}", fontsize=10)
        ax.set_xlabel("engine step")
        ax.set_ylabel("value" + (" (log scale)" if positive and terms else ""))
        ax.grid(alpha=0.3)
        if "lr" in node_rows[-1]:
            lr_ax = ax.twinx()
            lr_ax.plot(steps, [row.get("lr", math.nan) for row in node_rows], "k:", lw=1)
            lr_ax.set_ylabel("learning rate (dotted)")
        ax.legend(fontsize=8, loc="upper right")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

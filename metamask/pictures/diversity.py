"""``mask_diversity.png``: a learned masker's diversity over training, from ``metrics.jsonl``
(the measures of :mod:`metamask.mask_diversity`, on the masking node's rows)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from metamask.pictures.curves import read_metrics
from metamask.pictures.figures import save_figure

MASK_DIVERSITY = "mask_diversity.png"

_BITS = (
    ("mask_entropy", "probability entropy (bits per token)"),
    ("mask_image_info", "difference between images' maps (bits per token)"),
)
_SHARES = (
    ("mask_repeat", "same mask as in an earlier epoch (share of examples)"),
    ("mask_repeat_overlap", "overlap with the earlier epoch's mask (Dice)"),
    ("mask_image_overlap", "overlap between different images' masks (Dice)"),
)


def diversity_rows(metrics: Path) -> tuple[str, list[dict[str, float]]] | None:
    """The node whose rows of ``metrics`` (metrics.jsonl) carry mask diversity, and those
    rows; None when no row does (no learned masker)."""
    rows = read_metrics(metrics) if metrics.is_file() else {}
    for node, node_rows in rows.items():
        measured = [row for row in node_rows if "mask_entropy" in row]
        if measured:
            return node, measured
    return None


def diversity_curves(metrics: Path, path: Path, title: str = "") -> Path | None:
    """Draw the mask diversity logged in ``metrics`` into ``path``: entropies (bits) above,
    repeat rate and overlaps (0..1) below, against the engine step; None (nothing written)
    when nothing was measured."""
    found = diversity_rows(metrics)
    if found is None:
        return None
    node, rows = found
    steps = [row["step"] for row in rows]
    figure, axes = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True, layout="constrained")
    for ax, keys, label in (
        (axes[0], _BITS, "bits"),
        (axes[1], _SHARES, "share (0 to 1)"),
    ):
        for key, name in keys:
            values = [row.get(key, math.nan) for row in rows]
            marker = "." if len(steps) < 30 else None
            ax.plot(steps, values, marker=marker, label=f"{name} [{key}]")
        ax.set_ylabel(label)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[1].set_xlabel("engine step")
    axes[0].set_title(f"mask diversity of node {node}'s learned masker", fontsize=10)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)

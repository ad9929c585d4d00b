"""``hypergradient_audit.png``: each audited edge's cosine and norm ratio against the engine
step, from the audit rows of ``metrics.jsonl`` (metamask.hypergrad.audit)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from metamask.hypergrad.audit import read_audit_rows
from metamask.pictures.figures import save_figure

AUDIT_PICTURE = "hypergradient_audit.png"


def audit_picture(metrics: Path, path: Path, title: str = "") -> Path | None:
    """Draw the audits of ``metrics`` into ``path``; None (nothing written) without any."""
    rows = [row for row in read_audit_rows(metrics) if "cosine" in row]
    if not rows:
        return None
    edges: dict[str, list[dict[str, float]]] = {}
    for row in rows:
        edges.setdefault(str(row["audit"]), []).append(row)
    figure, (cos_ax, ratio_ax) = plt.subplots(
        2, 1, figsize=(7.5, 5.6), sharex=True, layout="constrained"
    )
    for edge, edge_rows in edges.items():
        steps = [row["step"] for row in edge_rows]
        label = f"{edge} (vs {edge_rows[-1].get('reference')})"
        marker = "." if len(steps) < 30 else None
        cos_ax.plot(steps, [row["cosine"] for row in edge_rows], marker=marker, label=label)
        ratios = [row.get("norm_ratio", math.nan) for row in edge_rows]  # nan: zero reference
        ratio_ax.plot(steps, ratios, marker=marker, label=label)
    cos_ax.axhline(0.0, color="k", lw=0.8)
    cos_ax.set_ylim(-1.05, 1.05)
    cos_ax.set_ylabel("cosine with the reference")
    ratio_ax.set_yscale("log")
    ratio_ax.axhline(1.0, color="k", lw=0.8)
    ratio_ax.set_ylabel("norm ratio (estimate / reference)")
    ratio_ax.set_xlabel("engine step")
    for ax in (cos_ax, ratio_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)

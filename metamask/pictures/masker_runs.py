"""Pictures of a masker experiment across arms and seeds: the learned maps, the audit's cosine.

``learned_maps``: one panel per (arm, seed), the masking probability of each patch averaged over
the test images (0 white, 1 black), the informative patches outlined in red when the dataset
has them, the panel's AUROC in its title; the first column is the masker at initialisation.
``audit_cosines``: the audit's cosine over training, one line per (edge, seed), per arm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from metamask.pictures.figures import plt, save_figure

#: one panel: (column title, per-token map, its auroc or None)
Panel = tuple[str, Sequence[float], float | None]


def _grid(values: Sequence[float]) -> np.ndarray:
    side = math.isqrt(len(values))
    array = np.asarray(values, dtype=float)
    return array.reshape(side, side) if side * side == len(values) else array[None, :]


def learned_maps(
    rows: Mapping[str, Sequence[Panel]],
    path: Path,
    informative: Sequence[bool] | None = None,
    title: str = "",
) -> Path:
    """Draw ``rows`` (arm -> its panels, left to right) as a grid of maps into ``path``."""
    columns = max(len(panels) for panels in rows.values())
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(2.0 * columns, 2.1 * len(rows)), squeeze=False
    )
    marks = _grid([float(v) for v in informative]) if informative is not None else None
    for r, (arm, panels) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.axis("off")
                continue
            name, values, score = panels[c]
            ax.imshow(_grid(values), cmap="Greys", vmin=0.0, vmax=1.0)
            if marks is not None:
                for y, x in zip(*np.nonzero(marks), strict=True):
                    ax.add_patch(
                        plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.2)
                    )
            ax.set_title(name if score is None else f"{name}\nauroc {score:.2f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(arm, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def audit_cosines(
    arms: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]], path: Path, title: str = ""
) -> Path | None:
    """Draw the audit's cosine over training: ``arms`` maps an arm to its lines (a label such
    as ``"pretrain->mask seed 0"`` -> (step, cosine) points). None (nothing drawn) when no
    arm has a point."""
    drawn = {arm: lines for arm, lines in arms.items() if any(lines.values())}
    if not drawn:
        return None
    figure, axes = plt.subplots(
        1, len(drawn), figsize=(5.0 * len(drawn), 3.4), squeeze=False, sharey=True
    )
    for ax, (arm, lines) in zip(axes[0], drawn.items(), strict=True):
        for label, points in lines.items():
            if points:
                steps, cosines = zip(*points, strict=True)
                ax.plot(steps, cosines, marker=".", lw=1, label=label)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("engine step")
        ax.set_title(arm, fontsize=9)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("cosine with the exact gradient")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)

"""Draw a spec's optimization graph as a PNG (``metamask show SPEC --png FILE``).

Nodes sit in levels, lowest on the left (a node one level above every node it differentiates
through or is triggered by); each box names the node, its type and the estimator of its edges
up. Solid arrows are ``u2l`` (upper differentiates through lower), dashed ones ``l2u`` (the
lower's steps trigger the upper). Knows nothing of Betty; reads the spec only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metamask.checkpoint import atomic_write
from metamask.config import GraphSpec
from metamask.errors import OutputError
from metamask.topology import edge_estimator, node_levels

#: the picture formats ``metamask show --png`` writes, by file extension
PICTURE_FORMATS = (".png", ".svg", ".pdf")


def check_picture_path(path: Path) -> None:
    """OutputError unless ``path`` ends in a supported extension and its folder exists (checked
    before anything is drawn or printed)."""
    if path.suffix.lower() not in PICTURE_FORMATS:
        raise OutputError(
            f"--png {path}: unsupported picture format {path.suffix or '(no extension)'!r}; "
            f"expected a file name ending in {', '.join(PICTURE_FORMATS)}"
        )
    if path.is_dir():
        raise OutputError(f"--png {path}: is a folder; expected a file name")
    if not path.parent.is_dir():
        raise OutputError(f"--png {path}: folder {path.parent} does not exist")


def draw_graph(graph: GraphSpec, path: Path, title: str = "") -> Path:
    """Write the picture of ``graph`` to ``path`` (PNG) and return the path.

    Every arrow starts and ends at the edge of its boxes (its head is never hidden under a
    box), and an edge that passes a level bends just enough to clear every other box.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = node_levels(graph)
    rows: dict[int, list[str]] = {}
    for name in graph.nodes:
        rows.setdefault(levels[name], []).append(name)
    width = max(rows) + 1  # levels run left to right, lowest first
    height = max(len(names) for names in rows.values())
    position: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        for i, name in enumerate(names):  # zig-zag: an edge skipping a level passes its box
            zig = 0.35 * (1 if level % 2 else -1) if len(names) == 1 else 0.0
            position[name] = (2.0 * level, i - (len(names) - 1) / 2 + zig)
    fig, ax = plt.subplots(figsize=(2.4 * width + 1.6, 1.3 * height + 2.4))
    ax.set_xlim(-1.0, 2.0 * (width - 1) + 1.0)
    ax.set_ylim(-(height + 1) / 2 - 0.3, (height + 1) / 2 + 0.5)
    ax.axis("off")
    style = {"boxstyle": "round,pad=0.4", "facecolor": "#eef3fb", "edgecolor": "#3a5a8c"}
    boxes = {}
    for name, (x, y) in position.items():
        node = graph.nodes[name]
        estimator = edge_estimator(graph, name)  # as `show`'s table: none for a top node
        label = f"{name}\n({node.type}; {estimator})" if estimator else f"{name}\n({node.type})"
        text = ax.text(x, y, label, ha="center", va="center", fontsize=9, bbox=style, zorder=3)
        boxes[name] = text
    fig.canvas.draw()  # lay the boxes out, to route the edges around them
    patches = {name: text.get_bbox_patch() for name, text in boxes.items()}
    extents = {name: patch.get_window_extent() for name, patch in patches.items() if patch}
    for kind, edges, line, side in (
        ("u2l", graph.u2l, "-", 1.0),  # upper -> lower: right to left, bends above
        ("l2u", graph.l2u, (0, (4, 3)), 1.0),  # lower -> upper: left to right, bends below
    ):
        colour = "#b5452f" if kind == "u2l" else "#555555"
        for src, targets in edges.items():
            for dst in targets:
                others = [extents[n] for n in graph.nodes if n not in (src, dst)]
                start = ax.transData.transform(position[src])
                end = ax.transData.transform(position[dst])
                bend = _clear_bend(start, end, others, side)
                ax.annotate(
                    "",
                    xy=position[dst],
                    xytext=position[src],
                    arrowprops={
                        "arrowstyle": "-|>,head_length=0.6,head_width=0.3",
                        "linestyle": line,
                        "color": colour,
                        "patchA": patches[src],  # the arrow ends at the boxes' edges,
                        "patchB": patches[dst],  # its head outside them
                        "shrinkA": 2,
                        "shrinkB": 2,
                        "connectionstyle": f"arc3,rad={bend}",
                    },
                    zorder=2,
                )
    ax.plot([], [], "-", color="#b5452f", label="u2l: upper differentiates through lower")
    ax.plot([], [], "--", color="#555555", label="l2u: lower's steps trigger upper")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8, frameon=False)
    key = "each box: name (type; estimator of its edges up)"
    ax.set_title(f"{title}\n{key}" if title else key, fontsize=9)
    fig.tight_layout()
    picture_format = path.suffix.lower().lstrip(".") or "png"
    try:  # whole or not at all: an error mid-way leaves no half-written picture
        atomic_write(path, lambda handle: fig.savefig(handle, dpi=110, format=picture_format))
    finally:
        plt.close(fig)
    return path


def _clear_bend(start: Any, end: Any, boxes: list[Any], side: float) -> float:
    """The smallest ``arc3`` bend (preferring ``side``'s sign) whose curve from ``start`` to
    ``end`` (display coordinates) passes no box of ``boxes``; the widest tried if none does."""
    (x1, y1), (x2, y2) = start, end
    for rad in (0.15, 0.3, 0.45, 0.6, 0.8, 1.0):
        for sign in (side, -side):
            bend = sign * rad  # matplotlib's arc3: the control point off the chord's middle
            cx = (x1 + x2) / 2 + bend * (y2 - y1)
            cy = (y1 + y2) / 2 - bend * (x2 - x1)
            t = [k / 50 for k in range(51)]
            xs = [(1 - u) ** 2 * x1 + 2 * (1 - u) * u * cx + u**2 * x2 for u in t]
            ys = [(1 - u) ** 2 * y1 + 2 * (1 - u) * u * cy + u**2 * y2 for u in t]
            margin = 6.0  # pixels of air between an edge and a box it passes
            if not any(
                b.x0 - margin <= x <= b.x1 + margin and b.y0 - margin <= y <= b.y1 + margin
                for b in boxes
                for x, y in zip(xs, ys, strict=True)
            ):
                return bend
    return side * 1.0

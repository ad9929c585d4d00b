"""matplotlib for files only (Agg: no display, safe on servers) and atomic PNG writes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from metamask.checkpoint import atomic_write


def save_figure(figure: Figure, path: Path, dpi: int = 100) -> Path:
    """Render ``figure`` to PNG in memory, write it to ``path`` atomically (as every file a
    run writes: :func:`metamask.checkpoint.atomic_write`), close it and return ``path``."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    data = buffer.getbuffer()
    atomic_write(path, lambda handle: handle.write(data))
    return path

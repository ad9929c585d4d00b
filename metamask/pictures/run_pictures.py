"""The pictures at the end of a run: ``losses.png``, ``reconstructions.png``, ``masks.png`` and
``mask_diversity.png`` (a learned masker), ``hypergradient_audit.png`` (an audited
estimator).

One code path for ``metamask run`` (:func:`metamask.run.run_spec`) and the Python API's
``metamask.compose.train(graph, out_dir=)``: both call :func:`draw_run_pictures`.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from metamask.graph import Graph
from metamask.pictures.audit import AUDIT_PICTURE, audit_picture
from metamask.pictures.curves import loss_curves
from metamask.pictures.diversity import MASK_DIVERSITY, diversity_curves
from metamask.pictures.maskers import save_mask_picture, validation_examples
from metamask.pictures.reconstructions import reconstruction_picture

LOSSES = "losses.png"
RECONSTRUCTIONS = "reconstructions.png"


def draw_run_pictures(
    graph: Graph, dataset: Dataset | None, out_dir: Path, metrics: Path, count: int = 4
) -> list[Path]:
    """Write the run's pictures into ``out_dir`` and return their paths: the loss curves of
    ``metrics`` (metrics.jsonl), reconstructions of the first ``count`` examples of
    ``dataset`` (the validation split: the same examples every run) and, when the graph
    learns its masks, ``masks.png`` and ``mask_diversity.png`` (from ``metrics``); with a
    hypergradient audit, ``hypergradient_audit.png``.

    A graph without a masked auto-encoder (custom nodes only) or without ``dataset`` gets the
    pictures of ``metrics`` alone: nothing is built for a picture."""
    step = graph.engine.global_step
    losses = loss_curves(metrics, out_dir / LOSSES, title=f"losses to engine step {step}")
    if dataset is None or "mae" not in graph.context.shared:  # no auto-encoder was built
        audit = audit_picture(
            metrics, out_dir / AUDIT_PICTURE, title=f"audit to engine step {step}"
        )
        return [path for path in (losses, audit) if path is not None]
    written = [
        losses,
        reconstruction_picture(
            graph.mae,
            validation_examples(dataset, count),
            out_dir / RECONSTRUCTIONS,
            title=f"validation examples, engine step {step}",
        ),
        save_mask_picture(graph, dataset, out_dir),
        diversity_curves(metrics, out_dir / MASK_DIVERSITY, title=f"to engine step {step}"),
        audit_picture(metrics, out_dir / AUDIT_PICTURE, title=f"audit to engine step {step}"),
    ]
    return [path for path in written if path is not None]

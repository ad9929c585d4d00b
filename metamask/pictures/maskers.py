"""Pictures of what a learned masker does: input, masking probability, chosen mask (PNG, Agg).

For 2-D inputs one row per example: the image, the masking probability of every patch as a
heatmap over the image's patch grid, and the image with the masked patches greyed out (the
tokens the encoder never sees). For 1-D signals and token sequences: the probabilities and
the masks of all examples as two (examples x positions) maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.graph import Graph
from metamask.models.mae import MaskedAutoencoder
from metamask.models.maskers import LearnedMasker
from metamask.nodes.protocols import MaskedPretraining
from metamask.pictures.figures import save_figure  # first: matplotlib on files only (Agg)

if TYPE_CHECKING:
    from metamask.nodes.base import Node
    from metamask.train import Trainer

MASK_PICTURE = "masks.png"


@torch.no_grad()
def masking_picture(
    mae: MaskedAutoencoder,
    masker: LearnedMasker,
    x: torch.Tensor,
    path: Path,
    title: str = "",
) -> Path:
    """Draw input / masking probability / chosen mask for the examples ``x`` into ``path``."""
    was = (mae.training, masker.training)
    mae.eval()
    masker.eval()
    try:
        device = next(mae.parameters()).device
        prob = masker.probabilities(mae.embed(x.to(device)))  # (N, L)
        mask = masker.masks_from(prob).mask  # (N, L), 1 = masked
    finally:
        mae.train(was[0])
        masker.train(was[1])
    prob_np, mask_np = prob.float().cpu().numpy(), mask.float().cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    if mae.info.modality == "image2d":
        figure = _image_rows(x.float().cpu().numpy(), prob_np, mask_np, mae.grid)
    else:
        figure = _sequence_maps(prob_np, mask_np)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def _show(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) or (H, W) in [0, 1], each image scaled to its own range."""
    low, high = float(image.min()), float(image.max())
    image = (image - low) / (high - low + 1e-12)
    return image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]


def _image_rows(
    x: np.ndarray, prob: np.ndarray, mask: np.ndarray, grid: tuple[int, ...]
) -> plt.Figure:
    n = len(x)
    gh, gw = grid
    _, h, w = x.shape[1:]
    ph, pw = h // gh, w // gw
    figure, axes = plt.subplots(
        n, 3, figsize=(6.3, 2.1 * n + 0.8), squeeze=False, layout="constrained"
    )
    for i in range(n):
        image = _show(x[i])
        heat = prob[i].reshape(gh, gw)
        hidden = np.kron(mask[i].reshape(gh, gw), np.ones((ph, pw)))  # (H, W), 1 = masked
        shown = image.copy()
        shown[hidden > 0] = 0.5  # masked patches in grey
        axes[i, 0].imshow(image, cmap=None if image.ndim == 3 else "gray", vmin=0, vmax=1)
        picture = axes[i, 1].imshow(heat, cmap="magma", vmin=0, vmax=1)
        axes[i, 2].imshow(shown, cmap=None if shown.ndim == 3 else "gray", vmin=0, vmax=1)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for i in range(n):
        axes[i, 0].set_ylabel(f"example {i}")
    axes[-1, 1].set_xlabel(f"patch column (of {gw}); rows: patch row (of {gh})", fontsize=8)
    axes[0, 0].set_title("input")
    axes[0, 1].set_title("masking probability")
    axes[0, 2].set_title(f"masked ({int(mask[0].sum())} of {mask.shape[1]})")
    figure.colorbar(picture, ax=axes[-1, :].tolist(), orientation="horizontal", shrink=0.5)
    return figure


def _sequence_maps(prob: np.ndarray, mask: np.ndarray) -> plt.Figure:
    figure, axes = plt.subplots(
        2, 1, figsize=(8, 1.2 + 0.35 * len(prob)), squeeze=False, layout="constrained"
    )
    picture = axes[0, 0].imshow(prob, aspect="auto", cmap="magma", vmin=0, vmax=1)
    axes[1, 0].imshow(mask, aspect="auto", cmap="gray_r", vmin=0, vmax=1)
    axes[0, 0].set_title("masking probability")
    axes[1, 0].set_title("masked positions (black)")
    for ax in axes[:, 0]:
        ax.set_xlabel("token position")
        ax.set_ylabel("example")
    figure.colorbar(picture, ax=axes[0, 0])
    return figure


def learned_masker(graph: Graph) -> LearnedMasker | None:
    """The graph's learned masker (MLO-MAE's pretrain node, metamae+mask's reconstruct node),
    or None (MAE, MetaMAE)."""
    for node in graph.nodes.values():
        if isinstance(node, MaskedPretraining):
            masker = node.learned_masker()
            if masker is not None:
                return masker
    return None


def validation_examples(dataset: Dataset, count: int = 8) -> torch.Tensor:
    """The first ``count`` inputs of ``dataset`` (a fixed grid across runs and steps)."""
    n = min(count, len(dataset))  # type: ignore[arg-type]
    return torch.stack([dataset[i][0] for i in range(n)])


def save_mask_picture(
    graph: Graph, dataset: Dataset, out_dir: Path, name: str = MASK_PICTURE, count: int = 8
) -> Path | None:
    """Write the masking picture of ``graph``'s learned masker to ``out_dir / name``.

    Returns None (and writes nothing) when the graph has no learned masker.
    """
    masker = learned_masker(graph)
    if masker is None:
        return None
    step = graph.engine.global_step
    return masking_picture(
        graph.mae,
        masker,
        validation_examples(dataset, count),
        out_dir / name,
        title=f"learned masks, engine step {step}",
    )


class MaskPictures:
    """A trainer callback: ``masks-<step>.png`` of the graph's learned masker every ``every``
    engine steps, on the first examples of ``dataset`` (a no-op without a learned masker).

    It draws nothing at random (the masker's masks are its top probabilities), so a run with
    pictures is the same run, bit for bit.
    """

    def __init__(self, dataset: Dataset, out_dir: Path, every: int) -> None:
        self.dataset = dataset
        self.out_dir = out_dir
        self.every = every

    def on_train_start(self, trainer: Trainer) -> None:
        """Nothing to prepare."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Nothing to close (the run draws the final ``masks.png`` itself)."""

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        graph = trainer.graph
        done = graph.engine.global_step
        if self.every > 0 and done % self.every == 0 and learned_masker(graph) is not None:
            save_mask_picture(graph, self.dataset, self.out_dir, name=f"masks-{done:06d}.png")

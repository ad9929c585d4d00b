"""``reconstructions.png``: a few validation examples, masked and reconstructed by the MAE.

For each example: the input, the input with the masked tokens hidden, and the reconstruction
(the prediction at the masked tokens, the input where the encoder saw it). Images are three
pictures per row; 1-D signals one plot per example (up to three channels, masked spans
shaded; the x axis is the time step, or the feature (column) for tabular rows); token
sequences three rows of token ids per example (input, masked, predicted), with the predicted
ids' accuracy at the masked positions in the title.

The masks come from a private generator seeded with ``seed`` (the same masks every time,
nothing drawn from the global generators), and the model runs in eval mode without
gradients; its modes are restored afterwards.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from metamask.models.mae import MaskedAutoencoder
from metamask.models.masking import Masks, num_kept
from metamask.pictures.figures import save_figure


@torch.no_grad()
def reconstruct(
    mae: MaskedAutoencoder, x: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(masks (N, L) with 1 = masked, prediction, target): the prediction in the target's
    space ((N, L, P) values, or (N, L) token ids), de-normalised per token under norm_pix."""
    was = mae.training
    mae.eval()
    try:
        device = next(mae.parameters()).device
        x = x.to(device)
        tokens = mae.embed(x)
        n, length = tokens.shape[:2]
        noise = torch.rand(n, length, generator=torch.Generator().manual_seed(seed))
        masks = Masks.from_scores(noise.to(device), num_kept(length, mae.spec.mask_ratio))
        pred = mae.decode(mae.encode(tokens, masks), masks)
        target = mae.tokenizer.targets(x)
        if mae.tokenizer.discrete:
            pred = pred.argmax(dim=-1)
        elif mae.spec.norm_pix:  # back to the input's scale, per token
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
            pred = pred * std + mean
    finally:
        mae.train(was)
    return masks.mask.cpu(), pred.float().cpu(), target.float().cpu()


def reconstruction_picture(
    mae: MaskedAutoencoder, x: torch.Tensor, path: Path, title: str = "", seed: int = 0
) -> Path:
    """Draw input / masked input / reconstruction for the examples ``x`` into ``path``."""
    mask, pred, target = reconstruct(mae, x, seed)
    modality = mae.info.modality
    if modality == "image2d":
        figure = _images(mae, mask, pred, target)
    elif modality == "signal1d":
        figure = _signals(mae, mask, pred, target)
    else:
        figure = _tokens(mask, pred, target)
    ratio = f"{int(mask[0].sum())} of {mask.shape[1]} tokens masked"
    figure.suptitle(f"{title}\n{ratio}" if title else ratio, fontsize=10)
    return save_figure(figure, path)


def _untokenize_image(mae: MaskedAutoencoder, tokens: torch.Tensor) -> np.ndarray:
    """(N, L, p*q*C) -> (N, C, H, W): the inverse of the image tokenizer's targets."""
    (gh, gw), (p, q) = mae.grid, mae.info.patch
    c = mae.info.input_shape[0]
    n = tokens.shape[0]
    image = tokens.reshape(n, gh, gw, p, q, c).permute(0, 5, 1, 3, 2, 4)
    return image.reshape(n, c, gh * p, gw * q).numpy()


def _shown(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) or (H, W) in [0, 1] on the range [low, high]."""
    image = np.clip((image - low) / (high - low + 1e-12), 0, 1)
    return image[:3].transpose(1, 2, 0) if image.shape[0] >= 3 else image[0]


def _images(
    mae: MaskedAutoencoder, mask: torch.Tensor, pred: torch.Tensor, target: torch.Tensor
) -> Figure:
    n = mask.shape[0]
    keep = (1 - mask).unsqueeze(-1)
    inputs = _untokenize_image(mae, target)
    hidden = _untokenize_image(mae, target * keep + 0.0 * (1 - keep))
    hidden_mask = _untokenize_image(mae, mask.unsqueeze(-1).expand_as(target).contiguous())
    merged = _untokenize_image(mae, target * keep + pred * (1 - keep))
    figure, axes = plt.subplots(
        n, 3, figsize=(6.3, 2.1 * n + 0.8), squeeze=False, layout="constrained"
    )
    for i in range(n):
        low, high = float(inputs[i].min()), float(inputs[i].max())
        masked = _shown(hidden[i], low, high)
        masked[_shown(hidden_mask[i], 0, 1) > 0.5] = 0.5  # masked patches in grey
        for ax, image in zip(
            axes[i],
            (_shown(inputs[i], low, high), masked, _shown(merged[i], low, high)),
            strict=True,
        ):
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(f"example {i}")
    for ax, name in zip(axes[0], ("input", "masked input", "reconstruction"), strict=True):
        ax.set_title(name, fontsize=9)
    return figure


def _signals(
    mae: MaskedAutoencoder, mask: torch.Tensor, pred: torch.Tensor, target: torch.Tensor
) -> Figure:
    n = mask.shape[0]
    channels, length = mae.info.input_shape
    patch = length // mae.grid[0]

    def untokenize(tokens: torch.Tensor) -> np.ndarray:  # (N, L, p*C) -> (N, C, T)
        out = tokens.reshape(n, mae.grid[0], patch, channels).permute(0, 3, 1, 2)
        return out.reshape(n, channels, length).numpy()

    inputs, preds = untokenize(target), untokenize(pred)
    figure, axes = plt.subplots(
        n, 1, figsize=(8, 1.9 * n + 1.2), squeeze=False, layout="constrained"
    )
    t = np.arange(length)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(n):
        ax = axes[i, 0]
        for token in np.flatnonzero(mask[i].numpy()):
            ax.axvspan(token * patch - 0.5, (token + 1) * patch - 0.5, color="0.9", lw=0)
        hidden = np.repeat(mask[i].numpy() > 0, patch)
        for c in range(min(channels, 3)):
            colour = colours[c % len(colours)]
            ax.plot(t, inputs[i, c], color=colour, lw=1, label=f"input ch {c}" if i == 0 else None)
            shown = np.where(hidden, np.nan, inputs[i, c])
            ax.plot(t, shown, color=colour, lw=2.2, alpha=0.5)
            recon = np.where(hidden, preds[i, c], np.nan)
            label = f"reconstruction ch {c}" if i == 0 else None
            ax.plot(t, recon, color=colour, lw=1.2, ls="--", label=label)
        ax.set_ylabel(f"example {i}\nvalue")
        ax.set_xlim(-0.5, length - 0.5)
    axis = "feature (column)" if tabular(mae) else "time step"
    axes[-1, 0].set_xlabel(f"{axis} (grey: masked tokens; thick: what the encoder saw)")
    figure.legend(fontsize=7, ncol=3, loc="outside lower center")
    return figure


def tabular(mae: MaskedAutoencoder) -> bool:
    """Whether the 1-D inputs are table rows (each position a feature, not a time step)."""
    return mae.info.domain == "tabular"


def _tokens(mask: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> Figure:
    n = mask.shape[0]
    vocab = int(max(target.max().item(), pred.max().item())) + 1
    figure, axes = plt.subplots(
        n, 1, figsize=(8, 1.3 * n + 1.0), squeeze=False, layout="constrained"
    )
    cmap = plt.get_cmap("tab20", vocab).with_extremes(bad="white")
    for i in range(n):
        hidden = mask[i].numpy() > 0
        masked = np.where(hidden, np.nan, target[i].numpy())
        rows = np.stack([target[i].numpy(), masked, pred[i].numpy()])
        ax = axes[i, 0]
        ax.imshow(rows, aspect="auto", cmap=cmap, vmin=-0.5, vmax=vocab - 0.5, interpolation="none")
        right = (pred[i] == target[i]).numpy() & hidden
        wrong = ~right & hidden
        ax.scatter(np.flatnonzero(wrong), np.full(wrong.sum(), 2), marker="x", c="k", s=8)
        accuracy = right.sum() / max(hidden.sum(), 1)
        ax.set_yticks([0, 1, 2], ["input", "masked", "predicted"], fontsize=8)
        ax.set_title(f"example {i}: {accuracy:.0%} of masked tokens right (x: wrong)", fontsize=8)
    axes[-1, 0].set_xlabel(f"token position (colour: token id, {vocab} ids; white: masked)")
    return figure

"""The linear probe on frozen features, and the metrics it scores with (docs/methods.md §4).

The probe is trained with Adam on precomputed global-pool features (per-token features for
token-level labels). Its epoch is chosen on the validation split and the test metric is reported
at that epoch only -- unlike the published MetaMAE script, which reports the best test score
over epochs (a selection on the test set).

Evaluation can take minutes after training (feature extraction, then up to hundreds of
epochs), so the probe and fine-tuning show a progress bar of their epochs on stderr
(:func:`epoch_progress`), which ``--quiet`` turns off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy.stats import spearmanr
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader, Dataset, TensorDataset

from metamask.config import ProbeSpec
from metamask.data.base import IGNORE_LABEL, DataBundle, DatasetInfo
from metamask.models.heads import linear_head
from metamask.models.mae import MaskedAutoencoder

IGNORE = IGNORE_LABEL  # token-level labels: positions to leave unscored (padding)


@dataclass
class ProbeResult:
    """The probe's selected epoch and its scores."""

    metric: str  # accuracy | binary_accuracy | weighted_f1 | spearman | token_accuracy
    test: float  # test metric at the epoch selected on validation
    val: float  # best validation metric
    epoch: int  # selected epoch (1-based)
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, val, test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def extract_features(
    model: MaskedAutoencoder,
    dataset: Dataset,
    device: torch.device,
    pool: str = "global",
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen features of a whole dataset (encoder in eval mode), on the CPU."""
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        feats.append(model.features(x.to(device), pool=pool).float().cpu())  # type: ignore[arg-type]
        labels.append(y)
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def standardized(
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every split's features z-scored per dimension with the training split's statistics."""
    train = splits["train"][0].flatten(0, -2)  # (N, D), tokens too
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    return {name: ((f - mean) / std, y) for name, (f, y) in splits.items()}


def probe_loss(info: DatasetInfo, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The probe's training loss for the dataset's task."""
    if info.metric == "token_accuracy":
        return F.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.reshape(-1).long(), ignore_index=IGNORE
        )
    if info.num_classes == 0:
        return F.mse_loss(out.squeeze(-1), y.float())
    if info.num_classes == 2:
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y.float())
    return F.cross_entropy(out, y.long())


def score(metric: str, out: torch.Tensor, y: torch.Tensor) -> float:
    """The dataset's metric of probe outputs ``out`` against labels ``y``."""
    if metric == "binary_accuracy":
        return float(((out.squeeze(-1) > 0).long() == y.long()).float().mean())
    if metric == "spearman":
        rho = spearmanr(out.squeeze(-1).numpy(), y.float().numpy()).statistic
        return 0.0 if np.isnan(rho) else float(rho)
    if metric == "token_accuracy":
        keep = y != IGNORE
        return float((out.argmax(-1)[keep] == y[keep]).float().mean())
    pred = out.argmax(-1)
    if metric == "weighted_f1":
        return float(f1_score(y.numpy(), pred.numpy(), average="weighted", zero_division=0))
    return float((pred == y.long()).float().mean())


def linear_probe(
    model: MaskedAutoencoder,
    bundle: DataBundle,
    spec: ProbeSpec,
    device: torch.device,
    seed: int = 0,
    progress: bool = False,
    console: Console | None = None,
) -> ProbeResult:
    """Train a linear head on frozen features; select the epoch on validation; score test there.

    With ``progress``, a bar of the epochs (with the validation score) on ``console``.
    """
    info = bundle.info
    pool = "tokens" if info.metric == "token_accuracy" else "global"
    splits = {
        name: extract_features(model, getattr(bundle, name), device, pool)
        for name in ("train", "val", "test")
    }
    if spec.standardize:
        splits = standardized(splits)
    generator = torch.Generator().manual_seed(seed)
    head = linear_head(splits["train"][0].shape[-1], info.num_classes)
    _init_head(head, generator)
    optimizer = torch.optim.Adam(head.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    loader = DataLoader(
        TensorDataset(*splits["train"]),
        batch_size=spec.batch_size,
        shuffle=True,
        generator=generator,
    )
    curve: list[dict[str, float]] = []
    with epoch_progress(progress, console) as bar:
        task = bar.add_task("linear probe", total=spec.epochs, score="")
        for _ in range(spec.epochs):
            curve.append(_probe_epoch(info, head, optimizer, loader, splits))
            bar.update(task, advance=1, score=f"val {curve[-1]['val']:.4f}")
    best = max(range(len(curve)), key=lambda i: (curve[i]["val"], -i))  # earliest best epoch
    return ProbeResult(info.metric, curve[best]["test"], curve[best]["val"], best + 1, curve)


def _probe_epoch(
    info: DatasetInfo,
    head: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, float]:
    """One epoch of the probe's head over the training features; its loss, val and test."""
    total, count = 0.0, 0
    for feats, y in loader:
        loss = probe_loss(info, head(feats), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(y), count + len(y)
    with torch.no_grad():
        row = {"loss": total / max(count, 1)}
        for name in ("val", "test"):
            feats, y = splits[name]
            row[name] = score(info.metric, head(feats), y)
    return row


def epoch_progress(enabled: bool, console: Console | None = None) -> Progress:
    """A progress bar of an evaluation's epochs on stderr (the task's ``score`` field shows
    the last validation score); narrow enough for an 80-column terminal or log."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[score]}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def _init_head(head: torch.nn.Linear, generator: torch.Generator) -> None:
    """Seeded default init, so the probe does not depend on the global RNG's position."""
    bound = 1.0 / head.in_features**0.5
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)

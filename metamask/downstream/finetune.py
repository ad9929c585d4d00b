"""Evaluation by full fine-tuning: a copy of the pretrained encoder and a new head, both trained.

MLO-MAE reports fine-tuning accuracy (and picks the best test accuracy over epochs, a
selection on the test set). Here the epoch is chosen on the validation split and the test
metric is read at that epoch only, as the linear probe does (:mod:`metamask.downstream.probe`). The
pretrained model is deep-copied first, so the probe and any later use see it untouched.

Trained: the tokenizer, the encoder and a linear head on the pooled features (global pool
or CLS; per-token features for token-level labels); the decoder is not used. AdamW with a
linear warm-up and a cosine decay per iteration; dropout as the model spec sets it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader, Dataset

from metamask.config import FinetuneSpec
from metamask.data.base import DataBundle
from metamask.downstream.probe import epoch_progress, probe_loss, score
from metamask.models.heads import linear_head
from metamask.models.mae import MaskedAutoencoder


@dataclass
class FinetuneResult:
    """The fine-tuning run's selected epoch and its scores."""

    metric: str  # the dataset's metric (accuracy, weighted_f1, ...)
    test: float  # test metric at the epoch selected on validation
    val: float  # best validation metric
    epoch: int  # selected epoch (1-based)
    seconds: float  # wall time of the fine-tuning
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, val, test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Classifier(torch.nn.Module):
    """Encoder (tokenizer + Transformer) and a linear head on its pooled features."""

    def __init__(self, mae: MaskedAutoencoder, num_classes: int, pool: str) -> None:
        super().__init__()
        self.mae = mae
        self.pool = pool
        self.head = linear_head(mae.width, num_classes).to(mae.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mae.features(x, pool=self.pool))  # type: ignore[arg-type]

    def trainable(self) -> list[torch.nn.Parameter]:
        """Tokenizer, encoder and head parameters (the decoder is not fine-tuned)."""
        modules = (self.mae.tokenizer, self.mae.encoder, self.head)
        return [p for m in modules for p in m.parameters() if p.requires_grad]


def fine_tune(
    model: MaskedAutoencoder,
    bundle: DataBundle,
    spec: FinetuneSpec,
    device: torch.device,
    seed: int = 0,
    progress: bool = False,
    console: Console | None = None,
) -> FinetuneResult:
    """Fine-tune a copy of ``model`` on ``bundle.train``; select the epoch on ``bundle.val``.

    With ``progress``, a bar of the epochs (with the validation score) on ``console``.
    """
    if spec.epochs < 1:
        raise ValueError(f"eval.finetune.epochs must be at least 1, got {spec.epochs}")
    started = time.perf_counter()
    info = bundle.info
    pool = "tokens" if info.metric == "token_accuracy" else spec.pool
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # head init and dropout: the same draws for every method
        classifier = Classifier(copy.deepcopy(model), info.num_classes, pool).to(device)
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            bundle.train, batch_size=spec.batch_size, shuffle=True, generator=generator
        )
        optimizer = torch.optim.AdamW(
            classifier.trainable(), lr=spec.lr, weight_decay=spec.weight_decay
        )
        total = max(1, spec.epochs * len(loader))
        warmup = spec.warmup_epochs * len(loader)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup, total))
        curve: list[dict[str, float]] = []
        with epoch_progress(progress, console) as bar:
            task = bar.add_task("fine-tuning", total=spec.epochs, score="")
            for _ in range(spec.epochs):
                classifier.train()
                loss_sum, count = 0.0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    loss = probe_loss(info, classifier(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    loss_sum, count = loss_sum + float(loss.detach()) * len(y), count + len(y)
                row = {"loss": loss_sum / max(count, 1)}
                for name in ("val", "test"):
                    row[name] = evaluate(classifier, getattr(bundle, name), info.metric, device)
                curve.append(row)
                bar.update(task, advance=1, score=f"val {row['val']:.4f}")
    best = max(range(len(curve)), key=lambda i: (curve[i]["val"], -i))  # earliest best epoch
    return FinetuneResult(
        info.metric,
        curve[best]["test"],
        curve[best]["val"],
        best + 1,
        time.perf_counter() - started,
        curve,
    )


@torch.no_grad()
def evaluate(
    classifier: torch.nn.Module,
    dataset: Dataset,
    metric: str,
    device: torch.device,
    batch_size: int = 256,
) -> float:
    """The metric of ``classifier`` on ``dataset`` (eval mode, no dropout)."""
    classifier.eval()
    outs, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        outs.append(classifier(x.to(device)).float().cpu())
        labels.append(y)
    return score(metric, torch.cat(outs), torch.cat(labels))


def _warmup_cosine(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor

"""A node's optimizer and learning-rate schedule, built from its spec's ``optimizer`` block."""

from __future__ import annotations

import math

import torch

from metamask.config import OptimizerSpec


def build_optimizer(
    module: torch.nn.Module, spec: OptimizerSpec, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """An optimizer (optionally without weight decay on biases, norms, tokens) and a schedule.

    ``total_steps`` is the number of local steps the node takes, which a cosine schedule
    spans after its warm-up.
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for pname, param in module.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or pname.endswith(("cls_token", "mask_token"))
        (no_decay if spec.no_decay_bias_norm and exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    optimizer: torch.optim.Optimizer
    if spec.type == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas)
    elif spec.type == "adam":
        optimizer = torch.optim.Adam(groups, lr=spec.lr, betas=spec.betas)
    else:
        optimizer = torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)
    if spec.schedule == "constant" and spec.warmup_steps == 0:
        return optimizer, None
    warmup, cosine = spec.warmup_steps, spec.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

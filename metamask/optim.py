"""A node's optimizer and learning-rate schedule, built from its spec's ``optimizer`` block."""

from __future__ import annotations

import math

import torch

from metamask.config import OptimizerSpec


def build_optimizer(
    module: torch.nn.Module, spec: OptimizerSpec, total_steps: int, fused: bool = False
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """An optimizer (optionally without weight decay on biases, norms, tokens) and a schedule.

    ``total_steps`` is the number of local steps the node takes, which a cosine schedule
    spans after its warm-up. ``fused``: Adam and AdamW use PyTorch's fused kernel, one call
    for all parameters instead of a dozen small ops each (on a CPU about 4x faster at the dabs
    backbone, the same update to float rounding: docs/performance.md); graph nodes ask for it
    on a CPU (:meth:`metamask.nodes.context.BuildContext.wire`). SGD ignores it.
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
    kernel = {"fused": True} if fused else {}
    if spec.type == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, **kernel)
    elif spec.type == "adam":
        optimizer = torch.optim.Adam(groups, lr=spec.lr, betas=spec.betas, **kernel)
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

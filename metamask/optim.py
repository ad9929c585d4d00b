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


def clip_update(
    params: list[torch.Tensor], before: list[torch.Tensor], max_norm: float
) -> tuple[float, bool]:
    """Scale the update ``params - before`` back to an L2 norm of at most ``max_norm`` (over
    all parameters together), in place; returns the update's norm before clipping and whether
    it was clipped.

    Clipping the step, not the gradient: Adam's update hardly depends on the gradient's scale,
    so a clipped gradient does not bound how far one step moves the parameters; this does.
    """
    with torch.no_grad():
        deltas = [p - b for p, b in zip(params, before, strict=True)]
        norm = float(torch.stack([d.double().pow(2).sum() for d in deltas]).sum().sqrt())
        clipped = norm > max_norm
        if clipped:
            scale = max_norm / norm
            for param, start, delta in zip(params, before, deltas, strict=True):
                param.copy_(start + delta * scale)
    return norm, clipped

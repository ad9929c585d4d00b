"""Differentiable twins of ``torch.optim`` SGD, Adam and AdamW steps, on the optimizer's own state.

An unrolled hypergradient differentiates through the lower level's optimizer steps, so those
steps must be out-of-place functions of the parameters, gradients and optimizer state. This
module computes exactly the update of the node's own ``torch.optim`` optimizer (same param
groups, same hyper-parameters, read at each step so schedules apply) from a state that may
carry autograd history, and writes the new state back, detached, into the torch optimizer so
that training continues seamlessly when the window ends.

Supported: ``SGD`` (momentum, dampening, Nesterov, weight decay), ``Adam`` and ``AdamW``
(weight decay coupled or decoupled). ``amsgrad``, ``maximize`` and other optimizers raise a
:class:`~metamask.errors.ConfigError` naming the option.

Adam's ``sqrt(s)`` is differentiated safely: where ``s == 0`` (a parameter whose gradients
have all been zero) its derivative is taken as 0 instead of ``inf * 0 = nan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from metamask.errors import ConfigError

State = dict[str, torch.Tensor]


@dataclass
class DiffOptState:
    """Per-parameter optimizer state inside an unroll window (may carry autograd history)."""

    slots: list[State] = field(default_factory=list)


def _kind(optimizer: torch.optim.Optimizer) -> str:
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        return "adam"
    raise ConfigError(
        f"unrolled differentiation supports SGD, Adam and AdamW; got {type(optimizer).__name__}"
    )


def check_supported(optimizer: torch.optim.Optimizer, node: str) -> None:
    """Raise ConfigError naming the first option the differentiable step cannot reproduce."""
    kind = _kind(optimizer)
    for group in optimizer.param_groups:
        if group.get("maximize", False):
            raise ConfigError(f"node '{node}': unrolled differentiation: maximize=True unsupported")
        if kind == "adam" and group.get("amsgrad", False):
            raise ConfigError(f"node '{node}': unrolled differentiation: amsgrad=True unsupported")


def _group_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("a trainable parameter is not in the node's optimizer")


def initial_state(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> DiffOptState:
    """The torch optimizer's current state for ``params``, detached (start of a window)."""
    slots = []
    for param in params:
        state = optimizer.state.get(param, {})
        slots.append({k: v.detach().clone() for k, v in state.items() if torch.is_tensor(v)})
    return DiffOptState(slots)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with derivative 0 (not inf) at 0, so double backward through Adam stays finite."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), 0.0)


def _sgd(w: torch.Tensor, g: torch.Tensor, slot: State, group: dict) -> tuple[torch.Tensor, State]:
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * w
    momentum = group["momentum"]
    new: State = {}
    if momentum != 0:
        if "momentum_buffer" in slot:
            buf = momentum * slot["momentum_buffer"] + (1 - group["dampening"]) * g
        else:
            buf = g
        new["momentum_buffer"] = buf
        g = g + momentum * buf if group["nesterov"] else buf
    return w - group["lr"] * g, new


def _adam(
    w: torch.Tensor, g: torch.Tensor, slot: State, group: dict, decoupled: bool
) -> tuple[torch.Tensor, State]:
    b1, b2 = group["betas"]
    lr, wd = group["lr"], group["weight_decay"]
    if wd != 0:
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
    step = slot.get("step", torch.zeros((), dtype=torch.float32)) + 1
    m = b1 * slot.get("exp_avg", torch.zeros_like(w)) + (1 - b1) * g
    s = b2 * slot.get("exp_avg_sq", torch.zeros_like(w)) + (1 - b2) * g * g
    t = float(step)
    bias1, bias2 = 1 - b1**t, 1 - b2**t
    denom = _safe_sqrt(s) / (bias2**0.5) + group["eps"]
    return w - (lr / bias1) * m / denom, {"step": step, "exp_avg": m, "exp_avg_sq": s}


def differentiable_step(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    state: DiffOptState,
) -> tuple[list[torch.Tensor], DiffOptState]:
    """One step of ``optimizer``'s rule, out of place: ``(weights, grads, state) -> new``.

    Args:
        optimizer: the node's torch optimizer; its param groups give each parameter's
            hyper-parameters (read now, so a scheduler's current lr applies).
        params: the node's parameters (keys into the optimizer's groups and state).
        weights: the current values of ``params`` (tensors in the unrolled graph).
        grads: their gradients (with ``create_graph`` for second-order terms).
        state: the window's optimizer state (from :func:`initial_state` or a previous step).
    """
    kind = _kind(optimizer)
    new_weights, slots = [], []
    for param, w, g, slot in zip(params, weights, grads, state.slots, strict=True):
        group = _group_of(optimizer, param)
        if kind == "sgd":
            w_new, new = _sgd(w, g, slot, group)
        else:
            decoupled = bool(
                group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
            )
            w_new, new = _adam(w, g, slot, group, decoupled)
        new_weights.append(w_new)
        slots.append(new)
    return new_weights, DiffOptState(slots)


def write_back(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], state: DiffOptState
) -> None:
    """Store ``state`` (detached) as the torch optimizer's state for ``params``.

    Also marks the optimizer as stepped, as ``optimizer.step()`` does: a learning-rate
    scheduler bound to it then takes the functional step for the step it is (torch otherwise
    warns that ``lr_scheduler.step()`` came before ``optimizer.step()``; the schedule itself
    is unaffected, since :func:`differentiable_step` reads the current lr)."""
    for param, slot in zip(params, state.slots, strict=True):
        if slot:
            optimizer.state[param] = {k: v.detach().clone() for k, v in slot.items()}
    optimizer._opt_called = True  # type: ignore[attr-defined]  # torch's flag of a step taken

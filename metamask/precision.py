"""Numeric precision of a run: autocast for forward passes, fp32 for hypergradients, loss scaling.

``train.precision`` is ``fp32``, ``bf16`` or ``fp16``. Parameters, their gradients and the
optimizer state always stay fp32 (master weights); ``bf16`` / ``fp16`` run each node's step under
``torch.autocast`` on the run's device, CPU included. What needs fp32 runs in a
:func:`full_precision` region, which switches autocast off (and, on CUDA, TF32 matmuls):

- MetaMAE's support pass: its decoding, the latent gradient and the double backward through
  it (:mod:`metamask.hypergrad.latent`);
- every hypergradient estimator along a graph path (:mod:`metamask.hypergrad.paths`): HVPs,
  CG / Neumann solves, darts' and sama's finite differences and their loss re-evaluations;
- each node's backward pass is outside autocast (its ops keep the dtypes the forward chose).

``fp16`` gives every node with parameters its own dynamic loss scaler
(``torch.amp.GradScaler``): a step whose gradients overflow is skipped, counted in the node's
``skipped`` and logged (``overflow`` and ``loss_scale`` in metrics.jsonl). Each overflow halves
the scale; when it falls below :data:`MIN_LOSS_SCALE` the gradients overflow fp16 whatever the
scaling, and :func:`check_loss_scale` stops the run (:class:`~metamask.errors.LossScaleError`,
exit code 3) instead of skipping every step from then on. docs/performance.md has the table of
which part runs in which precision.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

from metamask.errors import LossScaleError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

#: True inside a full_precision() region (estimators, latent solver): autocast stays off there
_FULL = contextvars.ContextVar("metamask_full_precision", default=False)


def in_full_precision() -> bool:
    """True inside :func:`full_precision` (hypergradient parts: autocast is not entered)."""
    return _FULL.get()


@contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """The forward region of a node's step: autocast to ``precision`` on ``device``.

    A no-op for ``fp32`` and inside a :func:`full_precision` region.
    """
    if precision == "fp32" or in_full_precision():
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


@contextmanager
def full_precision() -> Iterator[None]:
    """A region computed in fp32: autocast off on every device, no TF32 on CUDA.

    Used for the second-order and hypergradient parts; nested :func:`autocast` calls inside
    it do nothing, so a node's loss re-evaluated by an estimator is computed in fp32.
    """
    token = _FULL.set(True)
    saved = _tf32_flags()
    try:
        _set_tf32(False)
        with no_autocast():
            yield
    finally:
        _restore_tf32(saved)
        _FULL.reset(token)


@contextmanager
def no_autocast() -> Iterator[None]:
    """Autocast off on every device (a backward pass: its ops keep the forward's dtypes)."""
    with torch.autocast("cpu", enabled=False):
        if torch.cuda.is_available():
            with torch.autocast("cuda", enabled=False):
                yield
        else:
            yield


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler for a node with parameters under ``fp16``; None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


#: fp16: the smallest loss scale a node keeps training at. GradScaler starts at 2**16 and
#: halves the scale on every overflowing step; below 1 the scaling no longer shields small
#: gradients from underflow (its purpose), and gradients that still overflow overflow fp16
#: itself, which no scale cures. 17 overflows in a row (fewer clean steps between them than
#: the scaler's growth interval of 2000) reach it from the start.
MIN_LOSS_SCALE = 1.0


def check_loss_scale(scaler: torch.amp.GradScaler, node: str, step: int) -> None:
    """After ``scaler.update()``: stop when the scale fell below :data:`MIN_LOSS_SCALE`.

    Raises:
        LossScaleError: one line naming the node, its local step and the scale.
    """
    scale = scaler.get_scale()
    if scale < MIN_LOSS_SCALE:
        raise LossScaleError(
            f"node '{node}', local step {step}: the fp16 gradients overflowed at every loss "
            f"scale down to {2 * scale:g}, below the floor {MIN_LOSS_SCALE:g} "
            "(metamask.precision.MIN_LOSS_SCALE): they overflow fp16 itself; train with "
            "train.precision: bf16 or fp32, or a lower learning rate"
        )


def configure_device(device: torch.device, precision: str) -> None:
    """TF32 matmuls and convolutions on CUDA when fp32 is asked (the forward and backward
    passes; :func:`full_precision` regions switch them off again). Nothing on CPU."""
    if device.type == "cuda" and precision == "fp32":
        _set_tf32(True)


def _tf32_targets() -> list[object]:
    """The CUDA backends whose fp32 precision TF32 affects (torch >= 2.9's per-backend API;
    reading the legacy ``allow_tf32`` flags after it has been used raises, so only it is used)."""
    return [torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv")]  # noqa: B009


def _tf32_flags() -> list[str]:
    return [str(getattr(target, "fp32_precision")) for target in _tf32_targets()]  # noqa: B009


def _set_tf32(enabled: bool) -> None:
    for target in _tf32_targets():
        setattr(target, "fp32_precision", "tf32" if enabled else "ieee")  # noqa: B010


def _restore_tf32(saved: list[str]) -> None:
    for target, value in zip(_tf32_targets(), saved, strict=True):
        setattr(target, "fp32_precision", value)  # noqa: B010

"""Autodiff building blocks shared by the estimators: a node's loss, HVPs, mixed partials.

Every estimator of an edge ``upper -> lower`` works on the lower node's training loss
``L(w, theta)`` at the lower's current parameters ``w`` and latest batch (``lower.cur_batch``),
where ``theta`` are the upper node's trainable parameters. The pieces here are:

- :func:`node_loss`: ``L`` evaluated by the node's own ``training_step``, optionally with its
  parameters replaced functionally (``torch.func.functional_call``: no in-place perturbation,
  so retained graphs and version counters stay intact);
- :func:`lower_gradient`: ``dL/dw`` with its graph kept, the seed of every second-order product;
- :func:`hvp` (``H x`` with ``H = d2L/dw2``) and :func:`mixed_vjp` (``-(d2L/dtheta dw) x``),
  both with ``allow_unused`` semantics (unused inputs get zeros, never an error);
- :func:`common_random_numbers`: replay one RNG state for several evaluations of a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from metamask.hypergrad.protocol import HypergradNode

Tensors = list[torch.Tensor]


class TrainingStep(nn.Module):
    """``forward(batch) = node.training_step(batch)`` with ``node.module`` as a submodule.

    ``functional_call`` on this wrapper swaps the node module's parameters for the whole
    training step, whatever the step does with the module.
    """

    def __init__(self, node: HypergradNode) -> None:
        super().__init__()
        self.module = node.module
        self._node = (node,)  # a tuple: not registered as a submodule

    def forward(self, batch: Any) -> Any:
        return self._node[0].training_step_exec(batch)


def loss_of(output: Any) -> torch.Tensor:
    """The loss tensor of a ``training_step`` output (a tensor, or a dict with ``"loss"``)."""
    if isinstance(output, dict):
        loss: torch.Tensor = output["loss"]
        return loss
    assert isinstance(output, torch.Tensor), f"training_step returned {type(output).__name__}"
    return output


def trainable_names(node: HypergradNode) -> list[str]:
    """Names, in ``node.module``, of ``node.trainable_parameters()``, in the same order.

    Raises:
        ValueError: a trainable parameter is not a parameter of ``node.module``.
    """
    by_id = {id(p): name for name, p in node.module.named_parameters(remove_duplicate=False)}
    names = []
    for i, param in enumerate(node.trainable_parameters()):
        if id(param) not in by_id:
            raise ValueError(
                f"node '{node.name}': trainable parameter #{i} is not a parameter of its module; "
                "functional evaluation needs every trainable parameter to live in node.module"
            )
        names.append(by_id[id(param)])
    return names


def node_loss(node: HypergradNode, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """The node's training loss on its latest batch, optionally at other parameter values.

    Args:
        node: a metamask node that has stepped at least once (``node.cur_batch`` is its batch).
        params: replacements for ``node.trainable_parameters()`` (same order and shapes), used
            through ``torch.func.functional_call``; ``None`` evaluates at the current values.
    """
    if params is None:
        return loss_of(node.training_step_exec(node.cur_batch))
    names = trainable_names(node)
    replaced = {f"module.{name}": value for name, value in zip(names, params, strict=True)}
    out = torch.func.functional_call(TrainingStep(node), replaced, (node.cur_batch,))
    return loss_of(out)


def zeros_for_none(grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor]) -> Tensors:
    """Replace ``None`` gradients (unused inputs) by zeros shaped like their input."""
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like, strict=True)]


def grad_or_zeros(
    outputs: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_outputs: Sequence[torch.Tensor],
    retain_graph: bool = True,
    create_graph: bool = False,
) -> Tensors:
    """``sum_i grad_outputs_i . d outputs_i / d inputs`` with zeros where nothing connects.

    Unlike a bare ``torch.autograd.grad``, this tolerates outputs that do not require grad
    (a lower loss that is linear in some parameter) and inputs that are unused.
    """
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs, strict=True) if o.requires_grad]
    if not pairs or not inputs:
        return [torch.zeros_like(p) for p in inputs]
    grads = torch.autograd.grad(
        [o for o, _ in pairs],
        list(inputs),
        grad_outputs=[g for _, g in pairs],
        retain_graph=retain_graph,
        create_graph=create_graph,
        allow_unused=True,
    )
    return zeros_for_none(grads, inputs)


def lower_gradient(lower: HypergradNode) -> tuple[torch.Tensor, Tensors]:
    """The lower's loss and ``dL/dw`` (graph kept for second-order products)."""
    params = lower.trainable_parameters()
    loss = node_loss(lower)
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    return loss, zeros_for_none(grads, params)


def hvp(
    grad_w: Sequence[torch.Tensor], params: Sequence[torch.Tensor], x: Sequence[torch.Tensor]
) -> Tensors:
    """``H x``: the lower Hessian ``d2L/dw2`` times ``x``, from ``grad_w = dL/dw`` (kept graph)."""
    return [h.detach() for h in grad_or_zeros(grad_w, params, x)]


def mixed_vjp(
    grad_w: Sequence[torch.Tensor], upper_params: Sequence[torch.Tensor], x: Sequence[torch.Tensor]
) -> Tensors:
    """``-(d2L / d theta d w) x``: how the lower's optimality moves with the upper, applied to x.

    This is the last factor of every implicit estimator: the indirect gradient is
    ``-(d2L/dtheta dw) H^{-1} v``, and ``x`` is the estimator's approximation of ``H^{-1} v``.
    """
    return [-g.detach() for g in grad_or_zeros(grad_w, upper_params, x)]


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inner product of two tensor lists."""
    total = torch.zeros((), dtype=a[0].dtype, device=a[0].device) if a else torch.zeros(())
    for x, y in zip(a, b, strict=True):
        total = total + (x * y).sum()
    return total


def norm(a: Sequence[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of a tensor list."""
    return dot(a, a).sqrt()


def node_device(node: HypergradNode) -> torch.device:
    """The device of the node's parameters (Betty's ``node.device`` is unset outside an engine)."""
    for param in node.module.parameters():
        return param.device
    return torch.device("cpu")


@contextmanager
def common_random_numbers(device: torch.device) -> Iterator[Callable[[], None]]:
    """Yield ``replay()``, which resets the RNG to the state at entry; restore it at exit.

    Finite-difference estimators evaluate a loss twice; dropout or masks drawn inside the
    training step would otherwise differ between the two evaluations and swamp the difference
    (Betty's ``darts`` measured 126% apart on MLO-MAE). Calling ``replay()`` before each
    evaluation gives both the same random draws; the global RNG continues as if untouched.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(device) if devices else None

        def replay() -> None:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, device)

        yield replay


def conjugate_gradient(
    matvec: Callable[[Sequence[torch.Tensor]], Tensors],
    b: Sequence[torch.Tensor],
    iterations: int,
    tol: float = 0.0,
) -> Tensors:
    """Textbook CG for ``A x = b`` (``A`` symmetric positive definite), from ``x = 0``.

    Stops early when the residual norm drops to ``tol * ||b||`` or the curvature ``p.Ap``
    stops being positive (converged, or ``A`` not positive definite along ``p``).
    """
    x = [torch.zeros_like(t) for t in b]
    r = [t.detach().clone() for t in b]
    p = list(r)
    rr = dot(r, r)
    stop = tol * float(rr.sqrt())
    for _ in range(iterations):
        if float(rr.sqrt()) <= stop or float(rr) == 0.0:
            break
        ap = matvec(p)
        curvature = dot(p, ap)
        if float(curvature) <= 0.0:
            break
        step = rr / curvature
        x = [xi + step * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - step * api for ri, api in zip(r, ap, strict=True)]
        rr_new = dot(r, r)
        p = [ri + (rr_new / rr) * pi for ri, pi in zip(r, p, strict=True)]  # r_new, not r
        rr = rr_new
    return x

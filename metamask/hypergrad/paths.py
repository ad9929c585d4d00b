"""Compose per-edge estimators along a path of the graph, as Betty's multi-level paths do.

A path ``[U, L1, L2, ..., U]`` (Betty's format: it starts and ends at the upper node U) says:
U's loss depends on L1's parameters, which depend (through L1's training) on L2's, ..., which
depend on U's. The chain rule gives ``v_1 = dL_U/dL1`` and ``v_{k+1} = estimator(L_k)(v_k)``;
the last ``v`` is the indirect gradient with respect to U's parameters. Each lower node's own
``estimator`` says how gradients reach through it. Under data parallelism every ``v`` is
averaged across processes, so each estimator works on the global batch's vector (exact for
estimators linear in their lower's loss given ``v``, as ``darts``; iterative solvers such as
``neumann`` and ``cg`` still use each process's own Hessian).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from metamask import distributed
from metamask.hypergrad.registry import get_estimator

if TYPE_CHECKING:
    from metamask.nodes.base import Node


def path_gradient(
    loss: torch.Tensor, path: Sequence[Any], retain_graph: bool = True
) -> list[torch.Tensor]:
    """Indirect gradient of ``loss`` (of ``path[0]``) w.r.t. ``path[-1]``'s trainable parameters."""
    first: Node = path[1]
    params = first.trainable_parameters()
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    vector = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
    distributed.mean_(vector)  # data parallelism: every estimator starts from the global v
    for lower, upper in itertools.pairwise(path[1:]):
        estimator = get_estimator(lower.estimator)
        options = lower.estimator_options
        if options is None:
            options = estimator.default_options()
        elif not isinstance(options, estimator.options_type):
            raise TypeError(
                f"node '{lower.name}': estimator {estimator.name!r} takes "
                f"{estimator.options_type.__name__} options, got {type(options).__name__} "
                "(select estimators with metamask.hypergrad.use_estimator)"
            )
        vector = estimator.fn(vector, lower, upper, options)
        distributed.mean_(vector)
    return vector

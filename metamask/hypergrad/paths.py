"""Compose per-edge estimators along a path of the graph, as Betty's multi-level paths do.

A path ``[U, L1, L2, ..., U]`` (Betty's format: it starts and ends at the upper node U) says:
U's loss depends on L1's parameters, which depend (through L1's training) on L2's, ..., which
depend on U's. The chain rule gives ``v_1 = dL_U/dL1`` and ``v_{k+1} = estimator(L_k)(v_k)``;
the last ``v`` is the indirect gradient with respect to U's parameters. Each lower node's own
``estimator`` says how gradients reach through it. Under data parallelism every ``v`` is
averaged across processes, so each estimator works on the global batch's vector (exact for
estimators linear in their lower's loss given ``v``, as ``darts``; iterative solvers such as
``neumann`` and ``cg`` still use each process's own Hessian).

Several paths that end with the same edge ``L -> U`` need only one call of L's estimator:
:func:`summed_path_gradient` sums the vectors they carry into L first (every estimator is
linear in its vector); :func:`apply_estimator` applies one lower node's estimator.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from metamask import distributed
from metamask.hypergrad.protocol import HypergradNode
from metamask.hypergrad.registry import get_estimator
from metamask.precision import full_precision


def path_gradient(
    loss: torch.Tensor, path: Sequence[Any], retain_graph: bool = True
) -> list[torch.Tensor]:
    """Indirect gradient of ``loss`` (of ``path[0]``) w.r.t. ``path[-1]``'s trainable parameters."""
    first: HypergradNode = path[1]
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
        with full_precision():  # HVPs, solves, finite differences: fp32 (metamask.precision)
            vector = estimator.fn(vector, lower, upper, options)
        distributed.mean_(vector)
    return vector


def summed_path_gradient(
    loss: torch.Tensor, paths: Sequence[Sequence[Any]], upper: HypergradNode
) -> list[torch.Tensor]:
    """``sum_p path_gradient(loss, p)`` with each final edge's estimator applied once.

    Every path here ends ``... -> L -> upper``. The vectors that the paths carry into the same
    last lower node L (:func:`~metamask.hypergrad.paths.path_gradient` on the path without its
    last edge) are summed before L's estimator maps them onto ``upper``'s parameters: every
    estimator is linear in its vector (darts and sama up to their finite difference), so this
    is the same sum at the cost of one estimator call instead of one per path (MLO-MAE: one
    finite difference through ``pretrain`` instead of two). Paths through a ``first_order``
    node contribute exactly zero and are skipped.
    """
    reaching: dict[int, tuple[HypergradNode, list[torch.Tensor]]] = {}
    for path in paths:
        lowers: list[HypergradNode] = list(path[1:-1])
        if lowers[0].hypergradient_in_graph or any(
            get_estimator(node.estimator).name == "first_order" for node in lowers
        ):
            continue
        vector = path_gradient(loss, path[:-1], retain_graph=True)  # on lowers[-1]'s parameters
        last = lowers[-1]
        if id(last) in reaching:
            vector = [a + b for a, b in zip(reaching[id(last)][1], vector, strict=True)]
        reaching[id(last)] = (last, vector)
    total = [torch.zeros_like(p) for p in upper.trainable_parameters()]
    for last, vector in reaching.values():
        indirect = apply_estimator(vector, last, upper)
        total = [t + i for t, i in zip(total, indirect, strict=True)]
    return total


def apply_estimator(
    vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode
) -> list[torch.Tensor]:
    """``lower``'s estimator: the indirect gradient on ``upper``'s parameters from ``vector``."""
    estimator = get_estimator(lower.estimator)
    options = lower.estimator_options
    if options is None:
        options = estimator.default_options()
    with full_precision():  # HVPs, solves, finite differences: fp32 (metamask.precision)
        return estimator.fn(vector, lower, upper, options)

"""The masker's gradient in MLO-MAE: exact for ``unrolled``, only through the probabilities.

The reference below is written from docs/methods.md §3 with plain autograd and no Betty: two SGD
(momentum) steps of the MAE on its two batches, with the masks those steps used held fixed and
each masked token's loss times its masking probability; one SGD step of the head on split A
at the new encoder; the head's cross-entropy on split B. Its derivative with respect to the
masker's parameters (autograd, and central finite differences) is what the ``unrolled``
estimator must return through the graph's two paths.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_bundle, tiny_spec
from torch import nn

from metamask.compose import build_graph
from metamask.graph import Graph
from metamask.hypergrad.autodiff import node_loss
from metamask.hypergrad.betty_estimators import DartsOptions, darts
from metamask.hypergrad.paths import path_gradient, summed_path_gradient
from metamask.models.transformer import twice_differentiable
from metamask.nodes.pretrain import MaskedBatch

PRETRAIN_LR, MOMENTUM, HEAD_LR = 0.2, 0.9, 0.5
FD_TOLERANCE = 1e-6  # relative, float64: |fd - <g, d>| <= 1e-6 * max(|fd|, 1e-3)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def mlo_graph_spec(estimator: str, head_estimator: str | None = None) -> dict[str, Any]:
    sgd = {"type": "sgd", "lr": PRETRAIN_LR, "momentum": MOMENTUM, "weight_decay": 0.0}
    return {
        "nodes": {
            "pretrain": {
                "type": "pretrain",
                "unroll_steps": 2,
                "masker": {"type": "flat_mlp", "hidden": 8},
                "hypergradient": {"type": estimator},
                "optimizer": sgd,
            },
            "head": {
                "type": "head",
                "head_dropout": 0.0,
                "hypergradient": {"type": head_estimator or estimator},
                "optimizer": {"type": "sgd", "lr": HEAD_LR, "weight_decay": 0.0},
            },
            "mask": {"type": "mask", "optimizer": {"type": "sgd", "lr": 0.1}},
        },
        "u2l": {"mask": ["pretrain"]},
        "l2u": {"pretrain": ["head", "mask"], "head": ["mask"]},
    }


def build(graph_spec: dict[str, Any], head_dropout: float = 0.0) -> Graph:
    graph_spec["nodes"]["head"]["head_dropout"] = head_dropout
    spec = tiny_spec(graph_spec, data={"batch_size": 4}, model={"mask_ratio": 0.5})
    graph = build_graph(spec, tiny_bundle("image2d", dtype=torch.float64), torch.device("cpu"))
    for node in graph.nodes.values():
        node.module.double()
    return graph


def run_one_cycle(graph: Graph) -> tuple[list[torch.Tensor], dict[str, list[Any]]]:
    """Two engine iterations; the masker's gradient before its step and every batch drawn."""
    mask = graph.nodes["mask"]
    captured: list[torch.Tensor] = []
    batches: dict[str, list[Any]] = {name: [] for name in graph.nodes}
    for name, node in graph.nodes.items():
        draw = node.get_batch

        def recording(_draw: Callable[[], Any] = draw, _name: str = name) -> Any:
            batch = _draw()
            batches[_name].append(batch)
            return batch

        node.get_batch = recording  # type: ignore[method-assign]

    def capture() -> None:
        captured.extend(p.grad.detach().clone() for p in mask.trainable_parameters())

    mask.grad_callback = capture  # Betty calls it after backward, before the optimizer step
    graph.train()
    graph.step()
    graph.step()
    assert len(captured) == len(mask.trainable_parameters())
    return captured, batches


class Call(nn.Module):
    """``forward(fn) = fn(self)``: functional_call over several modules at once."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, fn: Callable[[Call], torch.Tensor]) -> torch.Tensor:
        return fn(self)


def reference_split_b_loss(
    graph: Graph, start: dict[str, torch.Tensor], batches: dict[str, list[Any]]
) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """The split-B loss after one MLO-MAE cycle, as a function of the masker's parameters."""
    mae = copy.deepcopy(graph.nodes["pretrain"].mae)
    masker = copy.deepcopy(graph.nodes["mask"].masker)
    head = copy.deepcopy(graph.nodes["head"].head)
    call = Call(mae=mae, masker=masker, head=head)
    mae_names = [f"mae.{n}" for n, _ in mae.named_parameters()]
    masker_names = [f"masker.{n}" for n, _ in masker.named_parameters()]
    head_names = [f"head.{n}" for n, _ in head.named_parameters()]
    pretrain_batches: list[MaskedBatch] = batches["pretrain"]
    (xa, ya), (xb, yb) = batches["head"][0], batches["mask"][0]

    def pretrain_loss(m: Call, batch: MaskedBatch) -> torch.Tensor:
        assert batch.masks is not None  # the masks the engine's step chose, held fixed
        tokens = m.mae.embed(batch.x)
        prob = m.masker.probabilities(tokens)  # the only place the masker enters
        pred = m.mae.decode(m.mae.encode(tokens, batch.masks), batch.masks)
        losses = (pred - m.mae.targets(batch.x)).pow(2).mean(-1)
        return (losses * prob * batch.masks.mask).sum() / batch.masks.mask.sum()

    def loss_b(theta: list[torch.Tensor]) -> torch.Tensor:
        masker_params = dict(zip(masker_names, theta, strict=True))
        w = [start[n].clone().requires_grad_(True) for n in mae_names]
        velocity: list[torch.Tensor] | None = None
        with twice_differentiable(mae), twice_differentiable(masker):
            for batch in pretrain_batches:
                params = {**dict(zip(mae_names, w, strict=True)), **masker_params}
                loss = torch.func.functional_call(
                    call, params, (lambda m, b=batch: pretrain_loss(m, b),), strict=False
                )
                grads = torch.autograd.grad(loss, w, create_graph=True)
                velocity = (
                    list(grads)
                    if velocity is None
                    else [MOMENTUM * v + g for v, g in zip(velocity, grads, strict=True)]
                )
                w = [wi - PRETRAIN_LR * v for wi, v in zip(w, velocity, strict=True)]
        encoder = dict(zip(mae_names, w, strict=True))
        h = [start[n].clone().requires_grad_(True) for n in head_names]

        def head_loss(hp: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            params = {**encoder, **dict(zip(head_names, hp, strict=True))}
            logits = torch.func.functional_call(
                call, params, (lambda m: m.head(m.mae.features(x, pool="cls")),), strict=False
            )
            return F.cross_entropy(logits, y)

        (grad_h,) = [torch.autograd.grad(head_loss(h, xa, ya), h, create_graph=True)]
        h1 = [hi - HEAD_LR * g for hi, g in zip(h, grad_h, strict=True)]
        return head_loss(h1, xb, yb)

    return loss_b


def starting_point(graph: Graph) -> dict[str, torch.Tensor]:
    mae, head = graph.nodes["pretrain"].mae, graph.nodes["head"].head
    state = {f"mae.{n}": p.detach().clone() for n, p in mae.named_parameters()}
    state.update({f"head.{n}": p.detach().clone() for n, p in head.named_parameters()})
    return state


def test_unrolled_masker_gradient_equals_finite_differences_of_the_split_b_loss() -> None:
    graph = build(mlo_graph_spec("unrolled"))
    theta0 = [p.detach().clone() for p in graph.nodes["mask"].trainable_parameters()]
    start = starting_point(graph)
    grads, batches = run_one_cycle(graph)
    loss_b = reference_split_b_loss(graph, start, batches)

    # the reference differentiated by autograd: the exact hypergradient, element by element
    theta = [t.clone().requires_grad_(True) for t in theta0]
    exact = torch.autograd.grad(loss_b(theta), theta)
    for ours, ref in zip(grads, exact, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert norm > 1e-4  # non-zero

    # and central finite differences along random directions
    generator = torch.Generator().manual_seed(1)
    eps = 1e-5
    for _ in range(3):
        d = [torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in theta0]
        plus = loss_b([t + eps * di for t, di in zip(theta0, d, strict=True)]).detach()
        minus = loss_b([t - eps * di for t, di in zip(theta0, d, strict=True)]).detach()
        fd = float((plus - minus) / (2 * eps))
        directional = float(sum((g * di).sum() for g, di in zip(grads, d, strict=True)))
        assert abs(fd - directional) <= FD_TOLERANCE * max(abs(fd), 1e-3), (fd, directional)


@pytest.mark.parametrize("estimator", ["unrolled", "darts"])
def test_the_masker_gradient_flows_only_through_the_probabilities(estimator: str) -> None:
    graph = build(mlo_graph_spec(estimator))
    grads, _ = run_one_cycle(graph)
    assert torch.sqrt(sum((g**2).sum() for g in grads)) > 1e-6

    # the split-B loss itself does not read the masker: no direct gradient
    mask = graph.nodes["mask"]
    direct = torch.autograd.grad(node_loss(mask), mask.trainable_parameters(), allow_unused=True)
    assert all(g is None for g in direct)

    # cut the probability path (p detached in the pretraining loss): nothing reaches the masker
    graph = build(mlo_graph_spec(estimator))
    masker = graph.nodes["mask"].masker
    probabilities = masker.probabilities
    masker.probabilities = lambda tokens: probabilities(tokens).detach()  # type: ignore[method-assign]
    grads, _ = run_one_cycle(graph)
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_darts_replays_the_head_dropout_so_its_difference_is_the_mixed_partial() -> None:
    """Betty's darts re-draws dropout between its two evaluations (measured 126% apart on
    MLO-MAE); here both evaluations see the same draws, so the finite difference matches the
    exact mixed partial computed with that same dropout mask."""
    graph = build(mlo_graph_spec("darts"), head_dropout=0.5)
    run_one_cycle(graph)
    head_node, pretrain = graph.nodes["head"], graph.nodes["pretrain"]
    head = head_node.trainable_parameters()
    generator = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in head]

    torch.manual_seed(123)
    estimate = darts(v, head_node, pretrain, DartsOptions(alpha=1e-4))

    torch.manual_seed(123)  # the same dropout draw as the estimator's (replayed) evaluations
    loss = node_loss(head_node)
    grad_h = torch.autograd.grad(loss, head, create_graph=True)
    inner = sum((g * vi).sum() for g, vi in zip(grad_h, v, strict=True))
    exact = torch.autograd.grad(inner, pretrain.trainable_parameters(), allow_unused=True)
    exact = [
        -g if g is not None else torch.zeros_like(e) for g, e in zip(exact, estimate, strict=True)
    ]

    def relative(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        num = sum(((x - y) ** 2).sum() for x, y in zip(a, b, strict=True)) ** 0.5
        return float(num / sum((y**2).sum() for y in b) ** 0.5)

    assert relative(estimate, exact) < 1e-6

    # the trap: two evaluations with different dropout draws (what Betty's darts does)
    base = [p.detach() for p in head]
    eps = 1e-4 / float(sum((vi**2).sum() for vi in v) ** 0.5)
    upper = pretrain.trainable_parameters()
    redrawn = []
    for sign, seed in ((1.0, 123), (-1.0, 124)):
        torch.manual_seed(seed)
        moved = [w + sign * eps * vi for w, vi in zip(base, v, strict=True)]
        g = torch.autograd.grad(node_loss(head_node, moved), upper, allow_unused=True)
        redrawn.append(
            [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, upper, strict=True)]
        )
    betty_like = [(m - p) / (2 * eps) for p, m in zip(*redrawn, strict=True)]
    assert relative(betty_like, exact) > 1.0


@pytest.mark.parametrize("head_estimator", ["neumann", "first_order"])
def test_summed_paths_equal_the_sum_of_separate_paths(head_estimator: str) -> None:
    graph = build(mlo_graph_spec("neumann", head_estimator))
    run_one_cycle(graph)
    mask = graph.nodes["mask"]
    loss = node_loss(mask)
    summed = summed_path_gradient(loss, mask.paths, mask)
    separate = [torch.zeros_like(p) for p in mask.trainable_parameters()]
    for path in mask.paths:
        for i, g in enumerate(path_gradient(loss, path, retain_graph=True)):
            separate[i] = separate[i] + g
    for a, b in zip(summed, separate, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert any(torch.count_nonzero(a) for a in summed)


@pytest.mark.parametrize("estimator", ["neumann", "cg", "sama"])
def test_estimators_that_betty_breaks_on_this_graph_run_here(estimator: str) -> None:
    """Betty's neumann and cg raise on MLO-MAE (the decoder is unused by the head_node loss);
    metamask's run with ``allow_unused`` and give a finite, non-zero masker gradient."""
    graph = build(mlo_graph_spec(estimator))
    grads, _ = run_one_cycle(graph)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert torch.isfinite(norm) and norm > 0


def test_adamw_param_groups_survive_betty_on_every_level() -> None:
    spec = mlo_graph_spec("darts")
    adamw = {"type": "adamw", "lr": 1e-3, "weight_decay": 1e-3, "no_decay_bias_norm": True}
    for node in spec["nodes"].values():
        node["optimizer"] = adamw
    graph = build(spec)
    run_one_cycle(graph)
    for node in graph.nodes.values():
        assert isinstance(node.optimizer, torch.optim.AdamW)
        assert [g["weight_decay"] for g in node.optimizer.param_groups] == [1e-3, 0.0]


def test_darts_through_the_head_walks_the_encoder_once_and_equals_two_backwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head's two finite-difference evaluations read the same kept encoder features, so
    darts differentiates their difference in one backward through the encoder; the result is
    the two-backward difference up to rounding."""
    from metamask.nodes import feature_reuse

    graph = build(mlo_graph_spec("darts"), head_dropout=0.5)
    run_one_cycle(graph)
    head_node, pretrain = graph.nodes["head"], graph.nodes["pretrain"]
    generator = torch.Generator().manual_seed(3)
    head = head_node.head.parameters()
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in head]
    walks = []
    original = feature_reuse._KeptFeatures.backward

    def counting(ctx: Any, grad: torch.Tensor) -> Any:
        walks.append(1)
        return original(ctx, grad)

    monkeypatch.setattr(feature_reuse._KeptFeatures, "backward", staticmethod(counting))
    torch.manual_seed(5)
    merged = darts(v, head_node, pretrain, DartsOptions(alpha=1e-4))
    assert len(walks) == 1
    monkeypatch.setattr(type(head_node), "shares_upstream_forward", False)
    torch.manual_seed(5)
    separate = darts(v, head_node, pretrain, DartsOptions(alpha=1e-4))
    assert len(walks) == 3
    diff = sum(((a - b) ** 2).sum() for a, b in zip(merged, separate, strict=True)) ** 0.5
    size = sum((b**2).sum() for b in separate) ** 0.5
    assert float(size) > 0 and float(diff / size) < 1e-9  # rounding of the difference only

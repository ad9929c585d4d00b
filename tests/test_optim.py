"""metamask.optim: on a CPU, Adam and AdamW take PyTorch's fused kernel, whose update equals the
per-parameter loop's to float rounding and whose state round-trips bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import MAE_GRAPH, tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.config import OptimizerSpec
from metamask.optim import build_optimizer


def _module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


def _steps(module: torch.nn.Module, opt: torch.optim.Optimizer, count: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(5, 6, generator=g)
        opt.zero_grad(set_to_none=True)
        module(x).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("kind", ["adamw", "adam"])
def test_fused_on_cpu_and_the_same_update_as_the_loop(kind: str) -> None:
    spec = OptimizerSpec(type=kind, lr=1e-2, weight_decay=1e-2)  # type: ignore[arg-type]
    fast_module, loop_module = _module(), _module()
    fast, _ = build_optimizer(fast_module, spec, 10, fused=True)
    assert all(group["fused"] for group in fast.param_groups)
    loop = type(fast)(loop_module.parameters(), lr=1e-2, weight_decay=1e-2, foreach=False)
    _steps(fast_module, fast, 20, seed=1)
    _steps(loop_module, loop, 20, seed=1)
    for a, b in zip(fast_module.parameters(), loop_module.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(fast_module.parameters()), _module()[0].weight)  # it moved


def test_unfused_by_default_and_sgd_ignores_it() -> None:
    module = _module()
    opt, _ = build_optimizer(module, OptimizerSpec(), 10)
    assert not any(group["fused"] for group in opt.param_groups)
    sgd, _ = build_optimizer(module, OptimizerSpec(type="sgd", lr=0.1), 10, fused=True)
    assert "fused" not in sgd.param_groups[0] or not sgd.param_groups[0]["fused"]


def test_a_saved_fused_state_continues_bit_for_bit() -> None:
    spec = OptimizerSpec(lr=1e-2)
    whole_module = _module()
    whole, _ = build_optimizer(whole_module, spec, 10, fused=True)
    _steps(whole_module, whole, 5, seed=2)
    saved_module, saved_state = copy.deepcopy(whole_module.state_dict()), whole.state_dict()
    saved_state = copy.deepcopy(saved_state)
    _steps(whole_module, whole, 5, seed=3)
    resumed_module = _module()
    resumed_module.load_state_dict(saved_module)
    resumed, _ = build_optimizer(resumed_module, spec, 10, fused=True)
    resumed.load_state_dict(saved_state)
    _steps(resumed_module, resumed, 5, seed=3)
    for a, b in zip(whole_module.parameters(), resumed_module.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("precision", "fused"), [("fp32", True), ("fp16", False)])
def test_graph_nodes_on_a_cpu_are_fused_except_under_fp16_loss_scaling(
    precision: str, fused: bool
) -> None:
    spec = tiny_spec(MAE_GRAPH, train={"precision": precision})
    built = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    optimizer = built.nodes["reconstruct"].optimizer
    assert optimizer is not None
    assert all(bool(group["fused"]) is fused for group in optimizer.param_groups)

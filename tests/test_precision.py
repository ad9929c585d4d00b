"""train.precision: bf16 close to fp32, fp32 where hypergradients need it, fp16 loss scaling.

Tolerances (bf16 keeps 8 significant bits, a relative rounding of 2^-9 per operation):
- MAE and MetaMAE (second order), one step: loss within 1% of fp32, the outer node's gradient
  within 3% (relative L2 error; measured 0.7% and 1.3%);
- one MLO-MAE cycle (two pretrain steps, a head step, a mask step with darts): losses within
  5%, every node's gradient within 25% with cosine >= 0.97 (measured: at most 13%, cosine
  0.992). The learned masker scores tokens in bf16, and its top-k masks can differ at near
  ties, so a few masked tokens differ between the two runs.

The tests marked ``gpu`` run only with CUDA (``benchmarks/gpu_check.sh`` runs them); without
it they are skipped (tests/conftest.py), which the last test checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import MAE_GRAPH, METAMAE_GRAPH, mlo_graph, mlo_spec, tiny_bundle, tiny_spec

from metamask import precision
from metamask.compose import build_graph
from metamask.errors import LossScaleError, NonFiniteError
from metamask.graph import Graph
from metamask.train import Trainer

CPU = torch.device("cpu")


def _graph(kind: str, mode: str, device: torch.device = CPU, **train: Any) -> Graph:
    torch.manual_seed(0)
    settings = {"precision": mode, **train}
    if kind == "mlo":
        spec = mlo_spec(mlo_graph(), train=settings)
    else:
        spec = tiny_spec(MAE_GRAPH if kind == "mae" else METAMAE_GRAPH, train=settings)
    graph = build_graph(spec, tiny_bundle("image2d"), device)
    graph.train()
    return graph


def _stepped(kind: str, mode: str, steps: int) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Each node's last metrics and the gradient (flat) it applied at each of its steps."""
    graph = _graph(kind, mode)
    grads: dict[str, list[torch.Tensor]] = {}
    for name, node in graph.nodes.items():
        if node.optimizer is None:
            continue

        def capture(node: Any = node, name: str = name) -> None:
            flat = [
                torch.zeros(p.numel()) if p.grad is None else p.grad.detach().flatten()
                for p in node.trainable_parameters()
            ]
            grads.setdefault(name, []).append(torch.cat(flat))

        node.grad_callback = capture  # after backward, before the optimizer step
    for _ in range(steps):
        graph.step()
    return {name: dict(node.last_metrics) for name, node in graph.nodes.items()}, grads


@pytest.mark.parametrize(
    ("kind", "steps", "loss_tol", "grad_tol", "min_cosine"),
    [
        ("mae", 1, 0.01, 0.03, 0.999),
        ("metamae", 1, 0.01, 0.03, 0.999),
        ("mlo", 2, 0.05, 0.25, 0.97),
    ],
)
def test_bf16_is_close_to_fp32(
    kind: str, steps: int, loss_tol: float, grad_tol: float, min_cosine: float
) -> None:
    metrics32, grads32 = _stepped(kind, "fp32", steps)
    metrics16, grads16 = _stepped(kind, "bf16", steps)
    for name, terms in metrics32.items():
        for term in ("loss", "support", "reconstruction"):
            if term in terms:
                assert metrics16[name][term] == pytest.approx(terms[term], rel=loss_tol), (
                    name,
                    term,
                )
    assert set(grads16) == set(grads32) and grads32
    for name, per_step in grads32.items():
        assert len(grads16[name]) == len(per_step) > 0
        for a, b in zip(per_step, grads16[name], strict=True):
            assert a.dtype == b.dtype == torch.float32  # fp32 gradients of fp32 master weights
            assert float((a - b).norm() / a.norm()) <= grad_tol, name
            assert float(torch.nn.functional.cosine_similarity(a, b, 0)) >= min_cosine, name


def test_bf16_forward_passes_and_fp32_second_order_parts() -> None:
    """The autocast boundary: the encoder and the outer (query) decoding run in bf16; the
    support decoding, its latent gradient and the adapted latent are fp32."""
    graph = _graph("metamae", "bf16")
    mae = graph.mae
    seen: dict[str, list[torch.dtype]] = {"encoder": [], "decoder": []}
    mae.encoder.blocks[0].mlp.fc1.register_forward_hook(
        lambda m, i, out: seen["encoder"].append(out.dtype)
    )
    mae.decoder.head.register_forward_hook(lambda m, i, out: seen["decoder"].append(out.dtype))
    graph.step()
    assert seen["encoder"] == [torch.bfloat16]
    # support pass (in the adapt node's solver), then the query pass (reconstruct's step)
    assert seen["decoder"] == [torch.float32, torch.bfloat16]
    task = graph.nodes["adapt"].task  # type: ignore[attr-defined]
    assert task.adapted.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in mae.parameters())
    state = graph.nodes["reconstruct"].optimizer.state  # type: ignore[union-attr]
    assert all(v.dtype == torch.float32 for s in state.values() for v in s.values() if v.ndim)


def test_full_precision_switches_autocast_and_tf32_off() -> None:
    with precision.autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        with precision.full_precision():
            assert precision.in_full_precision() and not torch.is_autocast_enabled("cpu")
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
            with precision.autocast(CPU, "bf16"):  # a node's loss re-evaluated by an estimator
                assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cpu") and not precision.in_full_precision()
    with precision.autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_fp16_overflow_skips_the_step_and_logs_it(tmp_path: Path) -> None:
    graph = _graph("mae", "fp16", steps=2, log_every=1)
    node = graph.nodes["reconstruct"]
    assert isinstance(node.scaler, torch.amp.GradScaler)
    node.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # scaled fp16 grads overflow
    before = [p.detach().clone() for p in node.trainable_parameters()]
    graph.step()
    assert node.skipped == 1 and node.last_metrics["overflow"] == 1.0
    assert node.last_metrics["loss_scale"] == 2.0**40
    assert node.scaler.get_scale() == 2.0**39  # halved after the overflow
    assert all(torch.equal(a, p) for a, p in zip(before, node.trainable_parameters(), strict=True))
    assert not node.optimizer.state  # type: ignore[union-attr]  # no Adam moments either
    assert node.state_dict()["scaler"]["scale"] == 2.0**39  # a resumed run continues from it

    node.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)  # a scale that fits
    summary = Trainer(graph, graph.context.spec, tmp_path, progress=False).run()
    assert node.skipped == 1 and "overflow" not in node.last_metrics
    assert node.last_metrics["loss_scale"] == 2.0**8
    assert not all(
        torch.equal(a, p) for a, p in zip(before, node.trainable_parameters(), strict=True)
    )
    assert summary.skipped == {"reconstruct": 1}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["loss_scale"] for row in rows] == [2.0**8, 2.0**8]


def test_precision_is_recorded_in_results_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metamask.run import run_spec

    bundle = tiny_bundle("image2d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = tiny_spec(MAE_GRAPH, train={"steps": 2, "precision": "bf16"}, eval={"enabled": False})
    run_spec(spec, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["precision"] == "bf16" and saved["spec"]["train"]["precision"] == "bf16"


def test_the_precision_flag_sets_the_spec() -> None:
    from metamask.cli import build_parser

    args = build_parser().parse_args(["run", "x.yaml", "--precision", "bf16"])
    assert args.precision == "bf16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "x.yaml", "--precision", "fp8"])


# -- on a GPU (benchmarks/gpu_check.sh) ---------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_gpu_metamae_second_order_and_mlomae_step(mode: str) -> None:
    """Double backward through the decoder next to fused attention; fp16 scalers on CUDA."""
    cuda = torch.device("cuda")
    for kind in ("metamae", "mlo"):
        graph = _graph(kind, mode, cuda)
        for _ in range(2):
            graph.step()
        for node in graph.nodes.values():
            assert all(torch.isfinite(p).all() for p in node.trainable_parameters())
            if mode == "fp16" and node.trainable_parameters():
                assert node.scaler is not None


@pytest.mark.gpu
def test_gpu_common_random_numbers_replay_cuda_draws() -> None:
    from metamask.hypergrad.autodiff import common_random_numbers

    cuda = torch.device("cuda")
    with common_random_numbers(cuda) as replay:
        replay()
        first = torch.nn.functional.dropout(torch.ones(1000, device=cuda), 0.5)
        replay()
        second = torch.nn.functional.dropout(torch.ones(1000, device=cuda), 0.5)
    assert torch.equal(first, second)


@pytest.mark.gpu
def test_gpu_checkpoint_rng_state_restores_cuda_draws() -> None:
    from metamask.seeding import rng_state, set_rng_state

    state = rng_state()
    first = torch.rand(8, device="cuda")
    set_rng_state(state)
    assert torch.equal(first, torch.rand(8, device="cuda"))


@pytest.mark.gpu
def test_gpu_loader_pins_and_moves_batches() -> None:
    graph = _graph("mae", "fp32", torch.device("cuda"))
    loader = graph.nodes["reconstruct"].loaders[0]
    assert loader.pin_memory
    x = next(iter(loader))[0]
    assert x.device.type == "cuda"
    assert precision._tf32_flags() == ["tf32", "tf32"]  # fp32 asked on CUDA: TF32 matmuls


def test_gpu_tests_skip_cleanly_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the gpu tests run instead of skipping")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs",
         __file__],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 skipped" in proc.stdout and "needs a CUDA device" in proc.stdout
    assert "passed" not in proc.stdout and "failed" not in proc.stdout


def test_the_loss_scale_floor_stops_on_the_scaler_itself() -> None:
    """check_loss_scale: a scale at the floor trains on, one below it stops in one line."""
    precision.check_loss_scale(
        torch.amp.GradScaler("cpu", init_scale=precision.MIN_LOSS_SCALE), "n", 3
    )
    low = torch.amp.GradScaler("cpu", init_scale=precision.MIN_LOSS_SCALE / 2)
    with pytest.raises(LossScaleError, match=r"node 'n', local step 3: .* below the floor 1 ") as e:
        precision.check_loss_scale(low, "n", 3)
    assert e.value.exit_code == 3 and "\n" not in str(e.value)
    assert not isinstance(e.value, NonFiniteError)  # on_nonfinite: skip must not swallow it


# a node type whose fp16 gradients overflow at every loss scale: the loss is finite (fp32), but
# its gradient, 1e6 x the scale, passes back through the fp16 output of an autocast Linear
OVERFLOW_NODE = """
import dataclasses
import torch
from metamask.nodes.custom import custom_builder
from metamask.nodes.registry import register_node_type

@dataclasses.dataclass(frozen=True)
class Options:
    pass

@register_node_type("overflow", Options, "test: fp16 gradients overflow on every step")
def build(ctx, name, spec):
    ctx.options(Options, spec, name)
    module = torch.nn.Linear(4, 4)
    x = torch.ones(3, 4)
    return custom_builder(module, lambda batch: module(x).float().sum() * 1e6, None)(
        ctx, name, spec
    )
"""


@pytest.mark.parametrize("on_nonfinite", ["stop", "skip"])
def test_a_persistent_fp16_overflow_stops_the_run_and_keeps_its_checkpoint(
    tmp_path: Path, on_nonfinite: str
) -> None:
    """`metamask run`: the scale halves from 2^16 on each of 17 overflows; below the floor the
    run stops (exit 3, one line naming the node and step) with the step-15 checkpoint kept."""
    (tmp_path / "overflow_node.py").write_text(OVERFLOW_NODE)
    spec = {
        "name": "overflow",
        "imports": ["overflow_node"],
        "data": {"dataset": "wine", "batch_size": 8},
        "graph": {"nodes": {"w": {"type": "overflow", "optimizer": {"lr": 1e-3}}}},
        "train": {
            "steps": 40,
            "precision": "fp16",
            "checkpoint_every": 5,
            "log_every": 1,
            "threads": 1,
            "on_nonfinite": on_nonfinite,
        },
        "eval": {"enabled": False},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "metamask", "run", "spec.yaml", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "node 'w', local step 17: the fp16 gradients overflowed" in lines[0]
    assert "(engine step 17); stopped: the last good checkpoint is" in lines[0]
    assert "(step 15)" in lines[0] and "on_nonfinite" not in lines[0]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 15  # nothing written from the overflowed state
    assert state["nodes"]["w"]["scaler"]["scale"] == 2.0**16 / 2**15
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["overflow"] == 1.0 for row in rows)
    assert [row["loss_scale"] for row in rows] == [2.0 ** (16 - i) for i in range(16)]

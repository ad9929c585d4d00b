"""benchmarks/gpu_check.sh: its flags, and its --dry-run (the benchmark's code path on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("mae", "metamae2", "metamae1", "mlomae")


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


def _dry_run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "gpu_check.json"
    proc = _check("--dry-run", *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DRY RUN" in proc.stdout and f"written: {out}" in proc.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_help_lists_the_flags_and_bad_flags_are_refused_before_installing() -> None:
    shown = _check("--help")
    assert shown.returncode == 0
    for flag in ("--dry-run", "--skip-install", "--batch", "--peak-tflops", "--out"):
        assert flag in shown.stdout
    bad = _check("--batch", "0")
    assert bad.returncode == 2 and "--batch 0: expected a positive integer" in bad.stderr
    unknown = _check("--dry-run", "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr


@pytest.mark.skipif(
    torch.cuda.is_available() or shutil.which("nvidia-smi") is not None,
    reason="a GPU is here: the script would install and benchmark",
)
def test_without_a_gpu_it_stops_before_installing() -> None:
    proc = _check("--skip-tests")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gpu_check.sh: no NVIDIA GPU found (nvidia-smi); on a CPU use --dry-run"
    )
    assert proc.stdout == ""  # nothing installed, nothing run


def test_dry_run_writes_every_variant_and_precision_with_flops_and_mfu(tmp_path: Path) -> None:
    peak = 0.01  # TFLOP/s: a stated CPU peak, so that MFU is computed
    result = _dry_run(tmp_path, "--groups", "vit-b16", "--peak-tflops", str(peak))
    rows = {(row["variant"], row["precision"]): row for row in result["rows"]}
    assert set(rows) == {(v, p) for v in VARIANTS for p in ("fp32", "bf16")}
    assert "FlopCounterMode" in result["flop_count_method"]
    assert result["peaks"]["bf16"] == {"tflops": peak, "source": f"--peak-tflops {peak:g}"}
    for (variant, prec), row in rows.items():
        assert "error" not in row
        seconds = row["seconds_per_step"]
        assert seconds > 0 and row["peak_memory_mib"] > 0
        pretrain_batches = 2 if variant == "mlomae" else 1  # a cycle: two pretrain steps
        assert row["samples_per_s"] == pytest.approx(row["batch"] * pretrain_batches / seconds)
        assert row["mfu"] == pytest.approx(row["flops_per_step"] / seconds / (peak * 1e12))
        assert row["ratio_to_mae"] == pytest.approx(seconds / rows["mae", prec]["seconds_per_step"])
        assert (row["bf16_speedup"] is None) == (prec == "fp32")
        assert row["meets_target"] is None  # a GPU target: not judged on a CPU
    for prec in ("fp32", "bf16"):
        flops = {v: rows[v, prec]["flops_per_step"] for v in VARIANTS}
        # second order re-decodes and differentiates twice; a cycle holds two pretrain steps
        assert flops["mae"] > 0 and flops["metamae2"] > flops["metamae1"] > flops["mae"]
        assert flops["mlomae"] > 2 * flops["mae"]
        # attention is counted: on a dry run's short CPU sequences it is the math path's bmm
        ops = rows["mae", prec]["flops_by_op"]
        assert any(op.endswith("bmm") and n > 0 for op, n in ops.items())
    assert rows["metamae2", "fp32"]["target"] == 1.4


@pytest.mark.slow
def test_dry_run_covers_both_backbones_and_says_why_mfu_is_missing(tmp_path: Path) -> None:
    result = _dry_run(tmp_path)
    keys = {(row["group"], row["variant"], row["precision"]) for row in result["rows"]}
    assert keys == {
        (g, v, p) for g in ("dabs", "vit-b16") for v in VARIANTS for p in ("fp32", "bf16")
    }
    assert all(row["seconds_per_step"] > 0 and row["mfu"] is None for row in result["rows"])
    assert result["peaks"]["fp32"]["tflops"] is None
    assert "--peak-tflops" in result["peaks"]["fp32"]["source"]


def test_the_fused_cpu_attention_kernel_is_counted_as_attention() -> None:
    """Long CPU sequences take the fused kernel; the formula gpu_bench registers counts it as
    4 B H L^2 d forward (two products) and 10 B H L^2 d backward (five: the flash backward
    recomputes the scores)."""
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_bench import count_cpu_attention
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    count_cpu_attention()
    b, h, length, d = 2, 3, 100, 8
    q, k, v = (torch.randn(b, h, length, d, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward()
    assert counter.get_total_flops() == (4 + 10) * b * h * length**2 * d

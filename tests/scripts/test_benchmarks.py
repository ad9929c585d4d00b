"""The benchmark scripts still run and write the JSON their docs quote (tiny models, one step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_step_time_writes_every_variant_with_its_ratio_and_peak_memory(tmp_path: Path) -> None:
    args = ["--backbone", "tiny", "--configs", "cifar-like (3,32,32) p4 b32 m.75"]
    args += ["--steps", "1", "--warmup", "0", "--rounds", "1", "--threads", "1"]
    result = _run("step_time.py", *args, out=tmp_path / "s.json")
    rows = {row["variant"]: row for row in result["rows"]}
    assert set(rows) == {"plain", "mae", "metamae2", "metamae1"} | {
        "mae-eager", "mae-dropout", "mae-adamw", "mae-attention", "metamae2-eager"
    }  # fmt: skip
    assert all(row["seconds_per_step"] > 0 for row in rows.values())
    assert all(row["peak_rss_mib"] > 0 for row in rows.values())
    # what autograd keeps: MetaMAE's second order keeps the support pass's graph as well
    saved = {v: row["saved_for_backward_mib"] for v, row in rows.items()}
    assert 0 < saved["mae"] < saved["metamae1"] < saved["metamae2"]
    assert rows["metamae2"]["ratio"] > 0 and rows["metamae2"]["target"] == 1.5
    # issue 17: every row against the step before it, with its targets
    assert rows["mae-eager"]["ratio_to_eager_mae"] == 1.0
    assert rows["metamae2"]["ratio_to_eager_mae"] > 0 and rows["metamae2"]["eager_target"] == 1.0
    assert rows["mae"]["eager_target"] == 0.7 and rows["mae-dropout"]["ratio_to"] == "mae-eager"


def test_step_floor_splits_each_step_into_its_matmuls_and_the_rest(tmp_path: Path) -> None:
    args = ["--backbone", "tiny", "--configs", "cifar-like (3,32,32) p4 b32 m.75"]
    args += ["--steps", "1", "--warmup", "1", "--rounds", "1", "--threads", "1"]
    result = _run("step_floor.py", *args, out=tmp_path / "f.json")
    rows = {row["variant"]: row for row in result["rows"]}
    assert set(rows) == {"mae-eager", "mae", "metamae2-eager", "metamae2", "metamae1"}
    for row in rows.values():
        assert 0 < row["floor_s"] < row["step_s"]  # the replayed matmuls are part of the step
        assert row["rest_s"] == pytest.approx(row["step_s"] - row["floor_s"])
    # MetaMAE's second order adds the support decoding and the double backward's products
    assert rows["metamae2"]["gflop_per_step"] > rows["metamae1"]["gflop_per_step"]
    assert rows["metamae1"]["gflop_per_step"] > rows["mae"]["gflop_per_step"]
    metamae2 = rows["metamae2"]
    assert metamae2["target"] == 1.0
    assert metamae2["rest_budget"] == pytest.approx(1.0 - metamae2["x_yardstick"]["floor"])


def test_step_floor_counts_the_flops_of_each_recorded_product() -> None:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from step_floor import _flops, _record_matmuls
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    x, y = torch.randn(2, 6, 7), torch.randn(2, 7, 8)
    bias = torch.randn(5)

    def step() -> None:
        _ = a @ b, torch.bmm(x, y), torch.addmm(bias, a, b), torch.relu(a)

    calls = _record_matmuls(step)
    assert [str(c[0]) for c in calls] == [
        "aten.mm.default",
        "aten.bmm.default",
        "aten.addmm.default",
    ]
    assert calls[1][1][0].shape == x.shape and calls[1][1][0].stride() == x.stride()
    assert _flops(calls) == 2 * (3 * 4 * 5 + 2 * 6 * 7 * 8 + 3 * 4 * 5)


def test_mlomae_step_time_splits_the_cycle_and_the_mask_step(tmp_path: Path) -> None:
    args = ["--configs", "tiny", "--steps", "1", "--warmup", "1", "--rounds", "1"]
    args += ["--threads", "1", "--no-memory", "--variants", "darts", "darts+head-first-order"]
    result = _run("mlomae_step_time.py", *args, out=tmp_path / "m.json")
    rows = {row["variant"]: row for row in result["rows"]}
    assert set(rows) == {"mae", "darts", "darts+head-first-order"}
    darts = rows["darts"]
    assert darts["ratio_to_mae_step"] > 1  # a cycle holds two MAE-sized pretrain steps
    assert set(darts["levels_in_mae_steps"]) == {"pretrain", "head", "mask"}
    parts = darts["mask_parts_in_mae_steps"]
    assert parts["path vectors"] > 0 and parts["pretrain-edge estimator"] > 0
    mask_step = darts["levels_in_mae_steps"]["mask"]
    assert sum(parts.values()) < mask_step  # parts of the mask step, not more than it


def test_step_time_times_bf16_beside_fp32(tmp_path: Path) -> None:
    args = ["--backbone", "tiny", "--configs", "cifar-like (3,32,32) p4 b32 m.75"]
    args += ["--steps", "1", "--warmup", "0", "--rounds", "1", "--threads", "1", "--no-memory"]
    args += ["--variants", "mae", "metamae2", "--precisions", "fp32", "bf16"]
    result = _run("step_time.py", *args, out=tmp_path / "s.json")
    rows = {(row["variant"], row["precision"]): row for row in result["rows"]}
    assert set(rows) == {(v, p) for v in ("mae", "metamae2") for p in ("fp32", "bf16")}
    for prec in ("fp32", "bf16"):  # each precision's ratio to its own MAE
        assert rows["metamae2", prec]["ratio"] > 0 and rows["metamae2", prec]["ratio_to"] == "mae"


@pytest.mark.slow
def test_hypergrad_nested_part_writes_exact_and_approximate_rows(tmp_path: Path) -> None:
    """Part 3 on the small nested problem: exact estimators at rounding error, Betty's partial
    composition far off, the total HVP dearer than the partial one."""
    args = ["--nested-only", "--quick", "--calls", "1", "--threads", "1"]
    result = _run("hypergrad.py", *args, out=tmp_path / "h.json")
    rows = {row["estimator"]: row for row in result["nested"]["estimators"]}
    assert rows["cg K=n_v"]["rel_error"] < 1e-10 and rows["implicit_cg"]["rel_error"] < 1e-10
    assert rows["cg K=n_v, approximate"]["rel_error"] > 0.1
    assert all(row["seconds"] > 0 for row in rows.values())
    assert result["nested"]["hvp"][0]["ratio"] > 1

"""How far each step is from its matrix-product floor: the step's own matmuls replayed alone.

    python benchmarks/step_floor.py                   # dabs backbone, 2 threads, 3 configs
    python benchmarks/step_floor.py --rounds 1 --steps 4        # a quick look

Why: issue 17 asks for a MetaMAE step at the price of the MAE step before it, and an MAE step at
0.7 x that. A step is matrix products (``mm``, ``addmm``, ``bmm``: the Linear layers, attention
scores, their backward and MetaMAE's double backward) plus everything else (dropout, GELU,
LayerNorm, softmax, copies, the optimizer, Python and autograd). This benchmark records every
matrix product one step of a variant runs (shapes, strides, scalars) with a dispatch mode, then
times that list replayed back to back on warm inputs: the time the step's matmuls take on this
machine at best. ``floor`` is that replay; ``rest`` = step - floor. A target ratio below a
variant's floor / ``mae-eager`` cannot be met by any change that keeps the step's arithmetic.

Per config and round, one fresh child builds every variant (``benchmarks/step_time.py``'s
builders), records the matmuls of one step each, then times steps and replays interleaved
(step A, replay A, step B, replay B, ...). Cells are medians over rounds of per-round medians;
ratios are taken within a round. FLOPs count 2 per multiply-add, matmuls only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import spawn, write_results
from step_time import CONFIGS, VARIANTS

DEFAULT_VARIANTS = ("mae-eager", "mae", "metamae2-eager", "metamae2", "metamae1")
YARDSTICK = "mae-eager"  # issue 17's targets are ratios to this step
TARGETS = {"mae": 0.7, "metamae2": 1.0}


def _record_matmuls(step: Callable[[], None]) -> list[tuple[Any, list[Any], dict[str, Any]]]:
    """Run ``step`` once; return each matrix product it dispatched as (op, args, kwargs),
    tensors replaced by fresh tensors of the same shape, strides and dtype."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}
    calls: list[tuple[Any, list[Any], dict[str, Any]]] = []

    def clone(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            fresh = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype)
            return fresh.normal_() if fresh.is_floating_point() else fresh.zero_()
        return value

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func in ops:
                calls.append((func, [clone(a) for a in args], dict(kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Recorder():
        step()
    return calls


def _flops(calls: list[tuple[Any, list[Any], dict[str, Any]]]) -> float:
    """2 x multiply-adds of the recorded products."""
    total = 0.0
    for func, args, _ in calls:
        a, b = (args[1], args[2]) if "addmm" in str(func) else (args[0], args[1])
        batch = a.shape[0] if a.dim() == 3 else 1
        total += 2.0 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
    return total


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Record each variant's matmuls, then time its steps and their replays interleaved."""
    import torch
    from step_time import build_step

    torch.set_num_threads(payload["threads"])
    torch.manual_seed(0)
    config = CONFIGS[payload["config"]]
    args = {"backbone": payload["backbone"], "device": "cpu", "precision": "fp32"}
    steps = {v: build_step(config, v, args) for v in payload["variants"]}
    for _ in range(payload["warmup"]):
        for step in steps.values():
            step()
    recorded = {v: _record_matmuls(step) for v, step in steps.items()}

    def replay(calls: list[tuple[Any, list[Any], dict[str, Any]]]) -> None:
        for func, call_args, kwargs in calls:
            func(*call_args, **kwargs)

    step_s: dict[str, list[float]] = {v: [] for v in steps}
    floor_s: dict[str, list[float]] = {v: [] for v in steps}
    for _ in range(payload["steps"]):
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            step_s[variant].append(time.perf_counter() - start)
            start = time.perf_counter()
            replay(recorded[variant])
            floor_s[variant].append(time.perf_counter() - start)
    return {
        "step_s": {v: statistics.median(t) for v, t in step_s.items()},
        "floor_s": {v: statistics.median(t) for v, t in floor_s.items()},
        "matmuls": {v: len(c) for v, c in recorded.items()},
        "gflop": {v: _flops(c) / 1e9 for v, c in recorded.items()},
    }


def _rows(config: str, variants: list[str], rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for variant in variants:
        step = [rd["step_s"][variant] for rd in rounds]
        floor = [rd["floor_s"][variant] for rd in rounds]
        row: dict[str, Any] = {
            "config": config,
            "variant": variant,
            "step_s": statistics.median(step),
            "floor_s": statistics.median(floor),
            "rest_s": statistics.median(s - f for s, f in zip(step, floor, strict=True)),
            "matmuls_per_step": rounds[0]["matmuls"][variant],
            "gflop_per_step": rounds[0]["gflop"][variant],
            "floor_gflop_per_s": statistics.median(rounds[0]["gflop"][variant] / f for f in floor),
            "target": TARGETS.get(variant),
        }
        if YARDSTICK in variants:
            base = [rd["step_s"][YARDSTICK] for rd in rounds]
            per_round = {
                "step": [s / b for s, b in zip(step, base, strict=True)],
                "floor": [f / b for f, b in zip(floor, base, strict=True)],
                "rest": [(s - f) / b for s, f, b in zip(step, floor, base, strict=True)],
            }
            row["x_yardstick_per_round"] = per_round
            row["x_yardstick"] = {k: statistics.median(v) for k, v in per_round.items()}
            target = row["target"]
            # the most the non-matmul part may cost for the target to hold, x the yardstick
            row["rest_budget"] = None if target is None else target - row["x_yardstick"]["floor"]
        rows.append(row)
    return rows


def _ratio_cell(row: dict[str, Any], part: str) -> str:
    """``part``'s ratio to the yardstick's step: the median, then each round's."""
    if "x_yardstick" not in row:
        return "-"
    per_round = ", ".join(f"{r:.2f}" for r in row["x_yardstick_per_round"][part])
    return f"{row['x_yardstick'][part]:.2f} ({per_round})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="fresh child processes per config")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default="dabs")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_floor.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # log files: never cut cells
    common = {k: getattr(args, k) for k in ("steps", "warmup", "threads", "backbone", "variants")}
    rows = []
    for config in args.configs:
        rounds = []
        for r in range(args.rounds):
            console.print(f"{config}: round {r + 1}/{args.rounds}", style="dim")
            rounds.append(spawn(__file__, {**common, "config": config}))
        rows.extend(_rows(config, args.variants, rounds))
    table = Table(
        title=f"step vs its matmul floor ({args.backbone} backbone, cpu, {args.threads} threads)",
        title_justify="left",
    )
    columns = ("config", "variant", "s/step", "floor s", "rest s", "GFLOP", "floor GFLOP/s")
    columns += (f"step x {YARDSTICK}", "floor x", "rest x", "target", "rest budget x")
    for col in columns:
        table.add_column(col, no_wrap=col != "config")
    for row in rows:
        budget = row.get("rest_budget")
        table.add_row(
            row["config"],
            row["variant"],
            f"{row['step_s']:.4f}",
            f"{row['floor_s']:.4f}",
            f"{row['rest_s']:.4f}",
            f"{row['gflop_per_step']:.1f}",
            f"{row['floor_gflop_per_s']:.0f}",
            _ratio_cell(row, "step"),
            _ratio_cell(row, "floor"),
            _ratio_cell(row, "rest"),
            "-" if row["target"] is None else f"<= {row['target']}",
            "-" if budget is None else f"{budget:.2f}",
        )
    console.print(table)
    write_results(args, rows)
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MLO-MAE step time and peak memory vs one MAE step (``step_time.py --mlomae`` runs this).

    python benchmarks/mlomae_step_time.py                        # small config, 2 CPU threads
    python benchmarks/mlomae_step_time.py --configs published --batch 8 --steps 2 --rounds 1
    python benchmarks/mlomae_step_time.py --device cuda --configs small published

A cycle is what MLO-MAE does per pair of engine iterations at unroll steps 2/1/1: two
pretrain steps, one head step, one mask step (all three levels). Timing: per round one
fresh child process builds the MAE baseline and every MLO-MAE variant on random data and runs
them interleaved (one MAE step, then one cycle of each variant, repeated), so that all see the
same machine load; a cell is the median over rounds of the per-round median, ratios are taken
within a round. The per-level columns split the cycle by node (each node's own step,
hypergradients included: the mask step holds the estimators' work). Memory: each variant runs
alone in its own child, whose peak resident set (VmHWM) or CUDA peak is reported.
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

from bench_common import peak_rss_mib, spawn, write_results

CONFIGS: dict[str, dict[str, Any]] = {
    # a smoke test of this script (tests/scripts/test_benchmarks.py), not a measurement
    "tiny": {
        "patch": [8, 8], "batch": 4,
        "encoder": {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "dropout": 0.0},
        "decoder": {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    },
    # issue 4's target config: patch 4, 192 wide, 6 layers, decoder 128 x 4, batch 32
    "small": {
        "patch": [4, 4], "batch": 32,
        "encoder": {"width": 192, "depth": 6, "heads": 3, "mlp_ratio": 4.0, "dropout": 0.0},
        "decoder": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 4.0},
    },
    # the authors' CIFAR-10 run: patch 2 (256 tokens), ViT-B, decoder 512 x 8, batch 128
    "published": {
        "patch": [2, 2], "batch": 128,
        "encoder": {"width": 768, "depth": 12, "heads": 12, "mlp_ratio": 4.0, "dropout": 0.0},
        "decoder": {"width": 512, "depth": 8, "heads": 16, "mlp_ratio": 4.0},
    },
}  # fmt: skip
# name -> (pretrain estimator, head estimator); every variant uses the published masker
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "darts": ({"type": "darts"}, {"type": "darts"}),  # as published
    "darts+exact-head": ({"type": "darts"}, {"type": "neumann", "iterations": 0}),
    "darts+head-first-order": ({"type": "darts"}, {"type": "first_order"}),
}
TARGET = 5.0  # issue 4: one darts cycle <= 5 MAE steps at the small config
LEVELS = ("pretrain", "head", "mask")


def graph_spec(variant: str) -> dict[str, Any]:
    """The published MLO-MAE graph (or the MAE baseline: the pretrain node with random masks)."""
    adamw = {"type": "adamw", "lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 1e-3}
    if variant == "mae":
        return {"nodes": {"pretrain": {"type": "reconstruct", "optimizer": adamw}}}
    pretrain_estimator, head_estimator = VARIANTS[variant]
    return {
        "nodes": {
            "pretrain": {
                "type": "pretrain",
                "unroll_steps": 2,
                "masker": {"type": "flat_mlp", "hidden": 512},
                "hypergradient": pretrain_estimator,
                "optimizer": {**adamw, "no_decay_bias_norm": True},
            },
            "head": {"type": "head", "hypergradient": head_estimator, "optimizer": adamw},
            "mask": {"type": "mask", "optimizer": adamw},
        },
        "u2l": {"mask": ["pretrain"]},
        "l2u": {"pretrain": ["head", "mask"], "head": ["mask"]},
    }


def build(config: dict[str, Any], variant: str, args: dict[str, Any]) -> Any:
    """The variant's graph on random CIFAR-shaped data (10 classes)."""
    import torch

    from metamask.compose import build_graph
    from metamask.config import spec_from_dict
    from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo

    batch = args.get("batch") or config["batch"]
    info = DatasetInfo("bench", "image2d", (3, 32, 32), tuple(config["patch"]), 10, "accuracy")
    n = batch * 8  # split B (20% of the labelled split) holds more than one batch
    data = ArrayDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,)))
    spec = spec_from_dict(
        {
            "name": "bench",
            "data": {"dataset": "bench", "batch_size": batch},
            "model": {
                "patch": config["patch"],
                "mask_ratio": 0.75,
                "norm_pix": True,
                "encoder": config["encoder"],
                "decoder": config["decoder"],
            },
            "graph": graph_spec(variant),
            "train": {"steps": 10**6, "device": args["device"]},
        }
    )
    graph = build_graph(spec, DataBundle(info, data, data, data), torch.device(args["device"]))
    graph.train()
    return graph


def timed_levels(graph: Any, sync: Callable[[], None]) -> dict[str, list[float]]:
    """Record the wall time of every node's own step (hypergradients included)."""
    spent: dict[str, list[float]] = {name: [] for name in graph.nodes}
    for name, node in graph.nodes.items():
        step = node.one_step_descent

        def timed(batch: Any = None, _step: Any = step, _name: str = name) -> Any:
            sync()
            start = time.perf_counter()
            out = _step(batch)
            sync()
            spent[_name].append(time.perf_counter() - start)
            return out

        node.one_step_descent = timed
    return spent


MASK_PARTS = ("path vectors", "pretrain-edge estimator")


def timed_mask_parts(
    sync: Callable[[], None],
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Time, per variant, the two hypergradient parts of the mask step.

    "path vectors": both paths' vectors on the pretrain node's parameters (the split-B loss's
    gradient through the encoder, and the head edge's estimator: one more encoder backward);
    "pretrain-edge estimator": the final estimator call onto the masker (darts: two
    evaluations of the pretraining loss). The rest of the mask step is the split-B forward
    and the masker's optimizer step. Set ``current[0]`` to the variant that steps next.
    """
    from metamask.hypergrad import paths

    spent: dict[str, dict[str, list[float]]] = {}
    current = [""]

    def timing(fn: Callable[..., Any], part: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            parts = spent.setdefault(current[0], {name: [] for name in MASK_PARTS})
            parts[part].append(time.perf_counter() - start)
            return out

        return timed

    vectors, estimator = MASK_PARTS
    paths.path_gradient = timing(paths.path_gradient, vectors)  # type: ignore[assignment]
    paths.apply_estimator = timing(paths.apply_estimator, estimator)  # type: ignore[assignment]
    return spent, current


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Time the MAE step and every variant's cycle interleaved, or run one alone (memory)."""
    import torch

    torch.set_num_threads(payload["threads"])
    torch.manual_seed(0)
    cuda = payload["device"].startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    config = CONFIGS[payload["config"]]
    graphs = {v: build(config, v, payload) for v in payload["variants"]}
    levels = {v: timed_levels(g, sync) for v, g in graphs.items() if v != "mae"}
    parts, current = timed_mask_parts(sync)
    times: dict[str, list[float]] = {v: [] for v in graphs}
    for i in range(payload["warmup"] + payload["steps"]):
        for variant, graph in graphs.items():
            iterations = 1 if variant == "mae" else 2  # a cycle: 2 engine iterations
            if i == payload["warmup"] and variant in levels:
                for spent in [*levels[variant].values(), *parts.get(variant, {}).values()]:
                    spent.clear()
            current[0] = variant
            sync()
            start = time.perf_counter()
            for _ in range(iterations):
                graph.step()
            sync()
            if i >= payload["warmup"]:
                times[variant].append(time.perf_counter() - start)
    steps = payload["steps"]
    return {
        "median_s": {v: statistics.median(t) for v, t in times.items()},
        "levels_s": {v: {n: sum(t) / steps for n, t in lv.items()} for v, lv in levels.items()},
        "mask_parts_s": {v: {n: sum(t) / steps for n, t in pt.items()} for v, pt in parts.items()},
        "vmhwm_mib": peak_rss_mib(),
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6, help="timed cycles per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="fresh child processes per config")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="override the config's batch")
    parser.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="V"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/mlomae_step_time.json")
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # log files: never cut cells
    common = {k: getattr(args, k) for k in ("steps", "warmup", "threads", "device", "batch")}
    variants = ["mae", *args.variants]
    rows = []
    for config in args.configs:
        rounds = []
        for r in range(args.rounds):
            console.print(f"{config}: timing round {r + 1}/{args.rounds}", style="dim")
            rounds.append(spawn(__file__, {**common, "config": config, "variants": variants}))
        memory = {}
        if not args.no_memory:
            for variant in variants:
                console.print(f"{config}: peak memory of {variant}", style="dim")
                memory[variant] = spawn(
                    __file__,
                    {**common, "steps": 1, "warmup": 1, "config": config, "variants": [variant]},
                )
        mae = statistics.median(rd["median_s"]["mae"] for rd in rounds)
        for variant in variants:
            seconds = statistics.median(rd["median_s"][variant] for rd in rounds)
            row: dict[str, Any] = {
                "config": config,
                "batch": args.batch or CONFIGS[config]["batch"],
                "variant": variant,
                "seconds": seconds,  # one MAE step, or one MLO-MAE cycle (2 engine iterations)
                "seconds_per_engine_iteration": seconds if variant == "mae" else seconds / 2,
                "peak_rss_mib": memory[variant]["vmhwm_mib"] if memory else None,
                "cuda_peak_mib": memory[variant]["cuda_peak_mib"] if memory else None,
            }
            if variant != "mae":
                ratios = [rd["median_s"][variant] / rd["median_s"]["mae"] for rd in rounds]
                row["ratio_to_mae_step"] = statistics.median(ratios)
                row["ratio_per_round"] = ratios
                row["levels_in_mae_steps"] = {
                    level: statistics.median(
                        rd["levels_s"][variant][level] / rd["median_s"]["mae"] for rd in rounds
                    )
                    for level in LEVELS
                }
                row["mask_parts_in_mae_steps"] = {
                    part: statistics.median(
                        rd["mask_parts_s"].get(variant, {}).get(part, 0.0) / rd["median_s"]["mae"]
                        for rd in rounds
                    )
                    for part in MASK_PARTS
                }
                if config == "small":
                    row["target"] = TARGET
                    row["meets_target"] = row["ratio_to_mae_step"] <= TARGET
            else:
                row["mae_step_seconds"] = mae
            rows.append(row)
    title = (
        f"MLO-MAE cycle (2 pretrain + 1 head + 1 mask step) vs one MAE step "
        f"({args.device}, {args.threads} threads)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("config", "variant", "s / cycle", "s / iteration", "x MAE step", "pretrain",
                "head", "mask", "peak MiB"):  # fmt: skip
        table.add_column(col, no_wrap=col in ("config", "variant"))
    for row in rows:
        lv = row.get("levels_in_mae_steps", {})
        peak = row["cuda_peak_mib"] if row["cuda_peak_mib"] is not None else row["peak_rss_mib"]
        ratio = "-"
        if "ratio_to_mae_step" in row:
            ratio = f"{row['ratio_to_mae_step']:.2f}"
            if "target" in row:
                ratio += " ok" if row["meets_target"] else f" (target {TARGET:g}: MISSED)"
        table.add_row(
            f"{row['config']} b{row['batch']}",
            row["variant"],
            f"{row['seconds']:.3f}",
            f"{row['seconds_per_engine_iteration']:.3f}",
            ratio,
            *(f"{lv[level]:.2f}" if lv else "-" for level in LEVELS),
            "-" if peak is None else f"{peak:.0f}",
        )
    console.print(table)
    console.print("pretrain / head / mask: each level's share of the cycle, in MAE steps")
    for row in rows:
        if "mask_parts_in_mae_steps" in row:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in row["mask_parts_in_mae_steps"].items())
            console.print(f"  {row['variant']} mask step: {parts}; the rest: split-B forward, step")
    write_results(args, rows)
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

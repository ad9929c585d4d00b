"""The cost of an exact masker gradient: one MLO-MAE cycle with ``unrolled`` vs ``darts``, per
window length K (pretraining steps per masker step), side by side in one run.

    python benchmarks/exact_window.py                         # small config, K = 1 2 4, 1 thread
    python benchmarks/exact_window.py --windows 2 --rounds 3 --threads 2
    python benchmarks/exact_window.py --configs tiny --windows 1 2 --steps 1 --warmup 0 --no-memory

A cycle at window K is K engine iterations: K pretrain steps (``unroll_steps: K``), one head
step, one mask step. ``darts`` is the published pair (darts on the pretrain and head edges);
``unrolled`` is the exact derivative of the split-B loss after the cycle (``unrolled`` on both
edges: the K pretrain steps and the head step keep their graphs until the mask step). Timing:
per round, one fresh child process per K builds both graphs on random CIFAR-shaped data and
steps them interleaved (a darts cycle, then an unrolled cycle, repeated), so both see the same
machine load; the ratio is taken within a round, then the median over rounds. The mask column
is the mask node's own step (where both estimators do their work). Memory: each (estimator, K)
runs alone in a child, whose peak resident set (VmHWM, or the CUDA peak) is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import peak_rss_mib, spawn, write_results
from mlomae_step_time import CONFIGS

ESTIMATORS: dict[str, dict[str, Any]] = {
    "darts": {"type": "darts"},
    "unrolled": {"type": "unrolled"},
}
WINDOWS = (1, 2, 4)
CUT_AT = 1.5  # the bar: an exact window above 1.5 x darts is worth cutting


def graph_spec(estimator: str, window: int) -> dict[str, Any]:
    """The published MLO-MAE graph at pretrain window ``window``, ``estimator`` on both edges."""
    adamw = {"type": "adamw", "lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 1e-3}
    edge = ESTIMATORS[estimator]
    return {
        "nodes": {
            "pretrain": {
                "type": "pretrain",
                "unroll_steps": window,
                "masker": {"type": "flat_mlp", "hidden": 512},
                "hypergradient": edge,
                "optimizer": {**adamw, "no_decay_bias_norm": True},
            },
            "head": {"type": "head", "hypergradient": edge, "optimizer": adamw},
            "mask": {"type": "mask", "optimizer": adamw},
        },
        "u2l": {"mask": ["pretrain"]},
        "l2u": {"pretrain": ["head", "mask"], "head": ["mask"]},
    }


def build(config: dict[str, Any], estimator: str, window: int, device: str) -> Any:
    """The graph on random CIFAR-shaped data (10 classes)."""
    import torch

    from metamask.compose import build_graph
    from metamask.config import spec_from_dict
    from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo

    batch = config["batch"]
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
            "graph": graph_spec(estimator, window),
            "train": {"steps": 10**6, "device": device},
        }
    )
    graph = build_graph(spec, DataBundle(info, data, data, data), torch.device(device))
    graph.train()
    return graph


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Time every estimator's cycle interleaved at one window, or run one alone (memory)."""
    import torch

    torch.set_num_threads(payload["threads"])
    torch.manual_seed(0)
    cuda = payload["device"].startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    config, window = CONFIGS[payload["config"]], payload["window"]
    graphs = {e: build(config, e, window, payload["device"]) for e in payload["estimators"]}
    mask_s: dict[str, list[float]] = {e: [] for e in graphs}
    for estimator, graph in graphs.items():  # time the mask node's own step
        node, spent = graph.nodes["mask"], mask_s[estimator]
        step = node.one_step_descent

        def timed(batch: Any = None, _step: Any = step, _spent: list[float] = spent) -> Any:
            sync()
            start = time.perf_counter()
            out = _step(batch)
            sync()
            _spent.append(time.perf_counter() - start)
            return out

        node.one_step_descent = timed
    times: dict[str, list[float]] = {e: [] for e in graphs}
    for i in range(payload["warmup"] + payload["steps"]):
        for estimator, graph in graphs.items():
            if i == payload["warmup"]:
                mask_s[estimator].clear()
            sync()
            start = time.perf_counter()
            for _ in range(window):  # one cycle: K engine iterations
                graph.step()
            sync()
            if i >= payload["warmup"]:
                times[estimator].append(time.perf_counter() - start)
    return {
        "median_s": {e: statistics.median(t) for e, t in times.items()},
        "mask_s": {e: statistics.median(t) if t else 0.0 for e, t in mask_s.items()},
        "vmhwm_mib": peak_rss_mib(),
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS), help="K")
    parser.add_argument("--steps", type=int, default=3, help="timed cycles per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="fresh child processes per K")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/exact_window.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if min(args.windows) < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("--windows, --steps and --rounds: expected integers >= 1")

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    common = {k: getattr(args, k) for k in ("steps", "warmup", "threads", "device")}
    estimators = list(ESTIMATORS)
    rows = []
    for config in args.configs:
        for window in args.windows:
            rounds = []
            for r in range(args.rounds):
                console.print(
                    f"{config} K={window}: timing round {r + 1}/{args.rounds}", style="dim"
                )
                payload = {**common, "config": config, "window": window, "estimators": estimators}
                rounds.append(spawn(__file__, payload))
            memory = {}
            if not args.no_memory:
                for estimator in estimators:
                    console.print(f"{config} K={window}: peak memory of {estimator}", style="dim")
                    payload = {**common, "steps": 1, "warmup": 1, "config": config}
                    payload.update(window=window, estimators=[estimator])
                    memory[estimator] = spawn(__file__, payload)
            ratios = [rd["median_s"]["unrolled"] / rd["median_s"]["darts"] for rd in rounds]
            row: dict[str, Any] = {"config": config, "batch": CONFIGS[config]["batch"]}
            row["window"] = window
            for estimator in estimators:
                row[f"{estimator}_s_per_cycle"] = statistics.median(
                    rd["median_s"][estimator] for rd in rounds
                )
                row[f"{estimator}_mask_step_s"] = statistics.median(
                    rd["mask_s"][estimator] for rd in rounds
                )
                if memory:
                    mem = memory[estimator]
                    peak = mem["cuda_peak_mib"] if mem["cuda_peak_mib"] is not None else None
                    row[f"{estimator}_peak_mib"] = peak if peak is not None else mem["vmhwm_mib"]
            row["ratio"] = statistics.median(ratios)
            row["ratio_per_round"] = ratios
            row["above_cut_at"] = row["ratio"] > CUT_AT
            rows.append(row)
            write_results(args, rows)  # after every K: a stopped run keeps what it measured
    title = (
        f"one MLO-MAE cycle at window K: unrolled (exact) vs darts "
        f"({args.device}, {args.threads} thread(s); CPU numbers: measured under load)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("config", "K", "darts s / cycle", "unrolled s / cycle", "unrolled / darts",
                "darts mask step s", "unrolled mask step s", "darts peak MiB",
                "unrolled peak MiB"):  # fmt: skip
        table.add_column(col, no_wrap=col in ("config", "K"))
    for row in rows:
        ratio = f"{row['ratio']:.2f}" + (f" (> {CUT_AT:g})" if row["above_cut_at"] else "")
        table.add_row(
            f"{row['config']} b{row['batch']}",
            str(row["window"]),
            f"{row['darts_s_per_cycle']:.3f}",
            f"{row['unrolled_s_per_cycle']:.3f}",
            ratio,
            f"{row['darts_mask_step_s']:.3f}",
            f"{row['unrolled_mask_step_s']:.3f}",
            *(f"{row[f'{e}_peak_mib']:.0f}" if f"{e}_peak_mib" in row else "-" for e in estimators),
        )
    console.print(table)
    write_results(args, rows)
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

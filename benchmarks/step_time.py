"""Seconds per training step and peak memory: MAE, MetaMAE (2nd / 1st order), MLO-MAE, plain loop.

    python benchmarks/step_time.py                       # the dabs backbone, 2 CPU threads
    python benchmarks/step_time.py --steps 5 --rounds 1  # a quick look
    python benchmarks/step_time.py --device cuda

Every measurement runs in a fresh child process (so peak memory, read from ``VmHWM`` in
/proc/self/status, belongs to that variant alone); variants are interleaved round by round so
that they see the same machine load, and each cell is the median over rounds of the median
step time within a round. Ratios are taken against the MAE step measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    # name: modality, input shape, patch, vocab, batch, mask ratio
    "pamap2-like (52,320) p5": {
        "modality": "signal1d",
        "shape": [52, 320],
        "patch": [5],
        "batch": 32,
        "mask": 0.85,
    },
    "cifar-like (3,32,32) p4": {
        "modality": "image2d",
        "shape": [3, 32, 32],
        "patch": [4, 4],
        "batch": 32,
        "mask": 0.75,
    },
    "dna tokens V=4 L=250": {
        "modality": "tokens",
        "shape": [250],
        "patch": [1],
        "vocab": 4,
        "batch": 16,
        "mask": 0.5,
    },
}
VARIANTS = ("plain", "mae", "metamae2", "metamae1")
TARGETS = {  # issue 3: MetaMAE second-order / MAE ratio per config, first-order, engine overhead
    "metamae2": [1.7, 1.5, 1.6],
    "metamae1": [1.2, 1.2, 1.2],
    "mae": [1.05, 1.05, 1.05],  # vs the plain loop
}


def child(
    config: dict[str, Any],
    variant: str,
    steps: int,
    warmup: int,
    device: str,
    threads: int,
    backbone: str,
) -> dict[str, Any]:
    """Run one variant in this process; returns step times and peak memory."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from metamask.config import spec_from_dict
    from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo
    from metamask.graph import build_graph, build_optimizer
    from metamask.models.mae import MaskedAutoencoder, masked_mean
    from metamask.models.masking import RandomMasker

    info = DatasetInfo(
        "bench",
        config["modality"],
        tuple(config["shape"]),
        tuple(config["patch"]),
        2,
        "accuracy",
        vocab_size=config.get("vocab", 0),
    )
    n = config["batch"] * 4
    if config["modality"] == "tokens":
        x = torch.randint(0, config["vocab"], (n, *config["shape"]))
    else:
        x = torch.randn(n, *config["shape"])
    data = ArrayDataset(x, torch.zeros(n, dtype=torch.long))
    bundle = DataBundle(info, data, data, data)
    optimizer = {"type": "adamw", "lr": 1e-4, "weight_decay": 1e-4}
    if variant in ("plain", "mae"):
        graph_spec = {"nodes": {"reconstruct": {"type": "reconstruct", "optimizer": optimizer}}}
    else:
        solver = "unrolled" if variant == "metamae2" else "first_order"
        graph_spec = {
            "nodes": {
                "adapt": {"type": "adapt", "inner_lr": 0.5, "hypergradient": {"type": solver}},
                "reconstruct": {"type": "reconstruct", "reg_weight": 0.1, "optimizer": optimizer},
            },
            "u2l": {"reconstruct": ["adapt"]},
            "l2u": {"adapt": ["reconstruct"]},
        }
    spec = spec_from_dict(
        {
            "name": "bench",
            "data": {"dataset": "bench", "batch_size": config["batch"]},
            "model": {"backbone": backbone, "mask_ratio": config["mask"]},
            "graph": graph_spec,
            "train": {"steps": steps + warmup, "device": device},
        }
    )
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if variant == "plain":
        model = MaskedAutoencoder(info, spec.model).to(dev)
        opt, _ = build_optimizer(model, spec.graph.nodes["reconstruct"].optimizer, steps)
        masker = RandomMasker(config["mask"])
        loader = torch.utils.data.DataLoader(
            data, batch_size=config["batch"], shuffle=True, drop_last=True
        )

        def batches():
            while True:
                yield from loader

        it = batches()

        def step() -> None:
            xb = next(it)[0].to(dev)
            tokens = model.embed(xb)
            masks = masker(tokens)
            pred = model.decode(model.encode(tokens, masks), masks)
            loss = masked_mean(model.token_losses(pred, model.targets(xb)), masks.mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # Betty reads the loss once per step too
    else:
        graph = build_graph(spec, bundle, dev)
        graph.train()
        step = graph.step  # type: ignore[assignment]
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak_kib = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {
        "median_s": statistics.median(times),
        "times": times,
        "vmhwm_mib": peak_kib / 1024,
        "cuda_peak_mib": cuda_peak,
    }


def measure(config_name: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    payload = json.dumps(
        {
            "config": CONFIGS[config_name],
            "variant": variant,
            "steps": args.steps,
            "warmup": args.warmup,
            "device": args.device,
            "threads": args.threads,
            "backbone": args.backbone,
        }
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--child", payload], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{config_name} / {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=15, help="timed steps per child")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="dabs")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_time.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        p = json.loads(args.child)
        print(
            json.dumps(
                child(
                    p["config"],
                    p["variant"],
                    p["steps"],
                    p["warmup"],
                    p["device"],
                    p["threads"],
                    p["backbone"],
                )
            )
        )
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for config_name in args.configs:
            for variant in args.variants:
                console.print(
                    f"round {r + 1}/{args.rounds}: {config_name} / {variant}", style="dim"
                )
                cells.setdefault((config_name, variant), []).append(
                    measure(config_name, variant, args)
                )
    rows = []
    for config_name in args.configs:
        mae = statistics.median(
            m["median_s"] for m in cells.get((config_name, "mae"), [{"median_s": float("nan")}])
        )
        for variant in args.variants:
            runs = cells[(config_name, variant)]
            sec = statistics.median(m["median_s"] for m in runs)
            base = (
                statistics.median(m["median_s"] for m in cells[(config_name, "plain")])
                if variant == "mae" and ("plain" in args.variants)
                else mae
            )
            ratio = sec / base if variant != "plain" else None
            target_list = TARGETS.get(variant)
            target = target_list[list(CONFIGS).index(config_name)] if target_list else None
            rows.append(
                {
                    "config": config_name,
                    "variant": variant,
                    "seconds_per_step": sec,
                    "ratio": ratio,
                    "ratio_of": "plain loop" if variant == "mae" else "mae",
                    "target": target,
                    "meets_target": None if target is None or ratio is None else ratio <= target,
                    "peak_rss_mib": max(m["vmhwm_mib"] for m in runs),
                    "cuda_peak_mib": runs[0]["cuda_peak_mib"],
                    "rounds": [m["median_s"] for m in runs],
                }
            )
    table = Table(
        title=f"seconds per training step ({args.backbone} backbone, {args.device}, {args.threads} threads)"
    )
    for col in ("config", "variant", "s/step", "ratio", "target", "peak RSS MiB"):
        table.add_column(col, no_wrap=col in ("config", "variant"))
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x {row['ratio_of']}"
        target = (
            "-"
            if row["target"] is None
            else f"<= {row['target']}" + (" ok" if row["meets_target"] else " MISSED")
        )
        table.add_row(
            row["config"],
            row["variant"],
            f"{row['seconds_per_step']:.4f}",
            ratio,
            target,
            f"{row['peak_rss_mib']:.0f}",
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: v for k, v in vars(args).items() if k != "out"}
                | {"out": str(args.out)},
                "rows": rows,
            },
            indent=2,
        )
    )
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per training step and peak memory of MAE, MetaMAE (2nd / 1st order) and a plain loop.

    python benchmarks/step_time.py                       # the dabs backbone, 2 CPU threads
    python benchmarks/step_time.py --steps 5 --rounds 1  # a quick look
    python benchmarks/step_time.py --device cuda
    python benchmarks/step_time.py --precisions fp32 bf16  # both, interleaved in each child
    python benchmarks/step_time.py --mlomae [...]     # MLO-MAE cycle vs MAE step (its own flags)

Variants: ``plain`` (the MAE step as a bare PyTorch loop), ``mae``, ``metamae2`` / ``metamae1``
(second / first order) as metamask runs them now; ``mae-eager`` and ``metamae2-eager``, the
steps before issue 17 (torch's ``bernoulli_`` dropout, the per-parameter AdamW loop, the fused
attention kernel at every sequence length), which every row is also compared with (issue 17's
targets: ``mae`` <= 0.7x, ``metamae2`` <= 1.0x ``mae-eager``); ``mae-dropout`` / ``mae-adamw`` /
``mae-attention``: ``mae-eager`` with one change each; and, when
asked with ``--variants``, ``*-compile`` (``train.compile``; the first step's extra seconds,
the compiling, are the ``1st +s`` column, never part of a timed step).

Timing: per config and round, one fresh child process builds every variant and runs them
interleaved step by step (A B C D A B C D ...), so that all variants see the same machine load;
a cell is the median over rounds of the per-round median step time, and ratios are taken within
a round before the median. Memory: each variant runs alone in its own child, whose peak resident
set (``VmHWM`` from /proc/self/status, not ``ru_maxrss``) is reported; and ``saved MiB``, what
autograd keeps for the backward in one step (every storage a saved tensor points into, once),
which shows activation changes too small for the resident set's noise.
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
    "pamap2-like (52,320) p5 b32 m.85": {
        "modality": "signal1d", "shape": [52, 320], "patch": [5], "batch": 32, "mask": 0.85,
    },
    "cifar-like (3,32,32) p4 b32 m.75": {
        "modality": "image2d", "shape": [3, 32, 32], "patch": [4, 4], "batch": 32, "mask": 0.75,
    },
    "dna V=4 L=250 b16 m.5": {
        "modality": "tokens", "shape": [250], "patch": [1], "vocab": 4, "batch": 16, "mask": 0.5,
    },
}  # fmt: skip
# "-eager" is the step as it was before issue 17: torch's bernoulli dropout, the
# per-parameter AdamW loop and the fused attention kernel at every length; "mae-dropout" /
# "mae-adamw" / "mae-attention" add one of the three changes to it
DEFAULT_VARIANTS = (
    "plain", "mae-eager", "mae-dropout", "mae-adamw", "mae-attention", "mae", "metamae2-eager",
    "metamae2", "metamae1",
)  # fmt: skip
# "-compile": train.compile on (not by default: every child compiles again, minutes on a CPU)
VARIANTS = (*DEFAULT_VARIANTS, "mae-compile", "metamae2-compile", "metamae1-compile")
BASELINE = {
    "plain": None, "mae": "plain", "metamae2": "mae", "metamae1": "mae",
    "mae-eager": "plain", "mae-dropout": "mae-eager", "mae-adamw": "mae-eager",
    "mae-attention": "mae-eager",
    "metamae2-eager": "mae-eager", "mae-compile": "mae", "metamae2-compile": "mae-compile",
    "metamae1-compile": "mae-compile",
}  # fmt: skip
EAGER = "mae-eager"  # issue 17's yardstick: every variant's ratio to it is reported too
# issue 3's targets, per config in CONFIGS order: ratio to BASELINE[variant]
TARGETS = {"mae": [1.05] * 3, "metamae2": [1.7, 1.5, 1.6], "metamae1": [1.2] * 3}
# issue 17's targets: ratio to today's eager MAE step
EAGER_TARGETS = {"mae": 0.7, "metamae2": 1.0}


def _before_issue_17(built: Any, keep: str) -> None:
    """Put back the step before issue 17 (torch's dropout, the per-parameter AdamW loop, the
    fused attention kernel at every sequence length), all but the change named ``keep``
    (``"dropout"``, ``"adamw"``, ``"attention"``; ``"eager"`` keeps none)."""
    from metamask.models.attention import Attention
    from metamask.models.dropout import use_fast_dropout

    if keep != "dropout":
        use_fast_dropout(built.mae, fast=False)
    if keep != "attention":
        for module in built.mae.modules():
            if isinstance(module, Attention):
                module.math_when_short = False
    if keep != "adamw":
        for node in built.nodes.values():
            for group in [] if node.optimizer is None else node.optimizer.param_groups:
                group["fused"] = None  # torch's default on a CPU: one small op at a time


def build_step(config: dict[str, Any], variant: str, args: dict[str, Any]) -> Callable[[], None]:
    """One training step of ``variant`` on random data of ``config``'s shape."""
    import torch

    from metamask import precision
    from metamask.compose import build_graph
    from metamask.config import spec_from_dict
    from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo
    from metamask.models.mae import MaskedAutoencoder
    from metamask.models.masking import RandomMasker
    from metamask.optim import build_optimizer

    info = DatasetInfo(
        "bench", config["modality"], tuple(config["shape"]), tuple(config["patch"]), 2,
        "accuracy", vocab_size=config.get("vocab", 0),
    )  # fmt: skip
    n, batch = config["batch"] * 4, config["batch"]
    if config["modality"] == "tokens":
        x = torch.randint(0, config["vocab"], (n, *config["shape"]))
    else:
        x = torch.randn(n, *config["shape"])
    data = ArrayDataset(x, torch.zeros(n, dtype=torch.long))
    optimizer = {"type": "adamw", "lr": 1e-4, "weight_decay": 1e-4}
    graph: dict[str, Any] = {
        "nodes": {"reconstruct": {"type": "reconstruct", "optimizer": optimizer}}
    }
    method, _, change = variant.partition("-")
    if method.startswith("metamae"):
        solver = "unrolled" if method == "metamae2" else "first_order"
        graph = {
            "nodes": {
                "adapt": {"type": "adapt", "inner_lr": 0.5, "latent_solver": {"type": solver}},
                "reconstruct": {"type": "reconstruct", "reg_weight": 0.1, "optimizer": optimizer},
            },
            "u2l": {"reconstruct": ["adapt"]},
            "l2u": {"adapt": ["reconstruct"]},
        }
    spec = spec_from_dict(
        {
            "name": "bench",
            "data": {"dataset": "bench", "batch_size": batch},
            "model": {"backbone": args["backbone"], "mask_ratio": config["mask"]},
            "graph": graph,
            "train": {
                "steps": 10**6,
                "device": args["device"],
                "precision": args["precision"],
                "compile": change == "compile",
            },
        }
    )
    device = torch.device(args["device"])
    if variant != "plain":
        built = build_graph(spec, DataBundle(info, data, data, data), device)
        built.train()
        if change in ("eager", "dropout", "adamw", "attention"):
            _before_issue_17(built, keep=change)

        def graph_step() -> None:
            built.step()

        return graph_step
    # the same MAE step as a plain PyTorch loop, without Betty
    model = MaskedAutoencoder(info, spec.model).to(device).train()
    node = spec.graph.nodes["reconstruct"]
    assert node.optimizer is not None
    opt, _ = build_optimizer(model, node.optimizer, 1, fused=device.type == "cpu")
    masker = RandomMasker(config["mask"])
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
    batches = iter(())

    def step() -> None:
        nonlocal batches
        try:
            xb = next(batches)[0]
        except StopIteration:
            batches = iter(loader)
            xb = next(batches)[0]
        xb = xb.to(device)
        with precision.autocast(device, args["precision"]):
            tokens = model.embed(xb)
            masks = masker(tokens)
            latent = model.encode(tokens, masks)
            loss = model.reconstruction_loss(latent, masks, model.targets(xb), masks.mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # Betty reads the loss once per step too

    return step


def saved_for_backward_mib(step: Callable[[], None]) -> float:
    """MiB that autograd keeps for the backward during one more ``step``: every distinct
    storage a saved tensor points into (weights included), counted once. Unlike the peak
    resident set it does not depend on the allocator, so activation changes of a few MiB show.
    """
    import torch

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values()) / 2**20


def child(payload: dict[str, Any]) -> dict[str, Any]:
    """Time the variants interleaved (mode "time") or run one alone for its peak memory."""
    import torch

    torch.set_num_threads(payload["threads"])
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if payload["device"].startswith("cuda") else (lambda: None)
    config = CONFIGS[payload["config"]]
    steps = {
        f"{v}@{p}": build_step(config, v, {**payload, "precision": p})
        for p in payload["precisions"]
        for v in payload["variants"]
    }
    times: dict[str, list[float]] = {v: [] for v in steps}
    first: dict[str, float] = {}
    for i in range(payload["warmup"] + payload["steps"]):
        for variant, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i == 0:  # compiling happens here (train.compile): reported apart, never timed
                first[variant] = time.perf_counter() - start
            if i >= payload["warmup"]:
                times[variant].append(time.perf_counter() - start)
    return {
        "median_s": {v: statistics.median(t) for v, t in times.items()},
        # one more step each, in the first timing round only (the table reads that round's)
        "saved_mib": {v: saved_for_backward_mib(step) for v, step in steps.items()}
        if payload.get("count_saved")
        else {},
        "first_step_s": first,
        "vmhwm_mib": peak_rss_mib(),
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
    }


def main() -> int:
    if "--mlomae" in sys.argv[1:]:  # MLO-MAE's section: benchmarks/mlomae_step_time.py
        from mlomae_step_time import main as mlomae_main

        return mlomae_main([arg for arg in sys.argv[1:] if arg != "--mlomae"])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="fresh child processes per config")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="dabs")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"],
        help="train.precision of every variant; several are timed interleaved in one child",
    )  # fmt: skip
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_time.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # log files: never cut cells
    keys = ("steps", "warmup", "threads", "device", "backbone", "precisions")
    common = {k: getattr(args, k) for k in keys}
    rows = []
    for config in args.configs:
        rounds = []
        for r in range(args.rounds):
            console.print(f"{config}: timing round {r + 1}/{args.rounds}", style="dim")
            payload = {**common, "config": config, "variants": args.variants, "count_saved": r == 0}
            rounds.append(spawn(__file__, payload))
        memory = {}
        if not args.no_memory:
            for variant in args.variants:
                console.print(f"{config}: peak memory of {variant}", style="dim")
                for prec in args.precisions:
                    memory[f"{variant}@{prec}"] = spawn(
                        __file__,
                        {**common, "steps": 3, "warmup": 1, "config": config,
                         "variants": [variant], "precisions": [prec]},
                    )  # fmt: skip
        for variant, prec in [(v, p) for p in args.precisions for v in args.variants]:
            base, key = BASELINE[variant], f"{variant}@{prec}"
            seconds = [rd["median_s"][key] for rd in rounds]
            ratios = (
                [rd["median_s"][key] / rd["median_s"][f"{base}@{prec}"] for rd in rounds]
                if base in args.variants
                else []
            )
            target = TARGETS[variant][list(CONFIGS).index(config)] if variant in TARGETS else None
            ratio = statistics.median(ratios) if ratios else None
            eager = f"{EAGER}@{prec}"
            eager_ratios = (
                [rd["median_s"][key] / rd["median_s"][eager] for rd in rounds]
                if EAGER in args.variants
                else []
            )
            eager_ratio = statistics.median(eager_ratios) if eager_ratios else None
            eager_target = EAGER_TARGETS.get(variant)
            first = [rd["first_step_s"][key] - rd["median_s"][key] for rd in rounds]
            rows.append(
                {
                    "config": config,
                    "variant": variant,
                    "precision": prec,
                    "seconds_per_step": statistics.median(seconds),
                    "ratio": ratio,
                    "ratio_to": base,
                    "ratio_per_round": ratios,
                    "target": target,
                    "meets_target": None if ratio is None or target is None else ratio <= target,
                    "ratio_to_eager_mae": eager_ratio,
                    "ratio_to_eager_mae_per_round": eager_ratios,
                    "eager_target": eager_target,
                    "meets_eager_target": None
                    if eager_ratio is None or eager_target is None
                    else eager_ratio <= eager_target,
                    # the first step's extra time over a timed one: compiling (train.compile)
                    "first_step_extra_s": statistics.median(first),
                    "saved_for_backward_mib": rounds[0]["saved_mib"][key],
                    "peak_rss_mib": memory[key]["vmhwm_mib"] if memory else None,
                    "cuda_peak_mib": memory[key]["cuda_peak_mib"] if memory else None,
                }
            )
    title = f"seconds per step ({args.backbone} backbone, {args.device}, {args.threads} threads"
    title += ")" if len(args.precisions) > 1 else f", {args.precisions[0]})"
    table = Table(title=title, title_justify="left")
    several = len(args.precisions) > 1  # else the title says which
    columns = ("config", "variant", "precision", "s/step", "ratio", "target")
    columns += (f"x {EAGER} (rounds)", "target 17", "1st +s", "saved MiB", "RSS MiB")
    for col in columns:
        if col != "precision" or several:
            table.add_column(col, no_wrap=col != "config")
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x {row['ratio_to']}"
        target = "-"
        if row["target"] is not None and row["ratio"] is not None:
            target = f"<= {row['target']} " + ("ok" if row["meets_target"] else "MISSED")
        eager_text, eager_target = "-", "-"
        if row["ratio_to_eager_mae"] is not None:
            per_round = ", ".join(f"{r:.2f}" for r in row["ratio_to_eager_mae_per_round"])
            eager_text = f"{row['ratio_to_eager_mae']:.2f} ({per_round})"
            if row["eager_target"] is not None:
                met = "ok" if row["meets_eager_target"] else "MISSED"
                eager_target = f"<= {row['eager_target']} {met}"
        memory_text = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.0f}"
        table.add_row(
            row["config"],
            row["variant"],
            *([row["precision"]] if several else []),
            f"{row['seconds_per_step']:.4f}",
            ratio,
            target,
            eager_text,
            eager_target,
            f"{row['first_step_extra_s']:.1f}",
            f"{row['saved_for_backward_mib']:.1f}",
            memory_text,
        )
    console.print(table)
    write_results(args, rows)
    console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

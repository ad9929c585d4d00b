"""The GPU check's benchmark: MAE, MetaMAE (2nd / 1st order) and one MLO-MAE cycle in fp32 and bf16.

    python benchmarks/gpu_bench.py                    # on a CUDA device (gpu_check.sh runs it)
    python benchmarks/gpu_bench.py --batch 32 --steps 5 --precisions bf16
    python benchmarks/gpu_bench.py --dry-run          # the same code path on CPU, tiny models

Configs: the dabs backbone on the three input shapes of ``step_time.py`` (their batch sizes,
or ``--dabs-batch``), and ViT-B/16 on 224 x 224 images (encoder 768 x 12, 12 heads, MLP x4;
MAE's decoder 512 x 8, 16 heads; batch ``--batch``, default 64), all on random data of
that shape. Variants: ``mae`` (one reconstruct node), ``metamae2`` / ``metamae1`` (adapt with
the ``unrolled`` / ``first_order`` hypergradient, one inner step), ``mlomae`` (the published
graph: darts on both edges, the flat-MLP masker; one cycle = 2 engine iterations = two
pretrain steps, one head step, one mask step).

Per config x variant x precision, in this process, one after the other: build the graph, run
``--warmup`` steps, then ``--steps`` timed steps between two ``torch.cuda.synchronize()``
calls (s / step is their mean; data loading from host memory is part of the step, as in
training). Then one more step under ``torch.utils.flop_counter.FlopCounterMode``, which counts
the floating-point operations of the matrix products, convolutions and attention kernels
that actually ran (forward, backward, double backward, estimators: PyTorch's per-op
formulas, 2 FLOPs per multiply-add; elementwise ops, norms and softmax not counted; PyTorch
has no formula for its fused CPU attention kernel, so this script registers flash
attention's for it). MFU =
counted FLOPs per step / s per step / the device's dense peak for the precision (bf16 tensor
cores for bf16; TF32 tensor cores for fp32, since metamask turns TF32 on when fp32 is asked)
from ``PEAK_TFLOPS``, keyed by ``torch.cuda.get_device_name()``, or ``--peak-tflops``. Parts
that metamask runs in full fp32 (MetaMAE's support pass, the estimators) are counted against
the same peak, so MFU is a utilisation of the chosen peak, not a statement about each
kernel. Peak memory: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
before the build (parameters, optimizer state and activations of that variant alone); on a
CPU, the process's resident high-water mark (VmHWM), reset per variant where the kernel lets
(``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import peak_rss_mib
from mlomae_step_time import graph_spec as mlomae_graph
from step_time import CONFIGS as DABS_SHAPES

VARIANTS = ("mae", "metamae2", "metamae1", "mlomae")
PRECISIONS = ("fp32", "bf16")
#: engine iterations per timed unit: an MLO-MAE cycle is two
ITERATIONS = {"mae": 1, "metamae2": 1, "metamae1": 1, "mlomae": 2}
#: pretraining samples per timed unit (an MLO-MAE cycle holds two pretrain steps)
PRETRAIN_BATCHES = {"mae": 1, "metamae2": 1, "metamae1": 1, "mlomae": 2}
#: issue 16's GPU target: MetaMAE 2nd order / MAE at ViT-B/16 (the paper's training-time figure)
TARGET = {"config": "vit-b16", "variant": "metamae2", "ratio": 1.4}

VIT_B16 = {
    "patch": [16, 16],
    "norm_pix": True,
    "encoder": {"width": 768, "depth": 12, "heads": 12, "mlp_ratio": 4.0, "dropout": 0.0},
    "decoder": {"width": 512, "depth": 8, "heads": 16, "mlp_ratio": 4.0},
}

#: dense (no sparsity) peak TFLOP/s from the vendors' data sheets: "bf16" (also used for fp16)
#: and "fp32" = TF32 tensor cores; the first key contained in torch.cuda.get_device_name()
#: wins, so longer names come first
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "fp32": 494.7},
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0},
    "H100 NVL": {"bf16": 835.0, "fp32": 417.5},
    "H100": {"bf16": 989.4, "fp32": 494.7},  # SXM (HBM3)
    "A100": {"bf16": 312.0, "fp32": 156.0},
    "L40S": {"bf16": 362.1, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp32": 60.0},
    "A10": {"bf16": 125.0, "fp32": 62.5},
}


def configs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """name -> {group, modality, shape, patch, batch, mask, model}: what gets benchmarked."""
    if args.dry_run:  # one tiny config per group: the code path, not a measurement
        tiny = {"backbone": "tiny"}
        dry = {
            "dabs (dry run: tiny backbone, (3,16,16) p4 b4)": {
                "group": "dabs", "modality": "image2d", "shape": [3, 16, 16], "patch": [4, 4],
                "batch": 4, "mask": 0.75, "model": tiny,
            },
            "vit-b16 (dry run: tiny backbone, (3,32,32) p16 b2)": {
                "group": "vit-b16", "modality": "image2d", "shape": [3, 32, 32],
                "patch": [16, 16], "batch": 2, "mask": 0.75, "model": {**tiny, "norm_pix": True},
            },
        }  # fmt: skip
        return {name: config for name, config in dry.items() if config["group"] in args.groups}
    out: dict[str, dict[str, Any]] = {}
    for name, shape in DABS_SHAPES.items():  # step_time.py's names end in their batch size
        batch = args.dabs_batch or shape["batch"]
        renamed = name.replace(" b{} ".format(shape["batch"]), f" b{batch} ")
        out[f"dabs: {renamed}"] = {
            **shape, "group": "dabs", "batch": batch, "model": {"backbone": "dabs"},
        }  # fmt: skip
    out[f"vit-b16: (3,224,224) p16 b{args.batch} m.75"] = {
        "group": "vit-b16", "modality": "image2d", "shape": [3, 224, 224], "patch": [16, 16],
        "batch": args.batch, "mask": 0.75, "model": {"backbone": "dabs", **VIT_B16},
    }  # fmt: skip
    return {name: config for name, config in out.items() if config["group"] in args.groups}


def graph_spec(variant: str) -> dict[str, Any]:
    """The variant's graph, as ``step_time.py`` (MAE, MetaMAE) and ``mlomae_step_time.py``
    (MLO-MAE as published: darts on both edges, the flat-MLP masker) build it."""
    adamw = {"type": "adamw", "lr": 1e-4, "weight_decay": 1e-4}
    if variant == "mae":
        return {"nodes": {"reconstruct": {"type": "reconstruct", "optimizer": adamw}}}
    if variant == "mlomae":
        return mlomae_graph("darts")
    solver = "unrolled" if variant == "metamae2" else "first_order"
    return {
        "nodes": {
            "adapt": {"type": "adapt", "inner_lr": 0.5, "latent_solver": {"type": solver}},
            "reconstruct": {"type": "reconstruct", "reg_weight": 0.1, "optimizer": adamw},
        },
        "u2l": {"reconstruct": ["adapt"]},
        "l2u": {"adapt": ["reconstruct"]},
    }


def build(config: dict[str, Any], variant: str, precision: str, device: str) -> Any:
    """The variant's graph on random data of ``config``'s shape, in train mode."""
    import torch

    from metamask.compose import build_graph
    from metamask.config import spec_from_dict
    from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo

    info = DatasetInfo(
        "bench", config["modality"], tuple(config["shape"]), tuple(config["patch"]), 10,
        "accuracy", vocab_size=config.get("vocab", 0),
    )  # fmt: skip
    batch = config["batch"]
    n = batch * 8 + 32  # MLO-MAE's split B (a fifth of the labelled split) holds a batch
    if config["modality"] == "tokens":
        x = torch.randint(0, config["vocab"], (n, *config["shape"]))
    else:
        x = torch.randn(n, *config["shape"])
    data = ArrayDataset(x, torch.randint(0, 10, (n,)))
    spec = spec_from_dict(
        {
            "name": "bench",
            "data": {"dataset": "bench", "batch_size": batch},
            "model": {**config["model"], "mask_ratio": config["mask"]},
            "graph": graph_spec(variant),
            "train": {"steps": 10**6, "device": device, "precision": precision},
        }
    )
    graph = build_graph(spec, DataBundle(info, data, data, data), torch.device(device))
    graph.train()
    return graph


def peak_tflops(device: str, precision: str, override: float | None) -> tuple[float | None, str]:
    """The peak MFU is measured against, and where it comes from (said in the table and JSON)."""
    import torch

    if override is not None:
        return override, f"--peak-tflops {override:g}"
    if not device.startswith("cuda"):
        return None, "no CPU peak known: pass --peak-tflops for an MFU on CPU"
    name = torch.cuda.get_device_name(torch.device(device))
    half = precision in ("bf16", "fp16")  # fp16 tensor cores run at bf16's rate on these
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            peak = peaks["bf16" if half else "fp32"]
            kind = f"{precision} tensor cores" if half else "TF32 tensor cores"
            return peak, f"{name}: {kind}, dense, {peak:g} TFLOP/s"
    return None, f"{name} is not in PEAK_TFLOPS: pass --peak-tflops for an MFU"


class Memory:
    """Peak memory of one variant: CUDA's allocator peak, or the process's VmHWM on CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.source = "torch.cuda.max_memory_allocated (reset before the build)"
        if not self.cuda:
            self.source = "process VmHWM (" + (
                "reset per variant via /proc/self/clear_refs)"
                if self._reset_rss()
                else "not resettable here: the whole process's peak so far)"
            )

    @staticmethod
    def _reset_rss() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def reset(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._reset_rss()

    def peak_mib(self) -> float:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20 if self.cuda else peak_rss_mib()


def measure(
    config: dict[str, Any], variant: str, precision: str, args: argparse.Namespace, memory: Memory
) -> dict[str, Any]:
    """Build, warm up, time, read the memory peak, count one step's FLOPs; free the graph."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cuda = args.device.startswith("cuda")
    sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
    tf32 = _tf32_flags()  # a graph turns TF32 on for fp32: do not let it leak into the next
    memory.reset()
    torch.manual_seed(0)
    graphs: list[Any] = []  # a list, so that the graph can be freed below

    def unit() -> None:
        for _ in range(ITERATIONS[variant]):
            graphs[0].step()

    try:
        graphs.append(build(config, variant, precision, args.device))
        for _ in range(args.warmup):
            unit()
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            unit()
        sync()
        seconds = (time.perf_counter() - start) / args.steps
        peak = memory.peak_mib()
        counter = FlopCounterMode(display=False)
        with counter:
            unit()
        sync()
        flops = counter.get_total_flops()
        by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    finally:
        graphs.clear()
        _restore_tf32(tf32)
        memory.reset()
    samples = config["batch"] * PRETRAIN_BATCHES[variant]
    return {
        "seconds_per_step": seconds,
        "samples_per_s": samples / seconds,
        "peak_memory_mib": peak,
        "flops_per_step": flops,
        "flops_by_op": by_op,
    }


def count_cpu_attention() -> None:
    """Teach FlopCounterMode PyTorch's fused CPU attention kernel (its CUDA kernels it knows):
    the same formulas as for flash attention, so a dry run counts the encoder's attention."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is None or backward is None or forward in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(forward)
    def _forward(q: Any, k: Any, v: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
        return int(flop_counter.sdpa_flop_count(q, k, v))

    @flop_counter.register_flop_formula(backward)
    def _backward(g: Any, q: Any, k: Any, v: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
        return int(flop_counter.sdpa_backward_flop_count(g, q, k, v))


def _tf32_flags() -> list[str]:
    import torch

    return [torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision]


def _restore_tf32(flags: list[str]) -> None:
    import torch

    torch.backends.cuda.matmul.fp32_precision = flags[0]
    torch.backends.cudnn.conv.fp32_precision = flags[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every config x variant x precision: rows with times, memory, FLOPs, MFU and ratios."""
    import torch
    from rich.console import Console

    console = Console(stderr=True)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    memory = Memory(args.device)
    count_cpu_attention()
    peaks = {p: peak_tflops(args.device, p, args.peak_tflops) for p in args.precisions}
    rows: list[dict[str, Any]] = []
    for name, config in configs(args).items():
        for precision in args.precisions:
            for variant in args.variants:
                console.print(f"{name}: {variant} @ {precision}", style="dim")
                row: dict[str, Any] = {
                    "config": name, "group": config["group"], "variant": variant,
                    "precision": precision, "batch": config["batch"],
                    "unit": "cycle (2 engine iterations)" if variant == "mlomae" else "step",
                }  # fmt: skip
                try:
                    row.update(measure(config, variant, precision, args, memory))
                except Exception as error:  # one GPU session: record it, measure the rest
                    console.print_exception(max_frames=8)
                    kind = (
                        "out of memory"
                        if isinstance(error, torch.OutOfMemoryError)
                        else (type(error).__name__)
                    )
                    row["error"] = f"{kind}: {(str(error).splitlines() or [''])[0][:200]}"
                    gc.collect()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                peak, peak_source = peaks[precision]
                flops = row.get("flops_per_step")
                row["mfu"] = (
                    flops / row["seconds_per_step"] / (peak * 1e12)
                    if peak is not None and flops is not None
                    else None
                )
                row["peak_tflops"], row["peak_source"] = peak, peak_source
                rows.append(row)
    _add_ratios(rows, judge=args.device.startswith("cuda"))
    return {
        "device": _device_name(args.device),
        "torch": torch.__version__,
        "flop_count_method": (
            "torch.utils.flop_counter.FlopCounterMode over one extra step (an MLO-MAE cycle) "
            "on the same device after the timed ones: matrix products, convolutions and "
            "attention kernels that ran (forward, backward, double backward, estimators), "
            "2 FLOPs per multiply-add (PyTorch's per-op formulas; the fused CPU attention "
            "kernel gets flash attention's, registered here); elementwise ops, norms and "
            "softmax not counted"
        ),
        "mfu_definition": "flops_per_step / seconds_per_step / (peak_tflops * 1e12)",
        "peaks": {p: {"tflops": v, "source": s} for p, (v, s) in peaks.items()},
        "memory_source": memory.source,
        "target": TARGET,
        "rows": rows,
    }


def _device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _add_ratios(rows: list[dict[str, Any]], judge: bool) -> None:
    """Each variant's time over MAE's (same config and precision), bf16's speed-up over fp32;
    the target is judged only when ``judge`` (it is a GPU target: not for CPUs, dry runs)."""
    by_key = {(r["config"], r["variant"], r["precision"]): r for r in rows}
    for row in rows:
        seconds = row.get("seconds_per_step")
        mae = by_key.get((row["config"], "mae", row["precision"]), {}).get("seconds_per_step")
        fp32 = by_key.get((row["config"], row["variant"], "fp32"), {}).get("seconds_per_step")
        row["ratio_to_mae"] = seconds / mae if seconds and mae else None
        row["bf16_speedup"] = (
            fp32 / seconds if row["precision"] == "bf16" and seconds and fp32 else None
        )
        is_target = row["group"] == TARGET["config"] and row["variant"] == TARGET["variant"]
        row["target"] = TARGET["ratio"] if is_target else None
        row["meets_target"] = (
            row["ratio_to_mae"] <= TARGET["ratio"]
            if judge and is_target and row["ratio_to_mae"] is not None
            else None
        )


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The rows as a rich table, and what MFU and memory mean here."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    title = f"GPU check on {result['device']} (torch {result['torch']})"
    if args.dry_run:
        title += ": DRY RUN, tiny models on CPU, 1 timed step: not a measurement"
    table = Table(title=title, title_justify="left")
    columns = ("config", "variant", "prec", "s/step", "samples/s", "x MAE", "bf16 x",
               "peak MiB", "GFLOP/step", "MFU")  # fmt: skip
    for col in columns:
        table.add_column(col, no_wrap=col in ("config", "variant"))

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None or not math.isfinite(value) else format(value, spec)

    previous = None
    for row in result["rows"]:
        config = row["config"] if row["config"] != previous else ""
        if config and previous is not None:
            table.add_section()
        previous = row["config"]
        if "error" in row:
            table.add_row(config, row["variant"], row["precision"], row["error"])
            continue
        ratio = fmt(row["ratio_to_mae"], ".2f") if row["variant"] != "mae" else "1"
        if row["meets_target"] is not None:
            ratio += f" (<= {row['target']:g} " + ("ok)" if row["meets_target"] else "MISSED)")
        table.add_row(
            config,
            row["variant"] + (" cycle" if row["variant"] == "mlomae" else ""),
            row["precision"],
            fmt(row["seconds_per_step"], ".4f"),
            fmt(row["samples_per_s"], ".1f"),
            ratio,
            fmt(row["bf16_speedup"], ".2f"),
            fmt(row["peak_memory_mib"], ".0f"),
            fmt(row["flops_per_step"] / 1e9, ".4g"),
            "-" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%",
        )
    console.print(table)
    console.print(f"FLOPs: {result['flop_count_method']}.")
    for prec, peak in result["peaks"].items():
        console.print(f"MFU peak for {prec}: {peak['source']}.")
    console.print(f"peak memory: {result['memory_source']}.")
    console.print(
        "mlomae cycle: 2 pretrain steps + 1 head step + 1 mask step; its x MAE is a cycle over "
        "one MAE step, its samples/s counts the two pretrain batches."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, tiny models, 1 warm-up + 1 timed step: checks the code path",
    )
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--batch", type=int, default=64, help="ViT-B/16 batch size")
    parser.add_argument(
        "--dabs-batch",
        type=int,
        default=None,
        help="batch of the dabs configs (default: step_time.py's, 32/32/16)",
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--precisions", nargs="+", default=list(PRECISIONS), choices=("fp32", "bf16", "fp16")
    )
    parser.add_argument(
        "--groups",
        nargs="+",
        default=["dabs", "vit-b16"],
        choices=("dabs", "vit-b16"),
        help="which configs to run",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the peak MFU is measured against (overrides the device table)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 with --dry-run)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    parser.add_argument("--check-args", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps_default, warmup_default = (1, 1) if args.dry_run else (10, 3)
    args.steps = steps_default if args.steps is None else args.steps
    args.warmup = warmup_default if args.warmup is None else args.warmup
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    if args.threads is None:  # tiny models on a shared CPU: one thread is faster and steadier
        args.threads = 1 if args.dry_run else 0
    for flag in ("batch", "dabs_batch", "steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} {value}: expected a positive integer")
    if args.warmup < 0:
        parser.error(f"--warmup {args.warmup}: expected 0 or more")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        parser.error(f"--peak-tflops {args.peak_tflops}: expected a positive number")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check_args:  # gpu_check.sh: refuse a bad flag before the install and the tests
        return 0
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"gpu_bench.py: --device {args.device} but torch sees no CUDA device "
            "(use --dry-run on a CPU)",
            file=sys.stderr,
        )
        return 2
    result = run(args)
    result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    print_table(result, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"written: {args.out}")
    return 1 if any("error" in row for row in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())

"""MAE vs MetaMAE, same seed and budget, compared by linear probing.

    python examples/metamae_dabs.py                       # BasicMotions (embedded), seed 0
    python examples/metamae_dabs.py --dataset digits --seeds 0 1 2
    python examples/metamae_dabs.py --dataset all --seeds 0 1 2
    python examples/metamae_dabs.py --dataset pamap2 --data-root /data/dabs --device cuda
    python examples/metamae_dabs.py --dataset all --methods mae metamae metamae+mask --reuse

A method runs ``problems/<method>-<dataset>.yaml``; ``mae`` and ``metamae`` differ only in
their graph. Prints a table (dataset, method, metric, seconds per step) and writes it as JSON
(``--out``). ``--reuse`` reads a run folder's results.json instead of training again when its
spec is the one asked for, and resumes a run folder that holds only a checkpoint (a table
stopped with Ctrl-C or SIGTERM goes on where it stopped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import load_spec
from metamask.data.registry import all_datasets
from metamask.errors import MetamaskError, OutputError
from metamask.experiments import finished_results, mean_std
from metamask.report import results_table
from metamask.run import run_spec

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
METHODS = ("mae", "metamae")


def spec_path(method: str, dataset: str) -> Path:
    return PROBLEMS / f"{method}-{dataset}.yaml"


def datasets_with_specs(methods: tuple[str, ...] = METHODS) -> list[str]:
    """Labelled embedded datasets for which every method's spec exists."""
    names = []
    for name, entry in sorted(all_datasets().items()):
        labelled = entry.source == "embedded" and entry.info.labelled
        if labelled and all(spec_path(m, name).is_file() for m in methods):
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", default="basicmotions", help="a dataset name, or 'all' (embedded)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda")
    parser.add_argument("--data-root", default=None, help="folder of real DABS data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("runs/metamae_dabs"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), help="spec prefixes: problems/<method>-*"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep finished runs whose spec is unchanged"
    )
    args = parser.parse_args(argv)
    console = Console()
    methods = tuple(args.methods)

    datasets = datasets_with_specs(methods) if args.dataset == "all" else [args.dataset]
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")

    runs = []
    try:
        for dataset in datasets:
            for seed in args.seeds:
                for method in methods:  # interleaved: all methods see the same machine state
                    path = spec_path(method, dataset)
                    if not path.is_file():
                        raise MetamaskError(f"{path}: no spec for {method} on {dataset}")
                    spec = load_spec(path, [*overrides, f"seed={seed}"])
                    console.print(
                        f"[bold]{dataset}[/] {method} seed {seed}: {spec.train.steps} steps"
                    )
                    out = args.out / dataset / method / f"seed{seed}"
                    r = finished_results(out, spec) if args.reuse else None
                    held = (out / "checkpoint.pt").is_file()
                    if r is None and held and not args.reuse:
                        raise OutputError(
                            f"{out} already holds a run (its checkpoint.pt); keep it with "
                            "--reuse, or choose another --out"
                        )
                    if r is None:
                        resume = out if held else None
                        if resume is not None:
                            console.print(f"  resuming from {out / 'checkpoint.pt'}")
                        result = run_spec(
                            spec, out, source=str(path), progress=not args.quiet, resume=resume
                        )
                        r = result.results
                    else:
                        console.print(f"  reused {out / 'results.json'}")
                    runs.append(
                        {
                            "dataset": dataset,
                            "method": method,
                            "seed": seed,
                            "metric": r["metric"],
                            "test": r["test"],
                            "val": r["val"],
                            "seconds_per_step": r["train"]["seconds_per_step"],
                            "steps": r["train"]["steps"],
                        }
                    )
    except MetamaskError as exc:
        Console(stderr=True).print(f"[bold red]metamae_dabs: error:[/] {exc}", highlight=False)
        return exc.exit_code  # 2 bad input, 3 non-finite, 130 / 143 interrupted

    rows = summarize(runs, methods)
    console.print(
        results_table(
            rows,
            f"MAE vs MetaMAE, linear probe (seeds {args.seeds})",
            ["dataset", "method", "metric", "test", "seconds_per_step", "ratio_vs_mae"],
        )
    )
    write_json(args.out / "results.json", {"seeds": args.seeds, "summary": rows, "runs": runs})
    console.print(f"written: {args.out / 'results.json'}")
    return 0


def summarize(runs: list[dict], methods: tuple[str, ...] = METHODS) -> list[dict]:
    """Mean ± std of the test metric and median seconds per step, per dataset and method."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        base = None
        for method in methods:
            sel = [r for r in runs if r["dataset"] == dataset and r["method"] == method]
            if not sel:
                continue
            tests = [r["test"] for r in sel]
            mean, std = mean_std(tests)
            # a run resumed at its last step trained nothing here: no timing of its own
            timed = [r["seconds_per_step"] for r in sel if r["seconds_per_step"] > 0]
            sps = statistics.median(timed) if timed else None
            base = sps if method == "mae" else base
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "metric": sel[0]["metric"],
                    "test": f"{mean:.4f} ± {std:.4f} (n={len(tests)})",
                    "test_mean": mean,
                    "test_std": std,
                    "seconds_per_step": sps,
                    "ratio_vs_mae": (sps / base) if base and sps else None,
                }
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())

"""MAE vs MetaMAE, same seeds and budget, compared by linear probing (on `metamask compare`).

    python examples/metamae_dabs.py                       # BasicMotions (embedded), seed 0
    python examples/metamae_dabs.py --dataset digits --seeds 0 1 2
    python examples/metamae_dabs.py --dataset all --seeds 0 1 2 --jobs 2
    python examples/metamae_dabs.py --dataset pamap2 --data-root /data/dabs --device cuda
    python examples/metamae_dabs.py --dataset all --methods mae metamae metamae+mask

A method runs ``problems/<method>-<dataset>.yaml``; ``mae`` and ``metamae`` differ only in
their graph. Each dataset is one comparison of :mod:`metamask.experiments` (the methods are
its arms, MAE the baseline): finished runs are read back by their resolved spec, a run stopped
with Ctrl-C or SIGTERM resumes from its checkpoint, ``--jobs`` trains side by side. Prints a
table (dataset, method, metric, seconds per step) and each method − the first one, paired by
seed with its 95% t interval, and writes both as JSON (``--out``/results.json). The runs lie in
``OUT/<dataset>/<method>/seed<N>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec
from metamask.data.registry import all_datasets
from metamask.errors import MetamaskError
from metamask.experiments.compare import compare
from metamask.experiments.planning import Arm
from metamask.experiments.running import Finished
from metamask.experiments.stats import mean_std
from metamask.report import results_table

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


def folder(out: Path, arm: Arm, seed: int, spec: RunSpec) -> Path:
    """``OUT/<dataset>/<method>/seed<N>`` (the arm is labelled ``<method>``)."""
    return out / spec.data.dataset / arm.label / f"seed{seed}"


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
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), help="spec prefixes: problems/<method>-*"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="(always on: finished runs are read back)"
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

    runs, comparisons = [], []
    try:
        for dataset in datasets:
            for method in methods:
                if not spec_path(method, dataset).is_file():
                    raise MetamaskError(f"{spec_path(method, dataset)}: no spec for {method}")
            console.print(f"[bold]{dataset}[/]: {', '.join(methods)}, seeds {args.seeds}")
            arms = [Arm(m, spec_path(m, dataset)) for m in methods]
            result = compare(arms, args.seeds, args.out, overrides, jobs=args.jobs,
                             progress=not args.quiet, console=console, folder=folder,
                             write=False)  # fmt: skip
            runs += [_row(dataset, item) for item in result.finished]
            comparisons += [{"dataset": dataset, **c} for c in result.table["comparisons"]]
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
    for c in comparisons:
        console.print(f"{c['dataset']}: {c['sentence']}", highlight=False, soft_wrap=True)
    summary = {"seeds": args.seeds, "summary": rows, "comparisons": comparisons, "runs": runs}
    write_json(args.out / "results.json", summary)
    console.print(f"written: {args.out / 'results.json'}")
    return 0


def _row(dataset: str, item: Finished) -> dict:
    r = item.results
    return {
        "dataset": dataset,
        "method": item.run.arm.label,
        "seed": item.run.seed,
        "metric": r["metric"],
        "test": r["test"],
        "val": r["val"],
        "seconds_per_step": r["train"]["seconds_per_step"],
        "steps": r["train"]["steps"],
    }


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

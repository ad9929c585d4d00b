"""Issue 23's first screen: which lever moves a downstream-guided masker on the controlled task?

    python examples/masker_levers.py            # every variant, darts and unrolled, seed 0
    python examples/masker_levers.py --seeds 0 1 --steps 100
    python examples/masker_levers.py --variants flat-lr1e-3 token-alive --estimators unrolled
    python examples/masker_levers.py --quick              # smoke test: tiny model, 4 steps

MLO-MAE on ``controlled_patches`` (``problems/mlomae-controlled_patches.yaml``: the class is
written in 8 known patches of 64, the rest is matched noise; docs/datasets.md). Each run is one
*variant* (the masker, its learning rate, the keep-alive options of docs/mlomae.md) under one
*estimator* pair on the masker's two edges: ``darts`` (published) or ``unrolled`` (the exact
derivative of the split-B loss after one cycle), at one seed, for ``--steps`` engine steps
(two per cycle: one masker step). Pretraining only (``eval.enabled=false``): the screen reads
the masker, not the encoder.

For every run, on the test split's images (eval mode), at initialisation (the graph the run
starts from, built from the same seed) and after training
(:mod:`metamask.experiments.masker_measures`):

- ``auroc``: per image, P(an informative token's masking probability > a noise token's),
  averaged (0.5: none; 1: masks the informative tokens first; 0: keeps them visible);
- ``entropy``: mean per-token Bernoulli entropy of the probabilities, bits (1 at p = 0.5);
- ``image_info``: bits per token the image carries about the map (0: one map for every image);
- ``overlap``: Dice overlap of two images' chosen masks (1: the same mask for every image);
- ``mean_p`` and ``saturated`` (share of probabilities below 0.01 or above 0.99);

and the seconds per cycle of training (``train.seconds_per_step`` x 2).

Writes under ``--out`` (default ``results/masker_levers``; ``--quick``:
``results/masker_levers-quick``): ``runs/<estimator>-<variant>-seed<k>/`` (the run's folder and
its ``screen.json``), ``table.json`` and ``table.md``. A finished run of the same spec is read
back, not trained again, so a stopped screen trains only what is missing when started again.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from metamask.checkpoint import write_json
from metamask.config import RunSpec, load_spec
from metamask.data.embedded.controlled import informative_map
from metamask.errors import MetamaskError
from metamask.experiments import finished_results, spec_as_json, write_text
from metamask.experiments.masker_measures import (
    MEASURES,
    at_initialisation,
    held_out_inputs,
    masker_measures,
)
from metamask.mask_diversity import masking_source, probabilities_and_masks
from metamask.run import run_spec

SPEC = Path(__file__).resolve().parent.parent / "problems" / "mlomae-controlled_patches.yaml"
MASKER = "graph.nodes.pretrain.masker"
FLAT = [f"{MASKER}.type=flat_mlp"]
TOKEN = [f"{MASKER}.type=token_mlp", f"{MASKER}.hidden=64"]
ALIVE = [f"{MASKER}.keep_mean=true", f"{MASKER}.weighting=normalised"]


def lr(value: str) -> list[str]:
    return [f"graph.nodes.mask.optimizer.lr={value}"]


#: variant -> its overrides of the controlled spec (masker, masker lr, keep-alive options)
VARIANTS: dict[str, list[str]] = {  # in the order a screen runs them
    "flat-lr1e-3": FLAT + lr("1e-3"),  # the published masker and masker lr
    "flat-lr1e-3-alive": FLAT + lr("1e-3") + ALIVE,
    "token-lr1e-3": TOKEN + lr("1e-3"),
    "token-lr1e-3-alive": TOKEN + lr("1e-3") + ALIVE,
    "flat-lr1e-5": FLAT + lr("1e-5"),  # the shipped controlled spec
    "flat-lr1e-3-T4": FLAT + lr("1e-3") + [f"{MASKER}.temperature=4"],
    "flat-lr1e-3-step0.1": FLAT + lr("1e-3") + ["graph.nodes.mask.max_step=0.1"],
    "token-lr1e-4": TOKEN + lr("1e-4"),
}
#: estimator pair on the pretrain and head edges -> overrides
ESTIMATORS: dict[str, list[str]] = {
    "darts": [  # the published estimator (the shipped spec takes sama since this screen)
        "graph.nodes.pretrain.hypergradient.type=darts",
        "graph.nodes.head.hypergradient.type=darts",
    ],
    "unrolled": [
        "graph.nodes.pretrain.hypergradient.type=unrolled",
        "graph.nodes.head.hypergradient.type=unrolled",
    ],
}
STEPS = 60
QUICK = ["model.backbone=tiny"]
QUICK_VARIANTS = ["flat-lr1e-3", "token-lr1e-3-alive"]


def spec_for(estimator: str, variant: str, seed: int, args: argparse.Namespace) -> RunSpec:
    overrides = [
        f"seed={seed}",
        f"train.steps={args.steps}",
        f"train.threads={args.threads}",
        "eval.enabled=false",
        *VARIANTS[variant],
        *ESTIMATORS[estimator],
    ]
    if args.quick:
        overrides += QUICK
    return load_spec(SPEC, [*overrides, *args.overrides])


def run_one(spec: RunSpec, out: Path, console: Console, quiet: bool) -> tuple[dict[str, Any], bool]:
    """The run's row: read back when ``out`` holds a finished one of ``spec``, else trained.
    Returns the row and whether it was trained now."""
    done = out / "screen.json"
    finished = finished_results(out, spec, done.name)
    if finished is not None:
        return dict(finished), False
    informative = informative_map(spec.data.dataset)
    x = held_out_inputs(spec)
    initial = at_initialisation(spec, x)
    started = time.perf_counter()
    result = run_spec(spec, out, source=str(out), progress=not quiet, console=console)
    wall = time.perf_counter() - started
    source = masking_source(result.graph)
    assert source is not None
    final = masker_measures(*probabilities_and_masks(result.graph, source.masker, x), informative)
    row = {
        "spec": spec_as_json(spec),
        "steps": spec.train.steps,
        "seed": spec.seed,
        "init": initial,
        "final": final,
        "seconds_per_cycle": 2.0 * result.train.seconds_per_step,
        "train_seconds": result.train.seconds,
        "wall_seconds": wall,
    }
    write_json(done, row)
    return row, True


COLUMNS = MEASURES


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Masker levers on controlled_patches: a first screen",
        "",
        f"`{command}`",
        "",
        "Each cell: at initialisation -> after training (test images). auroc 0.5: no "
        "preference; entropy in bits (1: p = 0.5 everywhere); image_info: bits per token that "
        "tell images' maps apart (0: one map); overlap: Dice of two images' masks (1: one "
        "mask); saturated: share of p outside [0.01, 0.99]. s / cycle measured under load.",
        "",
        "| estimator | variant | seed | steps | " + " | ".join(COLUMNS) + " | s / cycle |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |",
    ]
    for r in rows:
        cells = [f"{r['init'][k]:.3f} -> {r['final'][k]:.3f}" for k in COLUMNS]
        lines.append(
            f"| {r['estimator']} | {r['variant']} | {r['seed']} | {r['steps']} | "
            + " | ".join(cells)
            + f" | {r['seconds_per_cycle']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=None, help="engine steps per run")
    parser.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    parser.add_argument("--estimators", nargs="+", default=None, choices=list(ESTIMATORS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 steps, 2 variants")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 2:
        parser.error(f"--steps: expected at least 2 engine steps (one cycle), got {args.steps}")
    if args.threads < 1:
        parser.error(f"--threads: expected at least 1, got {args.threads}")
    args.seeds = args.seeds or [0]
    args.steps = args.steps or (4 if args.quick else STEPS)
    args.variants = args.variants or (QUICK_VARIANTS if args.quick else list(VARIANTS))
    args.estimators = args.estimators or list(ESTIMATORS)
    args.out = args.out or Path("results") / (
        "masker_levers-quick" if args.quick else "masker_levers"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=True)
    command = shlex.join(["python", "examples/masker_levers.py", *(argv or sys.argv[1:])])
    try:  # every spec first: a bad --set stops before anything is trained
        plan = [
            (estimator, variant, seed, spec_for(estimator, variant, seed, args))
            for seed in args.seeds
            for variant in args.variants
            for estimator in args.estimators
        ]
    except MetamaskError as exc:
        console.print(f"masker_levers: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    rows, trained = [], 0
    for estimator, variant, seed, spec in plan:
        out = args.out / "runs" / f"{estimator}-{variant}-seed{seed}"
        row, fresh = run_one(spec, out, console, args.quiet)
        trained += fresh
        rows.append({"estimator": estimator, "variant": variant, **row})
        i, f = row["init"], row["final"]
        console.print(
            f"{'trained' if fresh else 'read back'} {out.name}: auroc {i['auroc']:.3f} -> "
            f"{f['auroc']:.3f}  entropy {i['entropy']:.3f} -> {f['entropy']:.3f}  "
            f"{row['seconds_per_cycle']:.2f} s/cycle",
            highlight=False,
        )
    table = [{k: v for k, v in r.items() if k != "spec"} for r in rows]
    write_json(args.out / "table.json", {"command": command, "trained": trained, "runs": table})
    text = markdown(rows, command)
    write_text(args.out / "table.md", text)
    console.print(text, highlight=False, markup=False)
    console.print(f"trained {trained} of {len(rows)} runs", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

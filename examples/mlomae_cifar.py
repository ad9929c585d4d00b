"""MLO-MAE vs MAE, same seeds and budget: fine-tuning and linear-probe accuracy, masking pictures.

    python examples/mlomae_cifar.py                                  # digits (embedded), seed 0
    python examples/mlomae_cifar.py --seeds 0 1 2 --picture-every 100
    python examples/mlomae_cifar.py --dataset cifar10 --data-root /data --device cuda
    python examples/mlomae_cifar.py --dataset cifar100 --data-root /data --device cuda

MLO-MAE runs ``problems/mlomae-<digits|cifar10>.yaml`` (CIFAR-100: the CIFAR-10 spec on
``cifar100``); its MAE baseline is the same spec with a reconstruct node (MAE) in the pretrain
node's place
(:func:`mae_baseline` below; for digits it equals problems/mae-digits-mlo.yaml).
Each run's folder holds metrics.jsonl, checkpoint.pt, results.json and, for MLO-MAE, masks.png:
input, learned masking probability and chosen mask for a grid of validation images (and
masks-<step>.png every ``--picture-every`` steps). Prints mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from metamask.checkpoint import write_json
from metamask.compose import build_graph
from metamask.config import EstimatorSpec, GraphSpec, RunSpec, load_spec
from metamask.downstream.finetune import fine_tune
from metamask.downstream.probe import linear_probe
from metamask.pictures.maskers import MaskPictures, save_mask_picture
from metamask.run import resolve_device
from metamask.seeding import seed_everything
from metamask.spec_data import load_pretrain_data
from metamask.train import Trainer

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"


def mae_baseline(spec: RunSpec, pretrain: str = "pretrain") -> RunSpec:
    """The MAE baseline of an MLO-MAE spec: the same run with the pretrain node replaced by
    the reconstruct node alone (random masks; no masker, head or upper levels: the published
    code's ``--baseline``). It keeps the node's name and optimizer, so it draws the very
    batches MLO-MAE's pretraining draws."""
    node = spec.graph.nodes[pretrain]
    alone = dataclasses.replace(
        node, type="reconstruct", unroll_steps=1, hypergradient=EstimatorSpec(), options={}
    )
    return dataclasses.replace(
        spec,
        name=(
            spec.name.replace("mlomae", "mae") + "-mlo"
            if "mlomae" in spec.name
            else spec.name + "-mae"
        ),
        description=f"MAE baseline of {spec.name}",
        graph=GraphSpec(nodes={pretrain: alone}),
    )


def specs(args: argparse.Namespace, seed: int) -> dict[str, RunSpec]:
    """MLO-MAE's spec for this dataset and seed, and its MAE baseline."""
    name = "digits" if args.dataset == "digits" else "cifar10"
    overrides = [f"seed={seed}", *args.overrides]
    if args.dataset == "cifar100":
        overrides += ["data.dataset=cifar100", "name=mlomae-cifar100"]
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    if args.steps:
        overrides.append(f"train.steps={args.steps}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    mlo = load_spec(PROBLEMS / f"mlomae-{name}.yaml", overrides)
    return {"mae": mae_baseline(mlo), "mlomae": mlo}


def run(spec: RunSpec, out: Path, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Pretrain, then linear probe and fine-tune (selected on validation); write results.json."""
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    device = resolve_device(spec.train.device)
    seed_everything(spec.seed)
    bundle = load_pretrain_data(spec)
    graph = build_graph(spec, bundle, device)
    pictures = MaskPictures(bundle.val, out, args.picture_every)
    trainer = Trainer(graph, spec, out, console, progress=not args.quiet, callbacks=[pictures])
    summary = trainer.run()
    probe = linear_probe(graph.mae, bundle, spec.eval.probe, device, spec.seed)
    tuned = None
    if spec.eval.finetune is not None:
        tuned = fine_tune(graph.mae, bundle, spec.eval.finetune, device, spec.seed)
    save_mask_picture(graph, bundle.val, out)
    result = {
        "name": spec.name,
        "seed": spec.seed,
        "probe": probe.test,
        "finetune": tuned.test if tuned else None,
        "seconds_per_step": summary.seconds_per_step,
        "train_seconds": summary.seconds,
        "final": summary.final,
    }
    write_json(out / "results.json", {**result, "probe_detail": probe.to_dict()})
    return result


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} +- {100 * spread:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits", choices=["digits", "cifar10", "cifar100"])
    parser.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda")
    parser.add_argument("--picture-every", type=int, default=0, help="masks-<step>.png period")
    parser.add_argument("--methods", nargs="+", default=["mae", "mlomae"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--out", type=Path, default=Path("runs/mlomae_cifar"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for method, spec in specs(args, seed).items():
            if method not in args.methods:
                continue
            out = args.out / args.dataset / f"{method}-seed{seed}"
            console.print(f"[bold]{spec.name}[/] seed {seed} -> {out}")
            rows.append({"method": method, **run(spec, out, args, console)})
    table = Table(title=f"{args.dataset}: test accuracy (%), mean +- std over seeds {args.seeds}")
    for column in ("method", "fine-tune", "linear probe", "s/step"):
        table.add_column(column)
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        tuned = [r["finetune"] for r in mine if r["finetune"] is not None]
        steps = [r["seconds_per_step"] for r in mine]
        table.add_row(
            method,
            mean_std(tuned),
            mean_std([r["probe"] for r in mine]),
            f"{statistics.median(steps):.3f}" if steps else "-",
        )
    Console().print(table)
    write_json(args.out / args.dataset / "summary.json", {"rows": rows, "args": _plain(args)})
    return 0


def _plain(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


if __name__ == "__main__":
    sys.exit(main())

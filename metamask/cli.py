"""The ``metamask`` command: run a spec, show its graph, list datasets.

User mistakes (a bad spec, a missing file, a full disk) print one line and exit with code 2;
``--debug`` shows the traceback instead. A non-finite loss (or an fp16 loss scale below its
floor, metamask.precision.MIN_LOSS_SCALE) exits with 3, SIGINT / SIGTERM
(after a checkpoint) with 130 / 143. ``metamask run SPEC --resume DIR`` continues a run;
``torchrun --nproc-per-node N -m metamask run SPEC --distributed`` trains data-parallel.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from metamask import __version__
from metamask.errors import (
    CheckpointError,
    ConfigError,
    Interrupted,
    LossScaleError,
    MetamaskError,
    NonFiniteError,
    OutputError,
    SpecDeprecation,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metamask",
        description="Meta-learned masked auto-encoders as Betty optimization graphs.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    parser.add_argument("--version", action="version", version=f"metamask {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="pretrain a spec's graph and evaluate it")
    run.add_argument(
        "spec",
        type=Path,
        nargs="?",
        default=None,
        help="YAML spec, e.g. problems/metamae-basicmotions.yaml (with --resume DIR: optional, "
        "the folder holds the run's spec)",
    )
    _add_overrides(run)
    _add_imports(run)
    run.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<name>/<time>)"
    )
    run.add_argument(
        "--device", default=None, help="auto | cpu | cuda | cuda:N (overrides train.device)"
    )
    run.add_argument(
        "--data-root", default=None, help="folder of real DABS data (overrides data.data_root)"
    )
    run.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default=None,
        help="autocast precision of the forward passes (overrides train.precision)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its checkpoint.pt (its spec and overrides are in "
        "DIR; --set train.steps=N extends the budget; writes into DIR)",
    )
    run.add_argument(
        "--distributed",
        action="store_true",
        help="one process of a data-parallel run started by torchrun (docs/scaling.md)",
    )

    show = sub.add_parser("show", help="print a spec's graph: nodes, edges, estimator per node")
    show.add_argument("spec", type=Path)
    _add_overrides(show)
    _add_imports(show)
    show.add_argument(
        "--png", type=Path, default=None, metavar="FILE", help="also draw the graph into FILE"
    )
    show.add_argument(
        "--resolved",
        action="store_true",
        help="print only the spec as YAML: extends merged, --set applied, every default written",
    )

    evaluate = sub.add_parser(
        "eval", help="evaluate a run again from its checkpoint (earlier results are kept)"
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    _add_overrides(evaluate)
    _add_imports(evaluate)
    evaluate.add_argument(
        "--only",
        choices=["probe", "finetune"],
        default=None,
        help="run one part (default: the probe, and fine-tuning when eval.finetune is set)",
    )
    evaluate.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    evaluate.add_argument("--data-root", default=None, help="folder of real DABS data")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")

    compare = sub.add_parser(
        "compare",
        help="specs x --vary values x seeds, side by side and resumable, with paired intervals",
    )
    compare.add_argument("specs", type=Path, nargs="+", metavar="SPEC", help="YAML spec files")
    compare.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an arm per value of KEY for every spec (repeatable: every combination)",
    )
    compare.add_argument("--seeds", type=int, nargs="+", required=True, help="e.g. 0 1 2")
    _add_overrides(compare)
    compare.add_argument(
        "--jobs", type=int, default=1, help="runs side by side, the cores split between them"
    )
    compare.add_argument(
        "--baseline",
        default=None,
        metavar="ARM",
        help="the arm the others are paired with "
        "(default the first: the first SPEC's file name, with its --vary values)",
    )
    compare.add_argument("--out", type=Path, required=True, help="folder of the comparison")
    compare.add_argument("--quiet", action="store_true", help="no progress bars")

    _add_downstream(sub)
    audit = sub.add_parser(
        "audit", help="audit a run's hypergradient estimators at its checkpoint (no training)"
    )
    audit.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    audit.add_argument("--node", default=None, help="audit this node only (default: every one)")
    audit.add_argument(
        "--reference",
        default=None,
        help="unrolled | cg | implicit_cg | finite_difference (default: the spec's)",
    )
    audit.add_argument("--batches", type=int, default=8, help="engine cycles audited (8)")
    audit.add_argument(
        "--directions", type=int, default=4, help="finite_difference: directions per cycle (4)"
    )
    audit.add_argument(
        "--eps", type=float, default=1e-5, help="finite_difference: the step along each direction"
    )
    audit.add_argument(
        "--out", type=Path, default=None, help="the JSON report (default: RUN_DIR.audit.json)"
    )

    datasets = sub.add_parser("datasets", help="list datasets and whether they load here")
    datasets.add_argument("--data-root", default=None, help="folder of real DABS data")
    for command in sub.choices.values():  # `--debug` after the command too, e.g. `run X --debug`
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_downstream(sub: argparse._SubParsersAction) -> None:
    """``export`` and ``embed`` (metamask.downstream; docs/using-encoders.md)."""
    export = sub.add_parser("export", help="write a run's encoder as a folder others can load")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new folder")
    export.add_argument("--with-decoder", action="store_true", help="also the decoder")
    export.add_argument(
        "--format",
        choices=["native", "timm"],
        default="native",
        help="timm (images): also timm VisionTransformer weights and their create_model call",
    )
    embed = sub.add_parser("embed", help="features of a dataset's splits or of your arrays")
    embed.add_argument("source", type=Path, metavar="RUN_OR_EXPORT")
    what = embed.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", default=None, metavar="NAME", help="a registered dataset")
    what.add_argument("--arrays", type=Path, default=None, metavar="FILE", help=".npz or .csv")
    embed.add_argument("--out", type=Path, required=True, metavar="FILE", help="e.g. feats.npy")
    embed.add_argument("--batch-size", type=int, default=256)
    embed.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    embed.add_argument("--data-root", default=None, help="folder of real DABS data")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set train.steps=100 (repeatable)",
    )


def _add_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a Python module first, e.g. one that registers your own estimator; the "
        "run's spec.yaml lists it with the spec's own imports: (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # the old one-line printer comes back afterwards
        warnings.showwarning = _show_deprecation(warnings.showwarning)
        return _main(args)


def _show_deprecation(show: Any) -> Any:
    """``warnings.showwarning`` printing a :class:`SpecDeprecation` as one stderr line."""

    def one_line(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
        if issubclass(category, SpecDeprecation):
            Console(stderr=True).print(
                f"[bold yellow]metamask: deprecated:[/] {message}", highlight=False, soft_wrap=True
            )
        else:
            show(message, category, *args, **kw)

    return one_line


def _main(args: argparse.Namespace) -> int:
    console = Console()
    try:
        if args.command == "run":
            return cmd_run(args, console)
        if args.command == "show":
            return cmd_show(args, console)
        if args.command == "eval":
            return cmd_eval(args, console)
        if args.command == "compare":
            return cmd_compare(args, console)
        if args.command in ("export", "embed"):
            from metamask.downstream.commands import run_command

            return run_command(args, console)
        if args.command == "audit":
            return cmd_audit(args, console)
        return cmd_datasets(args, console)
    except MetamaskError as exc:
        if args.debug:
            raise
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("metamask: interrupted")
        return 130
    finally:
        distributed = sys.modules.get("metamask.distributed")  # imported only by a run (torch)
        if distributed is not None:
            distributed.close()


def _report(exc: MetamaskError) -> None:
    """One line on stderr; other ranks of a distributed run add their rank, and stay silent on
    the stops every process agrees on (non-finite values, signals), which rank 0 reports."""
    label = "stopped" if isinstance(exc, Interrupted) else "error"
    distributed = sys.modules.get("metamask.distributed")  # not imported: no process group
    if distributed is not None and not distributed.is_main():
        if isinstance(exc, Interrupted | NonFiniteError | LossScaleError):
            return
        label += f" (rank {distributed.rank()})"
    Console(stderr=True).print(
        f"[bold red]metamask: {label}:[/] {exc}", highlight=False, soft_wrap=True
    )


def _require_spec_file(path: Path | None) -> None:
    """A missing spec is refused before torch and the rest are imported (seconds saved); the
    message is the one :func:`metamask.config.read_yaml` gives."""
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: spec file not found")


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    _require_spec_file(args.spec)
    from metamask.config import load_spec  # torch-free: a bad spec is refused in a blink
    from metamask.config.imports import import_modules, with_imports

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    if args.resume is not None and not args.resume.exists():
        raise CheckpointError(f"--resume {args.resume}: no such run folder or checkpoint")
    spec = load_spec(args.spec, overrides) if args.spec is not None else None
    # torch and the rest only once the spec reads well (seconds, docs/specs.md)
    from metamask import distributed
    from metamask.downstream.init_from import check_start_weights
    from metamask.report import print_table, results_row, results_table
    from metamask.resume import CHECKPOINT_NAME, resume_folder, run_folder_spec
    from metamask.run import run_spec
    from metamask.spec_data import check_augment, check_eval_data

    if spec is not None:
        source = str(args.spec)
    elif args.resume is not None:  # the run folder holds its spec, every override included
        folder = resume_folder(args.resume)
        assert folder is not None
        spec, source = run_folder_spec(folder, overrides)
    else:
        raise ConfigError("run: give a SPEC file, or --resume DIR to continue the run in DIR")
    spec = with_imports(spec, args.imports)
    import_modules(spec.imports, source)  # before the data checks: a module may register data
    check_eval_data(spec, source)  # before training, not after it
    check_augment(spec, source)  # before the run folder is made
    if args.resume is None:  # a resume loads no start weights: the file may be gone
        check_start_weights(spec, source)
    if args.distributed:
        distributed.launch(spec.train.device)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"started by torchrun with {os.environ['WORLD_SIZE']} processes but without "
            "--distributed: they would train the same run separately; add --distributed"
        )
    main_process = distributed.is_main()
    out = args.out or resume_folder(args.resume)
    out = out or Path("runs") / spec.name / time.strftime("%Y%m%d-%H%M%S")
    _check_run_folder(out)
    if args.resume is None and (out / CHECKPOINT_NAME).exists():
        raise OutputError(
            f"{out} already holds a run (its {CHECKPOINT_NAME}); continue it with --resume "
            f"{out}, or choose another --out"
        )
    if not main_process:
        console.quiet = True
    what = f"resuming {args.resume}" if args.resume else f"{spec.train.steps} steps"
    processes = distributed.world_size()
    across = f" on {processes} processes" if processes > 1 else ""
    console.print(f"[bold]{spec.name}[/]: {what}{across} -> {out}")
    result = run_spec(
        spec, out, source=source, progress=not args.quiet, resume=args.resume, finished_ok=False
    )
    if not main_process:
        return 0
    row = results_row(result.results)  # every metric computed: probe and fine-tuning
    print_table(results_table([row], f"results ({out}/results.json)", row.keys()), console)
    return 0


def cmd_audit(args: argparse.Namespace, console: Console) -> int:
    """``metamask audit RUN_DIR``: the estimators against exact references, at the checkpoint."""
    from metamask.checkpoint import write_json
    from metamask.run_audit import audit_run, audit_table

    report = audit_run(
        args.run_dir,
        args.node,
        args.reference,
        args.batches,
        directions=args.directions,
        eps=args.eps,
    )
    out = args.out or args.run_dir.parent / f"{args.run_dir.name}.audit.json"
    write_json(out, report)
    console.print(audit_table(report))
    console.print(f"report: {out}")
    return 0


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    """``metamask eval RUN_DIR``: the probe and/or fine-tuning again, from the checkpoint."""
    from metamask.report import print_table, results_row, results_table
    from metamask.run import evaluate_run

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    console.print(f"evaluating {args.run_dir}")
    results = evaluate_run(
        args.run_dir, overrides, args.only, progress=not args.quiet, imports=args.imports
    )
    row = results_row(results)
    title = f"evaluation {len(results['evaluations'])} ({args.run_dir}/results.json)"
    print_table(results_table([row], title, row.keys()), console)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """``metamask compare``: every spec x --vary value x seed, then the table (docs/compare.md)."""
    for spec in args.specs:
        _require_spec_file(spec)
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected an integer >= 1")
    import shlex

    from metamask.experiments.compare import compare, show
    from metamask.experiments.planning import Vary, arms_of

    varies = [Vary.parse(text) for text in args.vary]
    _check_run_folder(args.out)
    command = shlex.join(["metamask", *sys.argv[1:]]) if sys.argv[1:] else "metamask compare"
    result = compare(
        arms_of(args.specs, varies),
        args.seeds,
        args.out,
        common=args.overrides,
        jobs=args.jobs,
        baseline=args.baseline,
        progress=not args.quiet,
        console=console,
        command=command,
    )
    show(result, console)
    console.print(f"written: {args.out}/table.json, table.md, compare.png", highlight=False)
    return 0


def _check_run_folder(out: Path) -> None:
    """Refuse a run folder that cannot be one, before anything is written: ``out`` (or a
    folder above it) is a file, or the nearest existing folder above it is not writable."""
    for path in (out, *out.parents):
        if not path.exists():
            continue
        if not path.is_dir():
            where = "is a file" if path == out else f"lies under {path}, which is a file"
            raise OutputError(f"--out {out}: {where}; expected a folder (new or a run's)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out}: {path} is not writable")
        return


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    _require_spec_file(args.spec)
    from metamask.config import load_spec  # torch-free: a bad spec is refused in a blink
    from metamask.config.imports import import_modules, with_imports

    if args.png is not None:  # before anything is printed: a name the picture cannot take
        from metamask.pictures.graph import check_picture_path

        check_picture_path(args.png)
    spec = load_spec(args.spec, args.overrides)
    from metamask.compose import check_buildable
    from metamask.report import edge_lines, graph_table, optimizer_lines
    from metamask.spec_data import check_eval_data, pretrain_info
    from metamask.topology import validate_graph

    spec = with_imports(spec, args.imports)
    import_modules(spec.imports, str(args.spec))  # before the data checks and the build
    validate_graph(spec.graph, str(args.spec))
    graph = check_buildable(spec, str(args.spec))  # refuses what `run` would: options, ...
    check_eval_data(spec, str(args.spec), here=False)  # show needs no --data-root
    if args.resolved:  # plain stdout: a runnable spec, e.g. `> flat.yaml` (docs/specs.md)
        from metamask.config import spec_to_yaml

        sys.stdout.write(spec_to_yaml(spec))
        return 0
    info = pretrain_info(spec)
    model = graph.mae  # built on stand-in data by check_buildable
    enc, dec = spec.model.encoder, spec.model.decoder
    if spec.description:
        console.print(spec.description)
    console.print(
        f"data: [bold]{info.name}[/] ({info.domain}; {info.modality} {info.input_shape}, patch "
        f"{info.patch} -> {info.num_tokens} tokens; {info.num_classes} classes; {info.metric})"
    )
    console.print(
        f"model: {spec.model.backbone} backbone, "
        f"encoder {enc.width}x{enc.depth} ({enc.heads} heads), "
        f"decoder {dec.width}x{dec.depth} ({dec.heads} heads), mask ratio {spec.model.mask_ratio}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters"
    )
    console.print(graph_table(spec))
    for line in edge_lines(spec):
        console.print(line)
    trained = [name for name, node in graph.nodes.items() if node.optimizer is not None]
    for line in optimizer_lines(spec, trained):
        console.print(line, highlight=False, soft_wrap=True)
    if args.png is not None:
        from metamask.pictures.graph import draw_graph

        try:
            draw_graph(spec.graph, args.png, title=spec.name)
        except OSError as exc:
            raise OutputError(f"--png {args.png}: cannot write the picture ({exc})") from None
        console.print(f"graph picture: {args.png}")
    return 0


def cmd_datasets(args: argparse.Namespace, console: Console) -> int:
    from metamask.data.base import LoadOptions
    from metamask.data.registry import all_datasets
    from metamask.report import datasets_table

    tables, notes = datasets_table(all_datasets(), LoadOptions(data_root=args.data_root))
    console.print(tables)
    for note in notes:  # whole, however long: a path in a note stays in one piece
        console.print(note, soft_wrap=True, highlight=False, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

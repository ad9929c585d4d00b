"""The ``metamask export`` and ``metamask embed`` commands: arguments in, one summary line out.

``cli.py`` only wires their arguments; what they do lives in :mod:`metamask.downstream.export`
and :mod:`metamask.downstream.embed`.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from metamask.errors import DataError


def run_command(args: argparse.Namespace, console: Console) -> int:
    """Run ``export`` or ``embed`` from parsed arguments; 0 on success (errors raise)."""
    if args.command == "export":
        from metamask.downstream.export import export_run

        out = export_run(args.run_dir, args.out, args.with_decoder, args.format)
        files = ", ".join(sorted(p.name for p in out.iterdir()))
        console.print(f"exported {args.run_dir} -> {out} ({files})", highlight=False)
        return 0
    from metamask.downstream.embed import embed

    if args.batch_size < 1:
        raise DataError(f"embed: --batch-size must be at least 1, got {args.batch_size}")
    index = embed(
        args.source,
        args.out,
        data=args.data,
        arrays=args.arrays,
        batch_size=args.batch_size,
        device=args.device,
        data_root=args.data_root,
        progress=not args.quiet,
    )
    labels = f", labels in {index['labels']}" if index["labels"] else ", no labels"
    console.print(
        f"features {tuple(index['shape'])} -> {args.out}{labels}; splits {index['splits']}",
        highlight=False,
    )
    return 0

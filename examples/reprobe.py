"""Evaluate finished runs again from their checkpoints, with today's probe settings.

    python examples/reprobe.py runs/table_all/*/*/seed*         # every run of a table
    python examples/reprobe.py RUN_DIR --set eval.probe.epochs=200

For one run folder this is ``metamask eval RUN_DIR --only probe``; this script loops over many
and prints the test metric before and after. Each folder's graph is rebuilt from its spec,
restored from checkpoint.pt and linear-probed again (:func:`metamask.run.evaluate_run`).
results.json keeps every earlier evaluation in its ``evaluations`` list; its top-level scores
and ``spec`` become the new probe's, so ``examples/metamae_dabs.py --reuse`` keeps the run.
Training is not repeated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from metamask.errors import MetamaskError
from metamask.run import evaluate_run


def reprobe(run: Path, overrides: list[str]) -> tuple[float | None, float | None]:
    """Probe the run again; returns (previous, new) test metric."""
    results = evaluate_run(run, overrides, only="probe", progress=False)
    earlier = [e for e in results["evaluations"][:-1] if e.get("test") is not None]
    return (earlier[-1]["test"] if earlier else None), results["test"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parser.parse_args(argv)
    console = Console()
    failed = 0
    for run in args.runs:
        try:
            before, after = reprobe(run, args.overrides)
        except MetamaskError as exc:
            Console(stderr=True).print(f"[red]{run}: {exc}[/]", highlight=False)
            failed += 1
            continue
        was = "-" if before is None else f"{before:.4f}"
        now = "-" if after is None else f"{after:.4f}"
        console.print(f"{run}: test {was} -> {now}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What the step-time benchmarks share: child processes, peak memory, the JSON they write."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), which ``ru_maxrss`` misreports in children."""
    kib = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return kib / 1024


def spawn(script: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``script --child PAYLOAD`` in a fresh interpreter; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, script, "--child", json.dumps(payload)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed for {payload['config']}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """``{"settings": the command line, "rows": rows}`` as JSON at ``args.out``."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "child"
    }
    args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")

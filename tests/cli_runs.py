"""Helpers for tests that run `metamask` in real subprocesses (kills, signals, torchrun)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metamask.checkpoint import load_checkpoint

# A short run on the tiny backbone: one thread (bitwise reproducible across processes), no
# probe, a metrics row and a checkpoint every step or two.
TINY = [
    "--set",
    "model.backbone=tiny",
    "--set",
    "train.threads=1",
    "--set",
    "train.log_every=1",
    "--set",
    "eval.enabled=false",
    "--quiet",
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "metamask", *args]


def start(*args: str) -> subprocess.Popen[str]:
    """Start `metamask ARGS` in its own process; stdout/stderr are captured as text."""
    return subprocess.Popen(
        cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def wait_for_step(
    proc: subprocess.Popen[str], metrics: Path, step: int, timeout: float = 120
) -> int:
    """Poll ``metrics.jsonl`` until a row of engine step >= ``step``; returns the step seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = last_step(metrics)
        if seen >= step:
            return seen
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"run ended (exit {proc.returncode}) before step {step}:\n{err}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no metrics row for step {step} within {timeout} s")


def last_step(metrics: Path) -> int:
    if not metrics.is_file():
        return 0
    steps = [0]
    for line in metrics.read_text().splitlines():
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError):
            continue  # a row being written
    return max(steps)


def metric_rows(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows without their wall-clock time."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


def training_state(path: Path) -> dict[str, Any]:
    """A checkpoint without its wall clock (``metamask.resume.CLOCK``: seconds and resume
    times, which differ between any two runs): what must be bitwise equal."""
    from metamask.resume import CLOCK

    state = load_checkpoint(path)
    state.pop(CLOCK)
    return state


def assert_identical(a: Any, b: Any, where: str = "checkpoint") -> None:
    """Recursively equal: tensors bit for bit (torch.equal), everything else with ==."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: max |diff| {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every node's module tensors in a run folder's checkpoint, keyed node/name."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    return {
        f"{node}/{name}": tensor
        for node, node_state in state["nodes"].items()
        for name, tensor in node_state.get("module", {}).items()
    }


def killed_audited_run_equals_unaudited(tmp: Path, args: list[str], audit: list[str]) -> Path:
    """Run ``args`` twice side by side: as given (``tmp/off``) and with the ``audit`` flags
    (``tmp/on``), that one SIGKILLed after engine step 3 and resumed. Asserts both final
    checkpoints hold the same training state, bit for bit; returns the audited run's folder."""
    reference = start("run", *args, "--out", str(tmp / "off"))
    audited = tmp / "on"
    victim = start("run", *args, *audit, "--out", str(audited))
    wait_for_step(victim, audited / "metrics.jsonl", 3, timeout=600)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    resumed = run("run", *args, *audit, "--resume", str(audited), timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    _, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err
    off = training_state(tmp / "off" / "checkpoint.pt")
    on = training_state(audited / "checkpoint.pt")
    for key in ("step", "nodes", "rng", "callbacks"):
        assert_identical(off[key], on[key], key)
    return audited

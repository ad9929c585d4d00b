"""benchmarks/exact_window.py runs and writes, per window length, both estimators' cycle time,
their ratio and (here skipped) peak memory (tiny model, one timed cycle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_exact_window_writes_darts_and_unrolled_per_window(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    args = ["--configs", "tiny", "--windows", "1", "2", "--steps", "1", "--warmup", "0"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/exact_window.py"), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["window"] for row in rows] == [1, 2]
    for row in rows:
        for estimator in ("darts", "unrolled"):
            assert row[f"{estimator}_s_per_cycle"] > row[f"{estimator}_mask_step_s"] > 0
            assert row[f"{estimator}_peak_mib"] > 0
        ratio = row["unrolled_s_per_cycle"] / row["darts_s_per_cycle"]
        assert row["ratio"] == pytest.approx(ratio) and row["above_cut_at"] == (ratio > 1.5)
    assert "unrolled / darts" in proc.stdout


def test_bad_windows_are_refused() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/exact_window.py"), "--windows", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--windows, --steps and --rounds: expected integers >= 1" in proc.stderr

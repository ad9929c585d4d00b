"""The `metamask` command: a real run writes its files; input errors are one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metamask.checkpoint import load_checkpoint
from metamask.cli import main

FAST = [
    "--set",
    "model.backbone=tiny",
    "--set",
    "train.log_every=2",
    "--set",
    "train.steps=4",
    "--set",
    "eval.probe.epochs=2",
    "--quiet",
]


@pytest.mark.parametrize("method", ["metamae", "mae"])
def test_run_writes_metrics_results_and_checkpoint(tmp_path: Path, method: str) -> None:
    out = tmp_path / "run"
    assert main(["run", f"problems/{method}-basicmotions.yaml", "--out", str(out), *FAST]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    nodes = {"metamae": {"adapt", "reconstruct"}, "mae": {"reconstruct"}}[method]
    assert {row["node"] for row in rows} == nodes
    assert [row["step"] for row in rows if row["node"] == "reconstruct"] == [2, 4]
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "accuracy" and 0.0 <= results["test"] <= 1.0
    assert results["train"]["steps"] == 4 and results["spec"]["model"]["backbone"] == "tiny"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 4 and state["nodes"]["reconstruct"]["count"] == 4


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamask", *args], capture_output=True, text=True, timeout=120
    )


def test_config_error_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    from metamask.config import load_spec, spec_to_yaml

    spec = tmp_path / "bad.yaml"  # the spec in one file: problems/ specs extend base files
    resolved = spec_to_yaml(load_spec("problems/mae-basicmotions.yaml"))
    spec.write_text(resolved.replace("mask_ratio:", "mask_ratoi:"))
    proc = run_cli("run", str(spec), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1 and "model.mask_ratoi: unknown key (did you mean 'mask_ratio'?)" in lines[0]
    )
    assert not (tmp_path / "out").exists()  # nothing written


def test_unknown_dataset_and_debug_traceback(tmp_path: Path) -> None:
    proc = run_cli("run", "problems/mae-basicmotions.yaml", "--set", "data.dataset=basicmotion")
    assert (
        proc.returncode == 2
        and "unknown dataset 'basicmotion' (did you mean 'basicmotions'?)" in proc.stderr
    )
    proc = run_cli(
        "--debug", "run", "problems/mae-basicmotions.yaml", "--set", "data.dataset=basicmotion"
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_show_prints_nodes_edges_and_estimators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "problems/metamae-basicmotions.yaml"]) == 0
    out = capsys.readouterr().out
    for text in (
        "adapt",
        "reconstruct",
        "unrolled",
        "reconstruct -> adapt",
        "adapt -> reconstruct",
        "small backbone",
        "parameters",
    ):
        assert text in out


def test_datasets_lists_embedded_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("basicmotions", "digits", "breast_cancer"):
        assert name in out

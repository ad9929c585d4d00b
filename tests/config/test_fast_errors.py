"""Spec errors answer before torch is imported: `metamask run/show BAD.yaml` takes a fraction of a
second, not the seconds that importing torch (and Betty, TorchOpt) costs.

Each case runs the real command in a subprocess (``metamask.cli.main`` under ``python -c``, so
the child can report which heavy modules it imported), plus `metamask show` itself for the
one-line message and exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
METAMAE = REPO / "problems/metamae-basicmotions.yaml"
HEAVY = ("torch", "betty", "torchopt", "numpy", "timm")

# main(argv) in a child, then the exit code and the heavy modules it imported, as JSON
PROBE = f"""
import json, sys
from metamask.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (CLI arguments, a piece of the expected error line)."""
    base = os.path.relpath(METAMAE, tmp)
    (tmp / "malformed.yaml").write_text("name: x\ndata: {dataset: basicmotions\n")
    (tmp / "unknown.yaml").write_text(yaml.safe_dump({"extends": base, "bogus": 1}))
    (tmp / "wrong_type.yaml").write_text(yaml.safe_dump({"extends": base, "seed": "one"}))
    (tmp / "range.yaml").write_text(yaml.safe_dump({"extends": base, "data": {"batch_size": 0}}))
    (tmp / "bad_extends.yaml").write_text(yaml.safe_dump({"extends": "nowhere.yaml"}))
    (tmp / "base_bad.yaml").write_text(yaml.safe_dump({"train": {"steps": -3}}))
    (tmp / "via_base.yaml").write_text(yaml.safe_dump({"extends": [base, "base_bad.yaml"]}))
    good = str(METAMAE)
    return {
        "malformed": ([str(tmp / "malformed.yaml")], "malformed YAML"),
        "unknown key": ([str(tmp / "unknown.yaml")], "bogus: unknown key"),
        "wrong type": ([str(tmp / "wrong_type.yaml")], "seed: expected an integer"),
        "out of range": ([str(tmp / "range.yaml")], "data.batch_size: expected an integer"),
        "bad extends": ([str(tmp / "bad_extends.yaml")], "nowhere.yaml not found"),
        "base file": ([str(tmp / "via_base.yaml")], "base_bad.yaml: train.steps"),
        "bad --set value": ([good, "--set", "train.steps=zero"], "--set: train.steps"),
        "bad --set form": ([good, "--set", "train.steps"], "expected key.path=value"),
        "bad --set key": ([good, "--set", "train.stepz=3"], "train.stepz: unknown key"),
    }


@pytest.mark.parametrize("command", ["run", "show"])
def test_spec_errors_import_no_torch(tmp_path: Path, command: str) -> None:
    for name, (args, expected) in _cases(tmp_path).items():
        argv = [command, *args] + (["--out", str(tmp_path / "out")] if command == "run" else [])
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["code"] == 2, (name, proc.stderr)
        assert expected in proc.stderr, (name, proc.stderr)
        assert report["heavy"] == [], f"{name}: imported {report['heavy']} before refusing"
    assert not (tmp_path / "out").exists()  # nothing written


def test_show_bad_spec_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"extends": os.path.relpath(METAMAE, tmp_path), "bogus": 1}))
    proc = subprocess.run(
        [sys.executable, "-m", "metamask", "show", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"metamask: error: {bad}: bogus: unknown key")


def test_a_good_spec_still_imports_torch_when_it_runs(tmp_path: Path) -> None:
    """The probe can see torch: `show` of a good spec builds the model, so torch is there."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "show", str(METAMAE), "--set", "model.backbone=tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, proc.stderr
    assert "torch" in report["heavy"]

"""`metamask eval RUN_DIR` through the real command line: a finished run evaluated again from
its checkpoint, earlier results kept, --set eval... honoured, bad folders refused in one line;
and the summary of `metamask run` shows every metric it computed (fine-tuning included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import TINY, run

from metamask.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

SPEC = "problems/mae-basicmotions.yaml"
EVAL = ["--set", "eval.enabled=true", "--set", "eval.probe.epochs=2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    args = ["run", SPEC, "--out", str(out), *TINY, "--set", "train.steps=4", *EVAL]
    assert main([*args, "--set", "eval.finetune.epochs=1"]) == 0
    return out


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_the_run_summary_shows_the_fine_tuning_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["run", SPEC, "--out", str(out), *TINY, "--set", "train.steps=2", *EVAL]
    assert main([*args, "--set", "eval.finetune.epochs=1"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    results = json.loads((out / "results.json").read_text())
    assert results["finetune"] is not None
    assert "finetune test" in printed and f"{results['finetune']['test']:.4f}" in printed
    assert f"{results['test']:.4f}" in printed  # the probe's too


def test_eval_keeps_earlier_results_and_honours_set_eval(finished: Path) -> None:
    first = json.loads((finished / "results.json").read_text())
    assert [e["by"] for e in first["evaluations"]] == ["run"]
    proc = run("eval", str(finished), "--set", "eval.probe.epochs=3", "--only", "probe")
    assert proc.returncode == 0, proc.stderr
    assert "linear probe" in proc.stderr and "3/3" in proc.stderr  # the progress bar
    results = json.loads((finished / "results.json").read_text())
    earlier, newest = results["evaluations"]
    assert earlier == first["evaluations"][0]  # kept as it was
    assert newest["by"] == "eval" and newest["step"] == 4
    assert newest["eval"]["probe"]["epochs"] == 3 and "probe_curve" not in newest
    assert newest["finetune"] is None  # --only probe
    assert results["test"] == newest["test"] and results["finetune"] == first["finetune"]
    assert results["train"] == first["train"]  # training untouched
    assert len(json.loads((finished / "probe_curve.json").read_text())) == 3
    assert not (finished / ".lock").exists()  # the folder's lock was held and released

    proc = run("eval", str(finished), "--only", "finetune", "--set", "eval.finetune.epochs=2")
    assert proc.returncode == 0, proc.stderr
    assert "fine-tuning" in proc.stderr
    results = json.loads((finished / "results.json").read_text())
    assert len(results["evaluations"]) == 3
    newest = results["evaluations"][-1]
    assert newest["test"] is None and len(newest["finetune"]["curve"]) == 2
    assert results["finetune"] == newest["finetune"]


def test_eval_quiet_shows_no_progress(finished: Path) -> None:
    proc = run("eval", str(finished), "--only", "probe", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "linear probe" not in proc.stderr


def test_eval_refuses_changes_to_the_trained_model(finished: Path) -> None:
    before = (finished / "results.json").read_bytes()
    proc = run("eval", str(finished), "--set", "model.mask_ratio=0.5")
    assert proc.returncode == 2
    assert "model.mask_ratio (0.85 -> 0.5)" in _one_line(proc.stderr)
    assert (finished / "results.json").read_bytes() == before


def test_eval_refuses_a_folder_without_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text("name: x\n")
    proc = run("eval", str(folder))
    assert proc.returncode == 2
    assert f"eval {folder}: no checkpoint.pt in the folder" in _one_line(proc.stderr)
    assert sorted(p.name for p in folder.iterdir()) == ["spec.yaml"]  # nothing written
    proc = run("eval", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert "no such run folder" in _one_line(proc.stderr)

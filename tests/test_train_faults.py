"""Fault injection: real runs interrupted, killed, fed bad input, starved of disk, poisoned.

Each fault must end in one line on stderr (no traceback unless --debug), a documented exit
code, and a run folder with nothing half-written: every file there is either absent, complete
and readable, or the previous complete version.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from cli_runs import (
    TINY,
    cli,
    metric_rows,
    start,
    wait_for_step,
)
from helpers import METAMAE_GRAPH

from metamask.checkpoint import load_checkpoint
from metamask.cli import main
from metamask.config import OptimizerSpec
from metamask.errors import NonFiniteError
from metamask.nodes.base import Node
from metamask.optim import build_optimizer

METAMAE = "problems/metamae-basicmotions.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _assert_clean(folder: Path) -> None:
    """Nothing half-written: no temporaries, complete metrics rows, a readable checkpoint."""
    if not folder.exists():
        return
    assert not list(folder.glob(".*.tmp")), list(folder.iterdir())
    metrics = folder / "metrics.jsonl"
    if metrics.exists():
        text = metrics.read_text()
        assert text == "" or text.endswith("\n")
        for line in text.splitlines():
            json.loads(line)
    if (folder / "checkpoint.pt").exists():
        load_checkpoint(folder / "checkpoint.pt")
    for name in ("results.json", "probe_curve.json"):
        if (folder / name).exists():
            json.loads((folder / name).read_text())


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------------------------
# signals and kills (subprocesses)
# ----------------------------------------------------------------------------------------------


_SIGNALS = {signal.SIGINT: 3, signal.SIGTERM: 6}  # signal: step after which it is sent


def test_sigterm_and_sigint_finish_the_step_checkpoint_and_exit_143_130(tmp_path: Path) -> None:
    # far more steps than either run reaches: the signals must find both still training (with
    # 14 steps, a loaded machine let the second run finish training before its signal came)
    steps = 1000
    args = [METAMAE, *TINY, "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=5"]
    procs = {sig: start("run", *args, "--out", str(tmp_path / sig.name)) for sig in _SIGNALS}
    for sig, proc in procs.items():  # SIGINT early, SIGTERM later: two different stops
        wait_for_step(proc, tmp_path / sig.name / "metrics.jsonl", _SIGNALS[sig])
        proc.send_signal(sig)
    for sig, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, err
        line = _one_line(err)
        folder = tmp_path / sig.name
        state = load_checkpoint(folder / "checkpoint.pt")
        assert state["step"] < steps
        assert f"{sig.name}: stopped after step {state['step']} of {steps}" in line
        assert f"--resume {folder}" in line
        last_logged = metric_rows(folder / "metrics.jsonl")[-1]["step"]
        assert last_logged == state["step"]  # the step in flight was finished, then saved
        assert not (folder / "results.json").exists()
        _assert_clean(folder)


def test_a_second_signal_stops_at_once_and_keeps_the_previous_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from metamask.graph import Graph

    real_step = Graph.step

    def impatient(self: Graph) -> list[Any]:
        if self.engine.global_step == 3:  # the user presses Ctrl-C twice during step 4
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self)

    monkeypatch.setattr(Graph, "step", impatient)
    argv = ["run", METAMAE, *TINY, "--set", "train.steps=8", "--set", "train.checkpoint_every=2"]
    assert main([*argv, "--out", str(tmp_path)]) == 130
    line = _one_line(capsys.readouterr().err)
    assert "SIGINT again during step 4: stopped without a new checkpoint" in line
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    _assert_clean(tmp_path)


# ----------------------------------------------------------------------------------------------
# non-finite values
# ----------------------------------------------------------------------------------------------


def _arrays_spec(tmp_path: Path, x: np.ndarray, **train: Any) -> Path:
    """A MetaMAE spec on the user's arrays x (N, 3, 16), labels 0/1."""
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=np.arange(len(x)) % 2)
    spec = {
        "name": "arrays",
        "seed": 0,
        "data": {
            "dataset": "mine",
            "batch_size": 4,
            "arrays": {
                "path": str(data),
                "modality": "signal1d",
                "input_shape": [3, 16],
                "patch": [4],
                "num_classes": 2,
            },
        },
        "model": {"backbone": "tiny", "mask_ratio": 0.5},
        "graph": METAMAE_GRAPH,
        "train": {"steps": 12, "log_every": 1, "threads": 1, **train},
        "eval": {"probe": {"epochs": 2}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _poisoned(n: int = 40) -> np.ndarray:
    """Finite inputs whose squares overflow float32: a few examples of 1e38 (bad sensor data)."""
    x = np.random.default_rng(0).normal(size=(n, 3, 16))
    x[[7, 19, 31]] = 1e38
    return x


def test_a_non_finite_loss_stops_naming_node_step_term_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _arrays_spec(tmp_path, _poisoned(), checkpoint_every=1)
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 3
    line = _one_line(capsys.readouterr().err)
    good = load_checkpoint(out / "checkpoint.pt")
    bad_step = good["step"] + 1
    assert f"(engine step {bad_step})" in line, line
    assert f"last good checkpoint is {out / 'checkpoint.pt'} (step {good['step']})" in line
    assert "node 'adapt', local step" in line and "loss term 'support' is" in line
    for tensor in good["nodes"]["reconstruct"]["module"].values():
        assert tensor.isfinite().all()
    assert not (out / "results.json").exists()
    _assert_clean(out)


def test_on_nonfinite_skip_drops_the_poisoned_batches_and_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _arrays_spec(tmp_path, _poisoned(), on_nonfinite="skip")
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    skipped = results["train"]["skipped"]
    assert skipped.get("adapt", 0) > 0, skipped
    rows = metric_rows(out / "metrics.jsonl")
    assert any("skipped" in row for row in rows)
    assert 0.0 <= results["test"] <= 1.0
    for tensor in load_checkpoint(out / "checkpoint.pt")["nodes"]["reconstruct"]["module"].values():
        assert tensor.isfinite().all()


class _Kink(Node):
    """loss = |w| computed as sqrt(w^2): finite at w = 0, its gradient 0/0 = NaN."""

    def training_step(self, batch: Any) -> torch.Tensor:
        return (self.module.weight**2).sum().sqrt()


def _kink(on_nonfinite: str) -> _Kink:
    module = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    optimizer, _ = build_optimizer(module, OptimizerSpec(type="sgd", lr=0.1), 10)
    node = _Kink("kink", module, optimizer, loader=[0])
    node._strategy = "default"
    node.on_nonfinite = on_nonfinite
    node.cur_batch = None
    return node


def test_a_non_finite_gradient_under_a_finite_loss_stops_or_is_skipped() -> None:
    stop = _kink("stop")
    with pytest.raises(
        NonFiniteError, match=r"node 'kink', local step 0: gradient of parameter #0"
    ):
        stop.one_step_descent(batch=0)
    skip = _kink("skip")
    before = skip.module.weight.detach().clone()
    assert skip.one_step_descent(batch=0) == {"skipped": 1.0}
    assert torch.equal(skip.module.weight, before) and skip.module.weight.grad is None
    assert skip.skipped == 1


# ----------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ----------------------------------------------------------------------------------------------


def _bad_spec_file(tmp_path: Path, kind: str) -> list[str]:
    if kind == "malformed yaml":
        path = tmp_path / "bad.yaml"
        path.write_text("name: bad\ndata:\n  dataset: basicmotions\n  batch_size: [16\n")
        return [str(path)]
    arrays = {
        "missing data file": None,
        "truncated data file": "truncate",
        "corrupt data file": "flip",
    }
    if kind in arrays:
        spec = _arrays_spec(tmp_path, np.zeros((20, 3, 16)))
        data = tmp_path / "data.npz"
        raw = data.read_bytes()
        if arrays[kind] is None:
            data.unlink()
        elif arrays[kind] == "truncate":
            data.write_bytes(raw[: len(raw) // 2])
        else:
            flipped = bytearray(raw)
            flipped[len(raw) // 3] ^= 0xFF
            data.write_bytes(bytes(flipped))
        return [str(spec)]
    return [METAMAE]


BAD_INPUT = {
    # kind: (extra arguments, what the one line must say)
    "malformed yaml": ([], "malformed YAML at line"),
    "unknown key": (["--set", "model.mask_ratoi=0.5"], "did you mean 'mask_ratio'"),
    "wrong type": (["--set", "train.steps=ten"], "train.steps: expected an integer, got 'ten'"),
    "unknown dataset": (["--set", "data.dataset=basicmotion"], "did you mean 'basicmotions'"),
    "unknown estimator": (
        ["--set", "graph.nodes.adapt.latent_solver.type=unroled"],
        "unknown latent solver 'unroled' (did you mean 'unrolled'?)",
    ),
    "impossible shapes": (["--set", "model.patch=[7]"], "patch"),
    "missing data file": ([], "does not exist"),
    "truncated data file": ([], "data.npz: not an .npz archive (expected arrays x and y"),
    "corrupt data file": ([], "cannot read as .npz"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    extra, message = BAD_INPUT[kind]
    spec = _bad_spec_file(tmp_path, kind)
    out = tmp_path / "run"
    assert main(["run", *spec, *TINY, *extra, "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("metamask: error:") and message in line, line
    assert not out.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    args = ["run", METAMAE, *TINY, "--set", "train.steps=3", "--out", str(out)]
    assert main(args) == 0
    return out


def _damage(checkpoint: Path, how: str) -> None:
    raw = checkpoint.read_bytes()
    if how == "truncated":
        checkpoint.write_bytes(raw[: len(raw) // 2])
    elif how == "corrupt":
        checkpoint.write_bytes(raw[:100] + os.urandom(len(raw) - 100))
    elif how == "foreign":
        torch.save({"state_dict": {"w": torch.ones(2)}}, checkpoint)
    elif how == "code":
        torch.save({"format": 2, "payload": subprocess.Popen}, checkpoint)  # a class reference


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "not a readable metamask checkpoint"),
        ("corrupt", "not a readable metamask checkpoint"),
        ("foreign", "not a metamask checkpoint (no 'format' entry)"),
        ("code", "not a readable metamask checkpoint"),
        ("missing", "no such run folder or checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    finished_run: Path,
    how: str,
    message: str,
) -> None:
    folder = tmp_path / "run"
    if how != "missing":
        folder.mkdir()
        checkpoint = folder / "checkpoint.pt"
        checkpoint.write_bytes((finished_run / "checkpoint.pt").read_bytes())
        _damage(checkpoint, how)
        before = checkpoint.read_bytes()
    capsys.readouterr()
    code = main(["run", METAMAE, *TINY, "--set", "train.steps=3", "--resume", str(folder)])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert message in line, line
    if how != "missing":
        assert checkpoint.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]


def test_a_new_run_into_a_folder_holding_a_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_run: Path
) -> None:
    before = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    assert main(["run", METAMAE, *TINY, "--set", "train.steps=3", "--out", str(finished_run)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "already holds a run" in line and f"--resume {finished_run}" in line
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before


def test_a_full_disk_for_the_metrics_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    assert main(["run", METAMAE, *TINY, "--set", "train.steps=3", "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "metrics.jsonl: could not write (No space left on device)" in line, line
    # spec.yaml is written (atomically) before training, so that --resume DIR alone works
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "spec.yaml"]


def _limit_file_size() -> None:
    # every file this process writes stops at 64 KiB: checkpoints (~600 KB) cannot be written
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_checkpoint_that_does_not_fit_on_disk_fails_cleanly_in_a_subprocess(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    args = ["run", METAMAE, *TINY, "--set", "train.steps=6", "--set", "train.checkpoint_every=2"]
    proc = subprocess.run(
        cli(*args, "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=_limit_file_size,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc.stderr)
    assert "checkpoint.pt: could not write (File too large)" in line, line
    # no checkpoint, no temporary file; spec.yaml was written before training
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "spec.yaml"]
    assert metric_rows(out / "metrics.jsonl")[-1]["step"] == 2
    _assert_clean(out)


def test_the_exit_codes_in_the_docs_are_the_ones_raised() -> None:
    from metamask import errors

    doc = (Path(__file__).resolve().parents[1] / "docs" / "long-runs.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.*) \|$", doc, flags=re.M))
    assert f"`{errors.MetamaskError.__name__}`" in table[str(errors.MetamaskError.exit_code)]
    assert "`NonFiniteError`" in table[str(errors.NonFiniteError.exit_code)]
    for signum, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        code = errors.Interrupted("", signum).exit_code
        assert name in table[str(code)] and "`Interrupted`" in table[str(code)]

"""Data parallelism on CPU: 2 torchrun processes (gloo) == 1 process with the global batch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_runs import (
    TINY,
    assert_identical,
    cli,
    metric_rows,
    parameters,
    training_state,
    wait_for_step,
)

from metamask import distributed
from metamask.checkpoint import load_checkpoint
from metamask.cli import main

SPEC = str(Path("problems/metamae-basicmotions.yaml").resolve())
STEPS = 6


def _torchrun(*args: str, cwd: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "metamask",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_two_processes_match_one_process_with_the_global_batch(tmp_path: Path) -> None:
    common = [
        *TINY,
        "--set",
        f"train.steps={STEPS}",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.device=cpu",
    ]
    (tmp_path / "two").mkdir()
    two = _torchrun(
        "run", SPEC, "--distributed", "--set", "data.batch_size=4", *common, "--out", "run",
        cwd=tmp_path / "two",
    )  # fmt: skip
    one = subprocess.run(
        cli("run", SPEC, "--set", "data.batch_size=8", *common, "--out", str(tmp_path / "one")),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    out, err = two.communicate(timeout=300)
    assert two.returncode == 0, err
    assert one.returncode == 0, one.stderr

    # only rank 0 wrote: one run folder, each file once, one metrics row per node and step
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["run"]
    folder = tmp_path / "two" / "run"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint.pt",
        "losses.png",
        "metrics.jsonl",
        "reconstructions.png",
        "results.json",
        "spec.yaml",
    ]
    assert out.count("results (") == 1  # one results table, printed by rank 0

    a, b = parameters(folder), parameters(tmp_path / "one")
    assert a.keys() == b.keys()
    error = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert error < 1e-5, error
    start = _initial_parameters()
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert moved > 1e-3  # the comparison is not between two untrained models

    rows_two, rows_one = (
        metric_rows(folder / "metrics.jsonl"),
        metric_rows(tmp_path / "one" / "metrics.jsonl"),
    )
    assert len(rows_two) == len(rows_one) == 2 * STEPS
    for r2, r1 in zip(rows_two, rows_one, strict=True):
        assert r2.keys() == r1.keys()
        for key, value in r1.items():
            if isinstance(value, float):
                assert r2[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (key, r2, r1)
    results = json.loads((folder / "results.json").read_text())
    assert results["train"]["steps"] == STEPS


def _initial_parameters() -> dict[str, torch.Tensor]:
    """The parameters before training (same spec, same seed, same build)."""
    from metamask.compose import build_graph
    from metamask.config import load_spec
    from metamask.seeding import seed_everything
    from metamask.spec_data import load_pretrain_data

    spec = load_spec(SPEC, ["model.backbone=tiny"])
    seed_everything(spec.seed)
    graph = build_graph(spec, load_pretrain_data(spec), torch.device("cpu"))
    return {
        f"{name}/{key}": tensor
        for name, node in graph.nodes.items()
        for key, tensor in node.state_dict().get("module", {}).items()
    }


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_process_and_the_resumed_run_is_bitwise_the_same(
    tmp_path: Path,
) -> None:
    steps = 30
    common = [*TINY, "--set", f"train.steps={steps}", "--set", "train.device=cpu"]
    args = ["run", SPEC, "--distributed", "--set", "data.batch_size=4", *common]
    (tmp_path / "whole").mkdir(), (tmp_path / "cut").mkdir()
    whole = _torchrun(*args, "--out", "run", cwd=tmp_path / "whole")
    cut = _torchrun(*args, "--out", "run", cwd=tmp_path / "cut")
    wait_for_step(cut, tmp_path / "cut" / "run" / "metrics.jsonl", 8)
    cut.send_signal(signal.SIGTERM)  # to the launcher, as a scheduler does; torchrun forwards it
    _, err = cut.communicate(timeout=120)
    stopped = [line for line in err.splitlines() if line.startswith("metamask:")]
    assert len(stopped) == 1 and "SIGTERM: stopped after step" in stopped[0], err  # rank 0 only
    saved = load_checkpoint(tmp_path / "cut" / "run" / "checkpoint.pt")["step"]
    assert metric_rows(tmp_path / "cut" / "run" / "metrics.jsonl")[-1]["step"] == saved < steps
    resumed = _torchrun(*args, "--resume", "run", cwd=tmp_path / "cut")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    assert_identical(
        training_state(tmp_path / "whole" / "run" / "checkpoint.pt"),
        training_state(tmp_path / "cut" / "run" / "checkpoint.pt"),
    )


def test_distributed_outside_torchrun_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", SPEC, *TINY, "--distributed", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not started by torchrun" in err and "torchrun --nproc-per-node N" in err
    assert not (tmp_path / "run").exists()
    assert distributed.current() is None


def test_torchrun_without_distributed_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", SPEC, *TINY, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "without --distributed" in err and not (tmp_path / "run").exists()


def test_scaling_doc_snippet_runs() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
    (code,) = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    exec(compile(code, str(doc), "exec"), {})


def test_collectives_are_identities_in_one_process() -> None:
    x = torch.arange(6.0).reshape(3, 2).requires_grad_()
    assert distributed.gather_rows(x) is x
    assert distributed.total_with_grad(x) is x
    grads = [torch.ones(2)]
    distributed.mean_(grads)
    assert torch.equal(grads[0], torch.ones(2))
    assert distributed.world_size() == 1 and distributed.is_main()
    torch.manual_seed(3)
    expected = torch.rand(4, 5)
    torch.manual_seed(3)
    assert torch.equal(distributed.uniform(4, 5), expected)

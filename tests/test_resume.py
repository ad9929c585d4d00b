"""A resumed run is the same run: bitwise-equal parameters after a real SIGKILL and --resume."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
import torch
from cli_runs import TINY, assert_identical, metric_rows, run, start, wait_for_step
from helpers import MAE_GRAPH, tiny_bundle, tiny_spec

from metamask.checkpoint import load_checkpoint
from metamask.cli import main
from metamask.compose import build_graph
from metamask.errors import CheckpointError
from metamask.resume import spec_differences, truncate_metrics
from metamask.sampling import ResumableBatchSampler
from metamask.seeding import seed_everything
from metamask.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _method_spec(method: str) -> Path | None:
    """The method's first spec (BasicMotions first) whose dataset loads on this machine."""
    from metamask.config import load_spec
    from metamask.data.registry import get_dataset
    from metamask.spec_data import load_options

    found = sorted(
        Path("problems").glob(f"{method}-*.yaml"), key=lambda p: "basicmotions" not in p.name
    )
    for path in found:
        spec = load_spec(path)
        if get_dataset(spec.data.dataset).requires(load_options(spec)) is None:
            return path
    return None


@pytest.mark.parametrize("method", ["metamae", "mlomae", "metamae+mask"])
def test_sigkill_at_an_arbitrary_step_then_resume_is_bitwise_equal(
    tmp_path: Path, method: str
) -> None:
    spec = _method_spec(method)
    if spec is None:
        pytest.skip(f"no problems/{method}-*.yaml in this checkout (MLO-MAE specs: issue 4)")
    steps = 12
    args = [str(spec), *TINY, "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=2"]
    kill_at = random.Random().randint(3, steps - 3)  # any step; printed on failure
    reference = start("run", *args, "--out", str(tmp_path / "reference"))
    victim_dir = tmp_path / "victim"
    victim = start("run", *args, "--out", str(victim_dir))
    seen = wait_for_step(victim, victim_dir / "metrics.jsonl", kill_at)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    saved = load_checkpoint(victim_dir / "checkpoint.pt")["step"]
    assert 2 <= saved < steps, f"killed at step >= {seen}, checkpoint at {saved}"

    resumed = run("run", *args, "--resume", str(victim_dir))
    assert resumed.returncode == 0, resumed.stderr
    _, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err
    where = f"killed at step {seen} (checkpoint {saved})"
    assert_identical(
        load_checkpoint(tmp_path / "reference" / "checkpoint.pt"),
        load_checkpoint(victim_dir / "checkpoint.pt"),
        where,
    )
    assert metric_rows(victim_dir / "metrics.jsonl") == metric_rows(
        tmp_path / "reference" / "metrics.jsonl"
    ), where
    results = json.loads((victim_dir / "results.json").read_text())
    assert results["train"]["resumed_from"] == saved
    assert not list(victim_dir.glob(".*.tmp"))  # a write cut by the kill is cleaned up


def _trainer(steps: int, out: Path, graph: dict | None = None) -> Trainer:
    spec = tiny_spec(
        graph,
        train={"steps": steps, "log_every": 1, "checkpoint_every": 3},
        data={"batch_size": 4},
    )
    seed_everything(0)
    built = build_graph(spec, tiny_bundle("image2d", n=10), torch.device("cpu"))
    return Trainer(built, spec, out, progress=False)


@pytest.mark.parametrize("graph", [None, MAE_GRAPH], ids=["metamae", "mae"])
def test_restore_across_epochs_continues_bit_for_bit(tmp_path: Path, graph: dict | None) -> None:
    # 10 examples in batches of 4: an epoch is 2 batches, so the run crosses 5 epochs
    _trainer(11, tmp_path / "whole", graph).run()
    _trainer(7, tmp_path / "cut", graph).run()
    resumed = _trainer(11, tmp_path / "cut", graph)
    resumed.restore(load_checkpoint(tmp_path / "cut" / "checkpoint.pt"), tmp_path)
    assert resumed.step == 7
    resumed.run()
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    whole.pop("spec"), cut.pop("spec")  # train.steps differs: 11 vs the first leg's 7
    assert_identical(whole, cut)
    assert cut["nodes"][next(iter(cut["nodes"]))]["data"]["epochs"] == [5]


def test_restore_refuses_another_process_count_and_a_mid_window_checkpoint(
    tmp_path: Path,
) -> None:
    trainer = _trainer(6, tmp_path / "run")
    trainer.run()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"written by 2 process\(es\), resumed with 1"):
        _trainer(6, tmp_path / "run").restore({**state, "world_size": 2}, tmp_path)
    inside = _trainer(6, tmp_path / "run")
    inside.period = 4  # as in a graph whose upper node steps every 4 engine steps
    with pytest.raises(CheckpointError, match="inside an unroll window of 4 steps"):
        inside.restore({**state, "step": 5}, tmp_path)


def test_resume_with_other_model_or_method_values_is_refused_naming_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "problems/mae-basicmotions.yaml"
    fast = [*TINY, "--set", "train.steps=2"]
    assert main(["run", spec, "--out", str(tmp_path), *fast]) == 0
    capsys.readouterr()
    code = main(
        [
            "run",
            spec,
            "--resume",
            str(tmp_path),
            *fast,
            "--set",
            "model.mask_ratio=0.5",
            "--set",
            "graph.nodes.reconstruct.optimizer.lr=0.1",
            "--set",
            "train.log_every=5",  # allowed: logging does not change the run
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot resume" in err
    assert "model.mask_ratio (0.85 -> 0.5)" in err
    assert "graph.nodes.reconstruct.optimizer.lr (0.001 -> 0.1)" in err
    assert "log_every" not in err


def test_spec_differences_ignore_what_may_change() -> None:
    saved = {"model": {"mask_ratio": 0.75}, "train": {"steps": 10, "log_every": 1}, "eval": {}}
    new = {"model": {"mask_ratio": 0.75}, "train": {"steps": 20, "log_every": 9}, "seed": 1}
    assert spec_differences(saved, new) == ["seed", "train.steps"]


def test_truncate_metrics_drops_rows_after_the_checkpoint_and_half_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [json.dumps({"step": s, "node": "n"}) + "\n" for s in (1, 2, 3, 4)]
    path.write_text("".join(rows) + '{"step": 5, "no')
    assert truncate_metrics(path, 2) == 3
    assert path.read_text() == "".join(rows[:2])


def test_sampler_position_round_trips_and_shards_make_the_global_batch() -> None:
    single = ResumableBatchSampler(23, batch_size=6, seed=5)
    batches = [b for _ in range(3) for b in single]  # 3 epochs of 3 batches
    assert len(batches) == 9 and all(len(b) == 6 for b in batches)
    again = ResumableBatchSampler(23, batch_size=6, seed=5)
    it = iter(again)
    next(it), next(it)
    resumed = ResumableBatchSampler(23, batch_size=6, seed=5)
    resumed.load_state_dict(again.state_dict())
    assert [*resumed, *resumed, *resumed][:7] == batches[2:]
    shards = [ResumableBatchSampler(23, 3, seed=5, world_size=2, rank=r) for r in (0, 1)]
    first = [next(iter(s)) for s in shards]
    assert first[0] + first[1] == batches[0]

"""A resumed run is the same run: bitwise-equal parameters after a real SIGKILL and --resume
(with the spec, or with the run folder alone); its metrics and results describe the whole run;
a finished run's budget is extended only when asked, and said so."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from cli_runs import (
    TINY,
    assert_identical,
    metric_rows,
    run,
    start,
    training_state,
    wait_for_step,
)
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


def killed_beside_a_reference(
    tmp_path: Path, args: list[str], steps: int
) -> tuple[subprocess.Popen[str], Path, int]:
    """The same run started twice: ``reference`` left running, ``victim`` SIGKILLed once its
    metrics reach a random step (printed on failure). Returns the reference process, the
    victim's folder and the step seen before the kill."""
    kill_at = random.Random().randint(3, steps - 3)
    reference = start("run", *args, "--out", str(tmp_path / "reference"))
    victim_dir = tmp_path / "victim"
    victim = start("run", *args, "--out", str(victim_dir))
    seen = wait_for_step(victim, victim_dir / "metrics.jsonl", kill_at)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    return reference, victim_dir, seen


def assert_same_as_reference(
    reference: subprocess.Popen[str], tmp_path: Path, victim_dir: Path, where: str
) -> None:
    """The resumed victim ends bitwise where the uninterrupted reference does, with the same
    metric rows."""
    _, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err
    assert_identical(
        training_state(tmp_path / "reference" / "checkpoint.pt"),
        training_state(victim_dir / "checkpoint.pt"),
        where,
    )
    assert metric_rows(victim_dir / "metrics.jsonl") == metric_rows(
        tmp_path / "reference" / "metrics.jsonl"
    ), where


@pytest.mark.parametrize("method", ["metamae", "mlomae", "metamae+mask"])
def test_sigkill_at_an_arbitrary_step_then_resume_is_bitwise_equal(
    tmp_path: Path, method: str
) -> None:
    spec = _method_spec(method)
    if spec is None:
        pytest.skip(f"no problems/{method}-*.yaml in this checkout (MLO-MAE specs: issue 4)")
    steps = 12
    args = [str(spec), *TINY, "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=2"]
    reference, victim_dir, seen = killed_beside_a_reference(tmp_path, args, steps)
    saved = load_checkpoint(victim_dir / "checkpoint.pt")["step"]
    assert 2 <= saved < steps, f"killed at step >= {seen}, checkpoint at {saved}"

    resumed = run("run", *args, "--resume", str(victim_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_as_reference(
        reference, tmp_path, victim_dir, f"killed at step {seen} (checkpoint {saved})"
    )
    results = json.loads((victim_dir / "results.json").read_text())
    assert results["train"]["resumed_from"] == saved
    assert not list(victim_dir.glob(".*.tmp"))  # a write cut by the kill is cleaned up


def test_sigkill_then_resume_with_the_run_folder_alone(tmp_path: Path) -> None:
    """`metamask run --resume DIR` with nothing else: the spec and every --set come from the
    folder; the end is bitwise the uninterrupted run's; metrics and results span the run."""
    steps = 10
    args = [
        "problems/metamae-basicmotions.yaml",
        *TINY,
        "--set",
        f"train.steps={steps}",
        "--set",
        "train.checkpoint_every=2",
    ]
    reference, victim_dir, seen = killed_beside_a_reference(tmp_path, args, steps)
    saved = load_checkpoint(victim_dir / "checkpoint.pt")
    before = saved["clock"]["elapsed"]
    assert saved["step"] >= 2 and before > 0

    resumed = run("run", "--resume", str(victim_dir), "--quiet")  # the folder alone
    assert resumed.returncode == 0, resumed.stderr
    where = f"killed at step {seen} (checkpoint {saved['step']})"
    assert_same_as_reference(reference, tmp_path, victim_dir, where)
    times = [json.loads(line)["time"] for line in (victim_dir / "metrics.jsonl").open()]
    assert times == sorted(times), f"{where}: time goes back: {times}"
    train = json.loads((victim_dir / "results.json").read_text())["train"]
    assert train["steps"] == steps and train["resumed_from"] == saved["step"]
    [resume] = train["resumes"]
    assert resume["from_step"] == saved["step"] and resume["at"][:2] == "20"
    assert train["seconds"] == pytest.approx(before + resume["seconds"])
    assert train["seconds"] > times[0]
    clock = load_checkpoint(victim_dir / "checkpoint.pt")["clock"]
    assert clock["resumes"] == train["resumes"]


def test_a_signal_hint_gives_a_command_that_works_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    args = ["problems/mae-basicmotions.yaml", *TINY, "--set", "train.steps=200"]
    victim = start("run", *args, "--out", str(folder))
    wait_for_step(victim, folder / "metrics.jsonl", 2)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 143, err
    hint = err.split("continue with: ")[1].split(")")[0].split()
    assert hint == ["metamask", "run", "--resume", str(folder)], err
    finish = run(*hint[1:], "--quiet")  # as printed (--quiet only hides the bar)
    assert finish.returncode == 0, finish.stderr
    assert json.loads((folder / "results.json").read_text())["train"]["steps"] == 200


def _finished(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "run"
    code = main(
        ["run", "problems/mae-basicmotions.yaml", "--out", str(out), *TINY, "--set",
         "train.steps=4", "--set", "eval.enabled=true", "--set", "eval.probe.epochs=2", *extra]
    )  # fmt: skip
    assert code == 0
    return out


def test_a_finished_run_is_extended_only_when_asked_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished(tmp_path)
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the run is finished (step 4 of 4)" in err, err
    assert f"metamask eval {out}" in err and "--set train.steps=N" in err

    assert main(["run", "--resume", str(out), "--set", "train.steps=3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "may only extend it" in err and len(err.splitlines()) == 1, err

    assert main(["run", "--resume", str(out), "--set", "train.steps=6", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "extending the budget from 4 to 6 steps" in err, err
    assert "no longer the one a fresh run of 6 steps would give" in err
    results = json.loads((out / "results.json").read_text())
    assert results["train"]["steps"] == 6 and results["train"]["resumes"][0]["from_step"] == 4
    assert [e["step"] for e in results["evaluations"]] == [4, 6]  # the first finish kept
    assert "steps: 6" in (out / "spec.yaml").read_text()  # the next --resume DIR continues it
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 6


def test_resume_without_a_spec_needs_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 2
    assert "give a SPEC file, or --resume DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["run", "--resume", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run folder (no spec.yaml and no checkpoint.pt)" in err
    assert len(err.splitlines()) == 1


def test_a_run_without_spec_yaml_resumes_from_the_checkpoint_spec(tmp_path: Path) -> None:
    out = _finished(tmp_path)
    (out / "spec.yaml").unlink()  # a run written before the folder held its spec
    (out / "results.json").unlink()
    assert main(["run", "--resume", str(out), "--set", "train.steps=5", "--quiet"]) == 0
    assert json.loads((out / "results.json").read_text())["train"]["steps"] == 5


def _trainer(
    steps: int, out: Path, graph: dict | None = None, dropout: float = 0.0, compile: bool = False
) -> Trainer:
    spec = tiny_spec(
        graph,
        train={"steps": steps, "log_every": 1, "checkpoint_every": 3, "compile": compile},
        data={"batch_size": 4},
        model={"encoder": {"dropout": dropout}},
    )
    seed_everything(0)
    built = build_graph(spec, tiny_bundle("image2d", n=10), torch.device("cpu"))
    return Trainer(built, spec, out, progress=False)


@pytest.mark.parametrize(
    ("graph", "dropout", "compile"),
    [
        (None, 0.0, False),
        (MAE_GRAPH, 0.0, False),
        (None, 0.2, False),
        (MAE_GRAPH, 0.2, False),
        pytest.param(None, 0.2, True, marks=pytest.mark.slow),  # compiling: minutes on a CPU
    ],
    ids=["metamae", "mae", "metamae-dropout", "mae-dropout", "metamae-dropout-compiled"],
)
def test_restore_across_epochs_continues_bit_for_bit(
    tmp_path: Path, graph: dict | None, dropout: float, compile: bool
) -> None:
    # 10 examples in batches of 4: an epoch is 2 batches, so the run crosses 5 epochs; with
    # dropout, the encoder's 16-bit masks (metamask.models.dropout) and the fused AdamW;
    # compiled (train.compile), the compiler's dropout masks and MetaMAE's eager support pass
    _trainer(11, tmp_path / "whole", graph, dropout, compile).run()
    _trainer(7, tmp_path / "cut", graph, dropout, compile).run()
    resumed = _trainer(11, tmp_path / "cut", graph, dropout, compile)
    resumed.restore(load_checkpoint(tmp_path / "cut" / "checkpoint.pt"), tmp_path)
    assert resumed.step == 7
    resumed.run()
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    whole.pop("spec"), cut.pop("spec")  # train.steps differs: 11 vs the first leg's 7
    whole.pop("clock"), cut.pop("clock")  # wall time
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


def test_a_key_added_to_the_schema_since_the_checkpoint_is_not_a_difference(
    tmp_path: Path,
) -> None:
    """A checkpoint written before the schema gained a key (with its default) still resumes;
    a real difference is still named."""
    import json

    from helpers import MAE_GRAPH, tiny_spec

    from metamask.config import spec_to_dict
    from metamask.errors import CheckpointError
    from metamask.resume import check_same_run, saved_spec

    spec = tiny_spec(MAE_GRAPH)
    older = spec_to_dict(spec)
    for node in older["graph"]["nodes"].values():
        node.pop("unroll_steps")  # as if the schema had no such key then (its default: 1)
    state = {"spec": json.dumps(older)}
    check_same_run(saved_spec(state, tmp_path), spec_to_dict(spec), tmp_path)
    older["model"]["mask_ratio"] = 0.25
    with pytest.raises(CheckpointError, match=r"model.mask_ratio \(0.25 -> 0.5\)"):
        check_same_run(saved_spec({"spec": json.dumps(older)}, tmp_path), spec_to_dict(spec), tmp_path)

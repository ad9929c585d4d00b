"""examples/metamae_dabs.py: the table, reading finished runs back and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metamask.config import load_spec
from metamask.experiments import finished_results
from tests.scripts.loading import load_script

ROOT = Path(__file__).resolve().parents[2]
FAST = [
    "--steps", "3", "--quiet",
    "--set", "model.backbone=tiny", "--set", "train.threads=1",
    "--set", "eval.probe.epochs=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def example():
    return load_script("examples/metamae_dabs.py")


def test_the_table_has_both_methods_and_reuse_trains_nothing(example, tmp_path: Path) -> None:
    assert (
        example.main(["--dataset", "wine", "--seeds", "0", "1", *FAST, "--out", str(tmp_path)]) == 0
    )
    table = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["test"].endswith("(n=2)")) for r in table["summary"]] == [
        ("mae", True),
        ("metamae", True),
    ]
    run = tmp_path / "wine" / "metamae" / "seed1"
    before = (run / "results.json").stat().st_mtime_ns, (run / "checkpoint.pt").stat().st_mtime_ns
    assert (
        example.main(
            ["--dataset", "wine", "--seeds", "0", "1", *FAST, "--out", str(tmp_path), "--reuse"]
        )
        == 0
    )
    after = (run / "results.json").stat().st_mtime_ns, (run / "checkpoint.pt").stat().st_mtime_ns
    assert before == after
    assert json.loads((tmp_path / "results.json").read_text())["summary"] == table["summary"]


def test_reuse_resumes_a_run_that_left_only_its_checkpoint(
    example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--dataset", "wine", "--seeds", "0", *FAST, "--out", str(tmp_path)]
    assert example.main(args) == 0
    run = tmp_path / "wine" / "mae" / "seed0"
    first = json.loads((run / "results.json").read_text())
    (run / "results.json").unlink()  # as if stopped after its last step: resumed
    assert example.main(args) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["train"]["resumed_from"] is not None
    assert again["test"] == first["test"]
    # the whole run: the same steps (nothing was left to train), one resume at its end
    assert again["train"]["steps"] == first["train"]["steps"]
    assert [leg["from_step"] for leg in again["train"]["resumes"]] == [first["train"]["steps"]]


def test_a_changed_spec_is_not_reused(example, tmp_path: Path) -> None:
    args = ["--dataset", "wine", "--seeds", "0", *FAST, "--out", str(tmp_path), "--reuse"]
    assert example.main(args) == 0
    run = tmp_path / "wine" / "mae" / "seed0" / "results.json"
    spec = json.loads(run.read_text())["spec"]
    spec["model"]["mask_ratio"] = 0.25  # as if the run came from another spec
    results = json.loads(run.read_text()) | {"spec": spec}
    run.write_text(json.dumps(results))
    assert (
        finished_results(
            run.parent,
            load_spec(
                ROOT / "problems/mae-wine.yaml",
                ["model.backbone=tiny", "train.steps=3", "train.threads=1", "eval.probe.epochs=2"],
            ),
        )
        is None
    )


def test_reprobe_evaluates_a_finished_run_again_from_its_checkpoint(
    example, tmp_path: Path
) -> None:
    reprobe = load_script("examples/reprobe.py")
    args = ["--dataset", "wine", "--seeds", "0", *FAST, "--out", str(tmp_path)]
    assert example.main(args) == 0
    run = tmp_path / "wine" / "metamae" / "seed0"
    first = json.loads((run / "results.json").read_text())
    assert reprobe.main([str(run)]) == 0  # same probe settings: the same answer
    again = json.loads((run / "results.json").read_text())
    assert again["test"] == first["test"]
    assert [e["test"] for e in again["evaluations"]] == [first["test"], first["test"]]
    assert again["train"] == first["train"] and again["spec"] == first["spec"]
    assert reprobe.main([str(run), "--set", "eval.probe.epochs=3"]) == 0
    third = json.loads((run / "results.json").read_text())
    assert third["spec"]["eval"]["probe"]["epochs"] == 3
    assert [e["eval"]["probe"]["epochs"] for e in third["evaluations"]][-1] == 3
    assert len(third["evaluations"]) == 3  # the earlier evaluations are kept
    assert len(json.loads((run / "probe_curve.json").read_text())) == 3
    assert (
        example.main([*args, "--reuse", "--set", "eval.probe.epochs=3"]) == 0
    )  # kept, not retrained
    assert json.loads((run / "results.json").read_text())["evaluations"] == third["evaluations"]
    assert reprobe.main([str(tmp_path / "nowhere")]) == 2

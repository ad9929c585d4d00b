"""Bad input on the real command line: each case is one line on stderr naming the file, key or
value and what was expected, exit code 2, no traceback, and nothing left behind (no run folder,
no empty metrics.jsonl, no picture).

The whole matrix runs in-process through ``metamask.cli.main`` (fast: no case trains); a
representative subset runs again in real subprocesses, as a user types it.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import fixtures_data as fx
import pytest
import yaml
from cli_runs import cli

from metamask.cli import main

REPO = Path(__file__).resolve().parents[1]
METAMAE = str(REPO / "problems/metamae-basicmotions.yaml")
MLOMAE = str(REPO / "problems/mlomae-digits.yaml")
HIGGS = str(REPO / "problems/metamae-higgs.yaml")
TINY = ["--set", "model.backbone=tiny", "--set", "train.threads=1", "--quiet"]


@dataclass(frozen=True)
class Case:
    """``argv`` ({tmp}: the test's folder, {spec}: the default spec) and the message expected."""

    id: str
    argv: tuple[str, ...]
    message: str  # a fragment of the one line printed ({tmp} substituted)


def run(*sets: str, spec: str = METAMAE) -> tuple[str, ...]:
    """``metamask run SPEC --set A --set B ... --out {tmp}/run`` on the tiny backbone."""
    args = [a for s in sets for a in ("--set", s)]
    return ("run", spec, *TINY, *args, "--out", "{tmp}/run")


def show(*args: str, spec: str = METAMAE) -> tuple[str, ...]:
    return ("show", spec, *args)


CASES = [
    # -- ranges, where the spec is read (--set names itself as the origin) --------------------
    Case("batch-0", run("data.batch_size=0"), "--set: data.batch_size: expected an integer >= 1, got 0"),
    Case("batch-neg", run("data.batch_size=-4"), "data.batch_size: expected an integer >= 1, got -4"),
    Case("steps-0", run("train.steps=0"), "--set: train.steps: expected an integer >= 1, got 0"),
    Case("steps-neg", run("train.steps=-5"), "train.steps: expected an integer >= 1, got -5"),
    Case("log-every-0", run("train.log_every=0"), "train.log_every: expected an integer >= 1"),
    Case("checkpoint-neg", run("train.checkpoint_every=-1"), "train.checkpoint_every: expected an integer >= 0"),
    Case("mask-ratio-1", run("model.mask_ratio=1"), "model.mask_ratio: expected a number in (0, 1), got 1"),
    Case("val-fraction-0", run("data.val_fraction=0"), "data.val_fraction: expected a number in (0, 1)"),
    Case("dropout-1", run("model.encoder.dropout=1"), "model.encoder.dropout: expected a number in [0, 1), got 1"),
    Case("width-0", run("model.encoder.width=0"), "model.encoder.width: expected an integer >= 1, got 0"),
    Case("heads-divide", run("model.encoder.heads=3"), "model.encoder.heads: 3 heads do not divide the encoder width 32"),
    Case("lr-0", run("graph.nodes.reconstruct.optimizer.lr=0"), "graph.nodes.reconstruct.optimizer.lr: expected a number > 0, got 0"),
    Case("lr-nan", run("graph.nodes.reconstruct.optimizer.lr=.nan"), "optimizer.lr: expected a number > 0, got nan"),
    Case("betas", run("graph.nodes.reconstruct.optimizer.betas=[0.9,1.5]"), "optimizer.betas[1]: expected a number in [0, 1), got 1.5"),
    Case("weight-decay", run("graph.nodes.reconstruct.optimizer.weight_decay=-1"), "weight_decay: expected a number >= 0, got -1"),
    Case("unroll-0", run("graph.nodes.adapt.unroll_steps=0"), "graph.nodes.adapt.unroll_steps: expected an integer >= 1, got 0"),
    Case("probe-epochs", run("eval.probe.epochs=0"), "eval.probe.epochs: expected an integer >= 1, got 0"),
    Case("probe-lr", run("eval.probe.lr=-1e-3"), "--set: eval.probe.lr: expected a number > 0, got -1e-3"),
    Case("seed", run("seed=-1"), "seed: expected an integer in [0, 4294967295], got -1"),
    # node-type, masker and estimator options: the same parser, at read or at build
    Case("inner-lr", run("graph.nodes.adapt.inner_lr=-1"), "graph.nodes.adapt.inner_lr: expected a number > 0, got -1"),
    Case("s-ratio", run("graph.nodes.adapt.s_ratio=1.5"), "graph.nodes.adapt.s_ratio: expected a number in [0, 1], got 1.5"),
    Case("temperature", run("graph.nodes.reconstruct.temperature=0"), "graph.nodes.reconstruct.temperature: expected a number > 0, got 0"),
    Case("latent-iters", run("graph.nodes.adapt.latent_solver={type: implicit, iterations: 0}"), "graph.nodes.adapt.latent_solver.iterations: expected an integer >= 1, got 0"),
    Case("estimator-alpha", run("graph.nodes.pretrain.hypergradient.alpha=-1", spec=MLOMAE), "graph.nodes.pretrain.hypergradient.alpha: expected a number > 0, got -1"),
    Case("holdout", run("graph.nodes.head.holdout=1", spec=MLOMAE), "graph.nodes.head.holdout: expected a number in (0, 1), got 1"),
    Case("masker-hidden", run("graph.nodes.pretrain.masker.hidden=0", spec=MLOMAE), "graph.nodes.pretrain.masker.hidden: expected an integer >= 1, got 0"),
    # data.augment: its range where the spec is read, what the dataset can take before any folder
    Case("augment-neg", run("data.augment.crop_pad=-1"), "--set: data.augment.crop_pad: expected an integer >= 0, got -1"),
    Case("augment-flip-signal", run("data.augment.flip=true"), "--set: data.augment.flip: dataset basicmotions has signal1d inputs, which take only shift"),
    Case("augment-shift-long", run("data.augment.shift=100"), "data.augment.shift: 100 must be below the signal length 100 (basicmotions)"),
    Case("augment-pad-image", run("data.augment.crop_pad=32", spec=MLOMAE), "data.augment.crop_pad: 32 must be below the image side 32 (digits)"),
    Case("augment-show", show("--set", "data.augment.shift=2", spec=MLOMAE), "data.augment.shift: dataset digits has image2d inputs, which take only crop_pad, flip, cutout"),
    # a base file (extends:) is named for the key it wrote
    Case("base-file", ("run", "{tmp}/spec.yaml", *TINY, "--out", "{tmp}/run"), "{tmp}/base.yaml: train.steps: expected an integer >= 1, got 0"),
    Case("base-node-option", ("show", "{tmp}/spec-node.yaml"), "{tmp}/base-node.yaml: graph.nodes.adapt.inner_lr: expected a number > 0, got -0.5"),
    # -- the run folder --------------------------------------------------------------------------
    Case("out-file", ("run", METAMAE, *TINY, "--out", "{tmp}/a-file"), "--out {tmp}/a-file: is a file; expected a folder"),
    Case("out-under-file", ("run", METAMAE, *TINY, "--out", "{tmp}/a-file/sub/run"), "--out {tmp}/a-file/sub/run: lies under {tmp}/a-file, which is a file"),
    # -- data ------------------------------------------------------------------------------------
    Case("higgs-random", ("run", HIGGS, *TINY, "--data-root", "{tmp}/dabs", "--out", "{tmp}/run"), "dataset higgs: present but unreadable: {tmp}/dabs/particle_physics/higgsPretrain.csv: binary data, not text"),
    Case("arrays-random", ("run", "{tmp}/arrays.yaml", *TINY, "--out", "{tmp}/run"), "{tmp}/noise.npz: not an .npz archive"),
    Case("batch-over-data", run("data.batch_size=100000"), "--set: data.batch_size 100000 exceeds the 32 examples node 'adapt' trains on"),
    Case("batch-1-contrast", run("data.batch_size=1"), "--set: data.batch_size: the task contrast of node 'reconstruct' (reg_weight 1.0) compares the examples of a batch; expected batches of at least 2, got 1"),
    Case("last-batch-1", run("data.batch_size=31", "data.drop_last=false"), "got 31 (and 32 examples leave a last batch of 1: data.drop_last is false)"),
    Case("patch-tiling", run("model.patch=[7]"), "patch (7,) does not divide input (6, 100)"),
    Case("eval-unknown", run("eval.dataset=nope"), "--set: eval.dataset: unknown dataset 'nope'"),
    Case("eval-shape", run("eval.dataset=digits"), "--set: eval.dataset: digits has image2d inputs (3, 32, 32)"),
    Case("eval-needs-root", run("eval.dataset=pamap2"), "--set: eval.dataset: dataset pamap2: needs --data-root"),
    # -- show --------------------------------------------------------------------------------------
    Case("png-ext", show("--png", "{tmp}/graph.jpgx"), "--png {tmp}/graph.jpgx: unsupported picture format '.jpgx'; expected a file name ending in .png, .svg, .pdf"),
    Case("png-folder", show("--png", "{tmp}/nowhere/graph.png"), "--png {tmp}/nowhere/graph.png: folder {tmp}/nowhere does not exist"),
    Case("show-estimator", show("--set", "graph.nodes.pretrain.hypergradient.type=darst", spec=MLOMAE), "--set: graph.nodes.pretrain.hypergradient: unknown hypergradient estimator 'darst' (did you mean 'darts'?)"),
    Case("show-latent-solver", show("--set", "graph.nodes.adapt.latent_solver=unroled"), "graph.nodes.adapt.latent_solver.type: unknown latent solver 'unroled' (did you mean 'unrolled'?)"),
    Case("show-node-option", show("--set", "graph.nodes.adapt.inner_lrr=0.1"), "graph.nodes.adapt.inner_lrr: unknown key (did you mean 'inner_lr'?)"),
    Case("show-eval-dataset", show("--set", "eval.dataset=digits"), "--set: eval.dataset: digits has image2d inputs (3, 32, 32)"),
    Case("show-optimizer-on-adapt", show("--set", "graph.nodes.adapt.optimizer.lr=1"), "--set: graph.nodes.adapt.optimizer: an adapt node owns no parameters"),
]
# the subset that runs again as real processes (each imports torch: a few seconds)
SUBPROCESS = ("batch-0", "out-under-file", "higgs-random", "png-ext", "show-estimator")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The files the cases point at: a file, specs with bad bases, spoiled data."""
    (tmp_path / "a-file").write_text("not a folder\n")
    for spec, base, bad in (
        ("spec.yaml", "base.yaml", {"train": {"steps": 0}}),
        ("spec-node.yaml", "base-node.yaml", {"graph": {"nodes": {"adapt": {"inner_lr": -0.5}}}}),
    ):
        (tmp_path / base).write_text(yaml.safe_dump(bad))
        extends = [os.path.relpath(METAMAE, tmp_path), base]
        (tmp_path / spec).write_text(yaml.safe_dump({"extends": extends}))
    fx.write_higgs(tmp_path / "dabs", "dabs")
    noise = random.Random(0).randbytes(4096)
    (tmp_path / "dabs/particle_physics/higgsPretrain.csv").write_bytes(noise)
    (tmp_path / "noise.npz").write_bytes(noise)
    arrays = {
        "path": str(tmp_path / "noise.npz"),
        "modality": "signal1d",
        "input_shape": [3, 16],
        "patch": [4],
        "num_classes": 2,
    }
    base = yaml.safe_load(Path(METAMAE).read_text())
    spec = {
        "extends": [os.path.relpath(REPO / "problems" / b, tmp_path) for b in base["extends"]],
        "name": "arrays",
        "data": {"dataset": "mine", "arrays": arrays},
    }
    (tmp_path / "arrays.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def _argv(case: Case, tmp: Path) -> list[str]:
    """The case's command line; each case its own run folder (processes run side by side)."""
    argv = [f"{{tmp}}/run-{case.id}" if a == "{tmp}/run" else a for a in case.argv]
    return [a.replace("{tmp}", str(tmp)) for a in argv]


def _check(case: Case, tmp: Path, code: int, err: str, before: set[Path]) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert code == 2, (code, err)
    assert case.message.replace("{tmp}", str(tmp)) in lines[0], lines[0]
    assert set(tmp.rglob("*")) == before, sorted(set(tmp.rglob("*")) - before)  # nothing new


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    case: Case, workspace: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    before = set(workspace.rglob("*"))
    code = main(_argv(case, workspace))
    _check(case, workspace, code, capsys.readouterr().err, before)


def test_the_same_on_the_real_command_line(workspace: Path) -> None:
    _in_subprocesses([c for c in CASES if c.id in SUBPROCESS], workspace)


@pytest.mark.slow
def test_the_whole_matrix_on_the_real_command_line(workspace: Path) -> None:
    """Every case as a real process (a few minutes on 2 cores: ``pytest -m slow``)."""
    for start in range(0, len(CASES), 4):  # four at a time
        _in_subprocesses(CASES[start : start + 4], workspace)


def _in_subprocesses(cases: list[Case], workspace: Path) -> None:
    before = set(workspace.rglob("*"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    procs = [  # started together: the imports overlap
        subprocess.Popen(
            cli(*_argv(c, workspace)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=workspace,
        )
        for c in cases
    ]
    for case, proc in zip(cases, procs, strict=True):
        _, err = proc.communicate(timeout=300)
        _check(case, workspace, proc.returncode, err, before)


def test_datasets_lists_a_folder_of_random_bytes_as_unreadable_not_available(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["datasets", "--data-root", str(workspace / "dabs")]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:1] == ["higgs"])
    assert "folder" not in row and "no (" in row, row
    spoiled = workspace / "dabs/particle_physics/higgsPretrain.csv"
    assert f"present but unreadable: {spoiled}: binary data, not text" in out
    fx.write_higgs(workspace / "dabs", "dabs")  # whole again: available
    assert main(["datasets", "--data-root", str(workspace / "dabs")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("higgs"))
    assert row.split()[-1] == "folder", row


def test_every_range_declared_in_the_schema_is_checked() -> None:
    """Each ranged field of the spec refuses a value outside its range (the first bound)."""
    import dataclasses
    import typing

    from metamask.config import schema
    from metamask.config.parse import parse_dataclass
    from metamask.errors import ConfigError
    from metamask.ranges import range_of

    checked = 0
    for cls in (schema.DataSpec, schema.TrainSpec, schema.OptimizerSpec, schema.ProbeSpec):
        hints = typing.get_type_hints(cls, include_extras=True)
        required = {"dataset": "x"} if cls is schema.DataSpec else {}
        for f in dataclasses.fields(cls):
            bounds = range_of(getattr(hints[f.name], "__metadata__", ()))
            if bounds is None or bounds.low is None:
                continue
            bad = bounds.low if bounds.low_open else bounds.low - 1
            with pytest.raises(ConfigError, match=f"{f.name}: expected"):
                parse_dataclass(cls, {**required, f.name: bad}, "spec.yaml")
            checked += 1
    assert checked >= 12


def test_show_validates_without_data_and_without_data_root(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stand-in build needs no data: a DABS spec with a transfer eval.dataset shows as is."""
    spec = str(REPO / "problems/mae-imagenet32.yaml")
    assert main(["show", spec, "--set", "model.backbone=tiny"]) == 0, capsys.readouterr().err
    assert "imagenet32" in capsys.readouterr().out

"""metamask.experiments.compare and ``metamask compare``: a rerun trains nothing, a stopped
comparison resumes, the table pairs the arms by seed, and bad input is refused in one line
with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import metamask.experiments.finished as finished_module
from metamask.experiments.compare import compare
from metamask.experiments.planning import Vary, arms_of
from tests.cli_runs import run as cli_run

ROOT = Path(__file__).resolve().parents[2]
MAE, META = ROOT / "problems/mae-wine.yaml", ROOT / "problems/metamae-wine.yaml"
TINY = ["model.backbone=tiny", "train.steps=2", "train.threads=1", "eval.probe.epochs=2"]
QUIET = Console(stderr=True, quiet=True)


def _compare(out: Path, seeds: list[int], **kw):  # type: ignore[no-untyped-def]
    return compare(arms_of([MAE, META]), seeds, out, TINY, progress=False, console=QUIET, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished comparison: MAE and MetaMAE on wine, seeds 0 and 1 (tiny, 2 steps)."""
    out = tmp_path_factory.mktemp("compare")
    _compare(out, [0, 1])
    return out


def test_the_table_pairs_the_arms_by_seed(finished: Path) -> None:
    table = json.loads((finished / "table.json").read_text())
    assert [a["arm"] for a in table["arms"]] == ["mae-wine", "metamae-wine"]
    runs = {(r["arm"], r["seed"]): r for r in table["runs"]}
    assert len(runs) == 4
    for arm in table["arms"]:
        probe = arm["scores"]["probe"]
        assert probe["values"] == [runs[(arm["arm"], s)]["scores"]["probe"] for s in (0, 1)]
        for folder in arm["folders"]:  # normal run folders: results.json holds the scores
            results = json.loads((Path(folder) / "results.json").read_text())
            assert results["test"] in probe["values"]
    (pair,) = table["comparisons"]
    assert (pair["arm"], pair["baseline"], pair["score"]) == ("metamae-wine", "mae-wine", "probe")
    diffs = [
        runs[("metamae-wine", s)]["scores"]["probe"] - runs[("mae-wine", s)]["scores"]["probe"]
        for s in (0, 1)
    ]
    assert pair["differences"] == pytest.approx(diffs)
    assert pair["sentence"].startswith("probe: metamae-wine − mae-wine = ")
    assert pair["sentence"] in (finished / "table.md").read_text()
    assert (finished / "compare.png").stat().st_size > 0


def test_a_rerun_trains_nothing(finished: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sorted((p, p.stat().st_mtime_ns) for p in finished.rglob("checkpoint.pt"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(finished_module, "run_spec", refuse)
    result = _compare(finished, [0, 1])
    assert all(item.read_back for item in result.finished)
    assert sorted((p, p.stat().st_mtime_ns) for p in finished.rglob("checkpoint.pt")) == before


def test_a_stopped_comparison_resumes_and_trains_only_what_is_missing(tmp_path: Path) -> None:
    first = _compare(tmp_path, [0])
    stopped = first.finished[1].run.folder  # MetaMAE seed 0: as if stopped after its last step
    (stopped / "results.json").unlink()
    again = _compare(tmp_path, [0, 1])
    how = {(f.run.arm.label, f.run.seed): f for f in again.finished}
    assert how[("mae-wine", 0)].read_back
    resumed = how[("metamae-wine", 0)]
    assert not resumed.read_back and resumed.results["train"]["resumed_from"] == 2
    assert resumed.scores == first.finished[1].scores  # the same run, the same probe
    assert not how[("mae-wine", 1)].read_back and not how[("metamae-wine", 1)].read_back


def test_a_single_seed_gives_no_interval_in_one_line(tmp_path: Path) -> None:
    result = _compare(tmp_path, [0], baseline="metamae-wine")
    (pair,) = result.table["comparisons"]
    assert (pair["arm"], pair["baseline"], pair["low"]) == ("mae-wine", "metamae-wine", None)
    assert pair["sentence"].endswith(
        "no interval, a 95% interval needs at least 2 paired seeds, got 1: run more --seeds"
    )
    assert "no interval (1 seed)" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "model.mask_ratioo=0.5"], "--vary model.mask_ratioo=0.5: model.mask_ratioo: "),
        (["--vary", "model.mask_ratio=0.5,2"], "--vary model.mask_ratio=2: model.mask_ratio: "),
        (["--vary", "graph.nodes.adapt.inner_steps=1,x"], "--vary graph.nodes.adapt.inner_"),
        (["--vary", "model.mask_ratio"], "--vary model.mask_ratio: expected KEY=V1,V2"),
        (["--baseline", "mae"], "--baseline mae: not an arm; the arms are mae-wine, metamae-wine"),
        (["--jobs", "0"], "--jobs 0: expected an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "cmp"
    tiny = [x for item in TINY for x in ("--set", item)]
    done = cli_run(
        "compare", str(MAE), str(META), "--seeds", "0", "1", *tiny, *args, "--out", str(out)
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"metamask: error: {message}"), lines
    assert not out.exists()


def test_vary_arms_run_with_their_values(tmp_path: Path) -> None:
    result = compare(
        arms_of([MAE], [Vary.parse("model.mask_ratio=0.5,0.25")]),
        [0],
        tmp_path,
        TINY,
        progress=False,
        console=QUIET,
    )
    for item in result.finished:
        saved = item.results["spec"]["model"]["mask_ratio"]
        assert f"model.mask_ratio={saved}" in item.run.arm.label


@pytest.mark.slow
def test_a_compare_stopped_by_ctrl_c_resumes_where_it_stopped(tmp_path: Path) -> None:
    """SIGINT in the middle of a run: exit 130 after a checkpoint; the same command again
    resumes that run from its checkpoint and trains the rest."""
    import signal
    import time

    from tests.cli_runs import start, wait_for_step

    out = tmp_path / "cmp"
    args = ["compare", str(MAE), str(META), "--seeds", "0", "--out", str(out)]
    args += ["--set", "model.backbone=tiny", "--set", "train.threads=1", "--set",
             "train.steps=400", "--set", "train.log_every=1", "--set", "eval.probe.epochs=2",
             "--quiet"]  # fmt: skip
    proc = start(*args)
    deadline = 120.0
    metrics: list[Path] = []
    while not metrics and deadline > 0:  # the run folder is named by its spec's digest
        metrics = sorted(out.glob("runs/mae-wine/seed0-*/metrics.jsonl"))
        deadline -= 0.05
        time.sleep(0.05)
    assert metrics, proc.communicate()
    wait_for_step(proc, metrics[0], 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert (metrics[0].parent / "checkpoint.pt").is_file()
    assert not (metrics[0].parent / "results.json").exists()
    again = cli_run(*args, timeout=600)
    assert again.returncode == 0, again.stderr
    results = json.loads((metrics[0].parent / "results.json").read_text())
    assert results["train"]["resumed_from"] is not None and results["train"]["steps"] == 400
    assert "probe: metamae-wine − mae-wine = " in again.stdout

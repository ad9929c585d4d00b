"""examples/masker_long.py (issue 23's long runs): the spec each arm resolves to, bad flags
refused, and a --quick run end to end (child processes, tables, pictures) that a rerun reads
back without training anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from metamask.experiments import finished_results
from tests.scripts.loading import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> Any:
    return load_script("examples/masker_long.py")


def test_each_arm_resolves_to_its_settings(example: Any) -> None:
    args = example.parse(["--seeds", "4"])
    assert args.steps == 1000 and args.audit_every == 50 and args.seeds == [4]
    for dataset in example.DATASETS:
        for arm in example.ARMS:
            spec = example.spec_for(dataset, arm, 4, args)
            nodes = spec.graph.nodes
            assert spec.seed == 4 and spec.train.steps == 1000 and spec.train.threads == 1
            assert spec.data.dataset == dataset and spec.eval.finetune is not None
            assert nodes["pretrain"].optimizer.lr == 1e-3  # every arm: the same MAE lr
            if arm == "mae":
                assert list(nodes) == ["pretrain"] and nodes["pretrain"].type == "reconstruct"
                continue
            masker = dict(nodes["pretrain"].options)["masker"]
            estimator = "unrolled" if arm in ("token-exact", "token-alive") else "darts"
            for edge in ("pretrain", "head"):
                hypergradient = nodes[edge].hypergradient
                assert hypergradient.type == estimator
                audit = dict(hypergradient.options).get("audit")
                if arm == "published":
                    assert audit == {"every": 50, "reference": "unrolled"}
                else:
                    assert audit is None
            assert masker["type"] == ("token_mlp" if arm.startswith("token") else "flat_mlp")
            alive = {"keep_mean": True, "weighting": "normalised"}
            assert (alive.items() <= masker.items()) == (arm in ("token-alive", "token-frozen"))
            frozen = arm in ("frozen", "token-frozen")
            assert nodes["mask"].optimizer.lr == (1e-12 if frozen else 1e-3)


def test_bad_flags_are_one_line_and_exit_2(
    example: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for flags, message in (
        (["--steps", "1"], "--steps: expected at least 2, got 1"),
        (["--jobs", "0"], "--jobs: expected at least 1, got 0"),
    ):
        with pytest.raises(SystemExit) as stopped:
            example.parse(flags)
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    out = tmp_path / "never"
    assert example.main(["--quick", "--set", "train.stepz=3", "--out", str(out)]) == 2
    assert "train.stepz" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_quick_run_end_to_end_and_a_rerun_trains_nothing(example: Any, tmp_path: Path) -> None:
    out = tmp_path / "quick"
    argv = ["--quick", "--quiet", "--datasets", "controlled_patches", "--out", str(out)]
    argv += ["--arms", "mae", "published", "--jobs", "2"]
    assert example.main(argv) == 0
    table = json.loads((out / "table.json").read_text())
    runs = {r["arm"]: r for r in table["runs"]}
    assert set(runs) == {"mae", "published"}
    assert runs["mae"]["init"] is None and runs["mae"]["probe"] is not None
    published = runs["published"]
    assert published["steps"] == 8 and published["finetune"] is not None
    assert 0.0 <= published["final"]["auroc"] <= 1.0 and len(published["final"]["map"]) == 64
    assert set(published["audit"]) == {"pretrain->mask", "head->mask", "pretrain+head->mask"}
    # every 2 steps of the upper node (mask), which steps every 2nd engine step
    assert [step for step, _ in published["audit_series"]["head->mask"]] == [4, 8]
    assert (out / "learned_maps.png").is_file() and (out / "audit_cosines.png").is_file()
    assert "| controlled_patches | published | 0 |" in (out / "table.md").read_text()
    against = [(a["score"], a["arm"], a["verdict"]) for a in table["against_random_masks"]]
    assert against == [(s, "published", "no interval") for s in ("probe", "finetune")]
    done = out / "runs" / "controlled_patches-published-seed0" / "long.json"
    stamp = done.stat().st_mtime_ns
    assert example.main(argv) == 0
    assert done.stat().st_mtime_ns == stamp
    assert json.loads((out / "table.json").read_text())["runs"] == table["runs"]


def test_learned_arms_are_paired_with_random_masks_seed_by_seed(example: Any) -> None:
    args = example.parse(["--datasets", "digits", "--arms", "mae", "token-alive"])

    def row(arm: str, seed: int, probe: float, finetune: float | None) -> dict[str, Any]:
        return {"dataset": "digits", "arm": arm, "seed": seed, "probe": probe, "finetune": finetune}

    rows = [row("mae", s, 0.90, 0.95) for s in (0, 1, 2)]
    rows += [row("token-alive", 0, 0.92, 0.96), row("token-alive", 1, 0.93, None)]
    rows += [row("token-alive", 2, 0.94, 0.97), row("token-alive", 3, 0.99, 0.99)]  # no mae
    against = {a["score"]: a for a in example.against_random_masks(rows, args)}
    probe, finetune = against["probe"], against["finetune"]
    assert probe["seeds"] == [0, 1, 2] and probe["wins"] == 3
    assert probe["differences"] == pytest.approx([0.02, 0.03, 0.04])
    half = 4.302652729911275 * 0.01 / 3**0.5  # t(0.975, 2) * sd / sqrt(n)
    assert probe["mean"] == pytest.approx(0.03)
    assert (probe["low"], probe["high"]) == pytest.approx((0.03 - half, 0.03 + half))
    assert probe["verdict"] == "ahead"
    assert finetune["seeds"] == [0, 2] and finetune["mean"] == pytest.approx(0.015)
    text = example.markdown([], list(against.values()), "cmd")
    assert "| digits | probe | token-alive | 0,1,2 | +3.0 [+0.5, +5.5] | 3/3 | ahead |" in text


def test_the_stored_long_runs_are_read_back_as_finished(example: Any) -> None:
    """docs/results.md §9 says: copy docs/data/masker_long/runs to the output folder and the
    script trains only what is missing. That holds only while every stored run's spec is
    the one the script resolves now (a changed spec or arm would retrain it silently)."""
    stored = ROOT / "docs" / "data" / "masker_long"
    args = example.parse(["--out", str(stored), "--seeds", "0", "1", "2", "3", "4"])
    found = sorted(p.parent.name for p in (stored / "runs").glob("*/long.json"))
    assert len(found) >= 34, found  # issue 23's 24 planned runs and the 10 added to them
    for dataset, arm, seed in example.planned(args):
        folder = example.folder_of(dataset, arm, seed, args)
        if (folder / "long.json").is_file():
            spec = example.spec_for(dataset, arm, seed, args)
            assert finished_results(folder, spec, "long.json") is not None, folder.name
    table = json.loads((stored / "table.json").read_text())
    assert sorted(f"{r['dataset']}-{r['arm']}-seed{r['seed']}" for r in table["runs"]) == found

"""examples/mlomae_vs_mae.py (experiment 1): the plan's specs, the table's cells and paired gaps,
and (slow) a --quick run end to end that a rerun reads back instead of training again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.scripts.loading import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> Any:
    return load_script("examples/mlomae_vs_mae.py")


def test_the_plan_pairs_each_method_with_its_baseline_at_one_budget(example: Any) -> None:
    runs = example.plan(["digits", "synthetic_wafers"], ["plain", "aug"], ["mae", "mlomae"],
                        [0, 1], 7, ["train.threads=1"])  # fmt: skip
    assert len(runs) == 2 * 2 * 2 * 2
    assert {r.spec.train.steps for r in runs} == {7}
    for r in runs:
        dataset, condition, method = example.cell_of(r)
        augment = r.spec.data.augment
        assert r.spec.data.dataset == dataset and r.spec.seed == r.seed
        assert (augment.crop_pad > 0) == (condition == "aug")
        assert augment.flip == (condition == "aug" and dataset == "synthetic_wafers")
        assert ("mask" in r.spec.graph.nodes) == (method == "mlomae")
        assert next(iter(r.spec.graph.nodes)) == "pretrain"  # the same loader seed: same batches
        assert r.folder.parts[-4:] == ("runs", dataset, condition, f"{method}-seed{r.seed}")
    spec = {(*example.cell_of(r), r.seed): r.spec for r in runs}

    def differences(a: Any, b: Any) -> set[str]:
        return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}

    for dataset in ("digits", "synthetic_wafers"):
        for condition in ("plain", "aug"):  # the baseline differs from MLO-MAE in its graph only
            mae, mlo = (spec[dataset, condition, m, 1] for m in ("mae", "mlomae"))
            assert differences(mae, mlo) == {"name", "description", "graph"}
            assert mae.graph.nodes["pretrain"].optimizer == mlo.graph.nodes["pretrain"].optimizer
        for method in ("mae", "mlomae"):  # with augmentation: data.augment, nothing else
            plain, aug = (spec[dataset, c, method, 1] for c in ("plain", "aug"))
            assert differences(plain, aug) == {"name", "description", "data"}
            assert differences(plain.data, aug.data) == {"augment"}


def test_cells_and_gaps_are_paired_by_seed(example: Any) -> None:
    def row(method: str, seed: int, tuned: float, probe: float) -> dict[str, Any]:
        return {"dataset": "digits", "condition": "aug", "method": method, "seed": seed,
                "metric": "accuracy", "finetune_test": tuned, "probe_test": probe,
                "steps": 5, "train_seconds": 1.0, "seconds_per_step": 0.2}  # fmt: skip

    rows = [row("mae", 0, 0.9, 0.8), row("mlomae", 0, 0.8, 0.9), row("mae", 1, 0.7, 0.6),
            row("mlomae", 1, 0.9, 0.6), row("mae", 2, 0.5, 0.5)]  # fmt: skip
    summary = example.summarize(rows)
    mae = next(c for c in summary["cells"] if c["method"] == "mae")
    assert mae["finetune_test"]["values"] == [0.9, 0.7, 0.5]
    assert mae["finetune_test"]["mean"] == pytest.approx(0.7)
    assert mae["finetune_test"]["std"] == pytest.approx(0.2)
    (gap,) = summary["gaps"]
    assert gap["seeds"] == [0, 1]  # seed 2 has no MLO-MAE run
    assert gap["finetune_test"]["values"] == pytest.approx([-0.1, 0.2])
    assert gap["probe_test"]["values"] == pytest.approx([0.1, 0.0])


@pytest.mark.slow
def test_quick_run_writes_the_table_and_plot_and_a_rerun_trains_nothing(
    example: Any, tmp_path: Path
) -> None:
    argv = ["--quick", "--datasets", "digits", "--quiet", "--out", str(tmp_path)]
    assert example.main(argv) == 0
    table = json.loads((tmp_path / "table.json").read_text())
    assert [(r["condition"], r["method"]) for r in table["runs"]] == [
        ("plain", "mae"), ("plain", "mlomae"), ("aug", "mae"), ("aug", "mlomae"),
    ]  # fmt: skip
    assert all(r["steps"] == 3 and r["finetune_test"] is not None for r in table["runs"])
    assert len(table["cells"]) == 4 and len(table["gaps"]) == 2
    assert "| digits | augmentation | MLO-MAE |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "mlomae_vs_mae.png").read_bytes()[:4] == b"\x89PNG"
    checkpoint = tmp_path / "runs/digits/aug/mlomae-seed0/checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    assert example.main(argv) == 0
    assert checkpoint.stat().st_mtime_ns == before
    again = json.loads((tmp_path / "table.json").read_text())
    assert all(r["read_back"] for r in again["runs"])
    assert [r["probe_test"] for r in again["runs"]] == [r["probe_test"] for r in table["runs"]]

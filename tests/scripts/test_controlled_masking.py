"""examples/controlled_masking.py (experiment 2): the concentration measures on hand-made maps,
the specs it runs, bad flags refused, and (slow) a --quick run end to end that a rerun reads
back instead of training again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.scripts.loading import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> Any:
    return load_script("examples/controlled_masking.py")


def test_auroc_and_concentration_on_hand_made_maps(example: Any) -> None:
    informative = np.array([True, False, False, True])
    prob = np.array(
        [
            [0.9, 0.1, 0.2, 0.8],  # both informative above both noise: 1.0
            [0.1, 0.5, 0.5, 0.5],  # 0.1 < both (0); 0.5 ties both (0.5 each): 2 x 0.5 / 4
        ]
    )
    assert example.auroc(prob, informative) == pytest.approx((1.0 + 0.25) / 2)
    mask = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], dtype=bool)
    measures = example.concentration(prob, mask, informative)
    assert measures["ratio"] == pytest.approx((0.9 + 0.8 + 0.1 + 0.5) / (0.1 + 0.2 + 0.5 + 0.5))
    assert measures["masked_informative"] == 0.5 and measures["masked_noise"] == 0.5


def test_each_method_runs_its_controlled_spec_at_the_budget_and_seed(example: Any) -> None:
    args = example.parse(["--budgets", "7", "--seeds", "2"])
    runs = {r.arm.label: r for r in example.plan(args)}
    for method, dataset in (
        ("mlomae", "controlled_patches"),
        ("metamae+mask", "controlled_signal"),
    ):
        run = runs[f"{method}/7"]
        spec = run.spec
        assert spec.data.dataset == dataset and spec.train.steps == 7 and spec.seed == 2
        assert spec.train.threads == 1 and "mask" in spec.graph.nodes
        assert run.folder == args.out / "runs" / f"{method}-7steps-seed2"
    assert example.parse([]).budgets == [50, 100, 200] and example.parse([]).seeds == [0, 1, 2]


def test_bad_flags_are_one_line_and_exit_2(
    example: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        example.parse(["--budgets", "0", "10"])
    assert stopped.value.code == 2
    assert "--budgets: expected engine steps >= 1, got [0, 10]" in capsys.readouterr().err
    out = ROOT / "results" / "never-written"
    code = example.main(["--quick", "--set", "train.stepz=3", "--out", str(out)])
    assert code == 2 and not out.exists()


@pytest.mark.slow
def test_quick_run_writes_tables_and_pictures_and_a_rerun_reads_them_back(
    example: Any, tmp_path: Path
) -> None:
    out = tmp_path / "quick"
    assert example.main(["--quick", "--quiet", "--out", str(out)]) == 0
    table = json.loads((out / "table.json").read_text())
    assert {c["method"] for c in table["cells"]} == {"mlomae", "metamae+mask"}
    for row in table["runs"]:
        assert 0.0 <= row["auroc"] <= 1.0 and row["budget"] == 4 and row["wall_seconds"] > 0
    for name in ("table.md", "concentration.png", "maps_mlomae.png", "maps_metamae+mask.png"):
        assert (out / name).is_file(), name
    run = out / "runs" / "mlomae-4steps-seed0"
    assert (run / "mask_diversity.png").is_file() and (run / "masks.png").is_file()
    stamp = (run / "concentration.json").stat().st_mtime_ns
    assert example.main(["--quick", "--quiet", "--out", str(out)]) == 0
    assert (run / "concentration.json").stat().st_mtime_ns == stamp  # read back, not rerun

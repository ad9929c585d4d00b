"""examples/masker_levers.py (issue 23's first screen): the
specs each variant and estimator resolve to, bad flags refused, and a --quick run end to end
that a rerun reads back without training anything."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.scripts.loading import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> Any:
    return load_script("examples/masker_levers.py")


def test_each_variant_and_estimator_resolves_to_its_settings(example: Any) -> None:
    args = example.parse(["--steps", "10", "--seeds", "3"])
    assert args.variants == list(example.VARIANTS) and args.estimators == ["darts", "unrolled"]
    for variant in example.VARIANTS:
        for estimator in example.ESTIMATORS:
            spec = example.spec_for(estimator, variant, 3, args)
            nodes = spec.graph.nodes
            assert spec.data.dataset == "controlled_patches" and spec.seed == 3
            assert spec.train.steps == 10 and spec.train.threads == 1 and not spec.eval.enabled
            assert nodes["pretrain"].hypergradient.type == estimator
            assert nodes["head"].hypergradient.type == estimator
            masker = dict(nodes["pretrain"].options)["masker"]
            assert masker["type"] == ("token_mlp" if variant.startswith("token") else "flat_mlp")
            assert nodes["mask"].optimizer is not None
            rate = re.search(r"lr(1e-\d)", variant)
            assert rate is not None and nodes["mask"].optimizer.lr == float(rate.group(1))
            if variant.endswith("alive"):
                assert masker["keep_mean"] is True and masker["weighting"] == "normalised"
    spec = example.spec_for("darts", "flat-lr1e-3-step0.1", 0, args)
    assert dict(spec.graph.nodes["mask"].options)["max_step"] == 0.1
    spec = example.spec_for("darts", "flat-lr1e-3-T4", 0, args)
    assert dict(spec.graph.nodes["pretrain"].options)["masker"]["temperature"] == 4


def test_bad_flags_are_one_line_and_exit_2(
    example: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as stopped:
        example.parse(["--steps", "1"])
    assert stopped.value.code == 2
    assert "--steps: expected at least 2 engine steps (one cycle), got 1" in capsys.readouterr().err
    out = tmp_path / "never"
    code = example.main(["--quick", "--set", "train.stepz=3", "--out", str(out)])
    assert code == 2 and not out.exists()


@pytest.mark.slow
def test_quick_run_end_to_end_and_a_rerun_trains_nothing(example: Any, tmp_path: Path) -> None:
    out = tmp_path / "quick"
    argv = ["--quick", "--quiet", "--variants", "token-lr1e-3-alive", "--out", str(out)]
    assert example.main(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert table["trained"] == 2 and {r["estimator"] for r in table["runs"]} == {
        "darts",
        "unrolled",
    }
    for row in table["runs"]:
        for when in ("init", "final"):
            assert 0.0 <= row[when]["auroc"] <= 1.0
            assert row[when]["mean_p"] == pytest.approx(0.75, abs=1e-4)  # keep_mean holds it
        assert row["steps"] == 4 and row["seconds_per_cycle"] > 0
    assert "| unrolled | token-lr1e-3-alive | 0 | 4 |" in (out / "table.md").read_text()
    done = out / "runs" / "unrolled-token-lr1e-3-alive-seed0" / "screen.json"
    stamp = done.stat().st_mtime_ns
    assert example.main(argv) == 0
    assert json.loads((out / "table.json").read_text())["trained"] == 0
    assert done.stat().st_mtime_ns == stamp

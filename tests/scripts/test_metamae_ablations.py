"""examples/metamae_ablations.py: a quick ablation writes its table, markdown and picture, and a
rerun skips the runs already in its table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    path = ROOT / "examples/metamae_ablations.py"
    spec = importlib.util.spec_from_file_location("metamae_ablations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.slow
def test_quick_parts_writes_every_output_and_a_rerun_trains_nothing(
    example, tmp_path: Path
) -> None:
    args = ["--quick", "--only", "parts", "--quiet", "--out", str(tmp_path)]
    assert example.main(args) == 0
    table = json.loads((tmp_path / "table.json").read_text())
    settings = ["MetaMAE", "no adaptation", "no contrast", "neither", "MAE"]
    assert [(r["ablation"], r["setting"], r["seed"]) for r in table["runs"]] == [
        ("parts", s, 0) for s in settings
    ]
    for row in table["runs"]:
        assert row["dataset"] == "basicmotions" and row["steps"] == 3
        assert row["metric"] == "accuracy" and 0 <= row["test"] <= 1
        assert row["wall_seconds"] > 0 and Path(row["folder"], "results.json").is_file()
    final = {r["setting"]: r["final"] for r in table["runs"]}
    assert "contrastive" in final["MetaMAE"]["reconstruct"]
    assert "contrastive" not in final["no contrast"]["reconstruct"]
    assert "adapt" not in final["MAE"]  # MAE has no inner node
    spec = json.loads(Path(table["runs"][1]["folder"], "results.json").read_text())["spec"]
    assert spec["graph"]["nodes"]["adapt"]["options"]["inner_steps"] == 0
    assert [r["setting"] for r in table["summary"]] == settings
    markdown = (tmp_path / "table.md").read_text()
    assert "## parts" in markdown and "| no adaptation | 1 |" in markdown
    assert "## depth" not in markdown  # only the ablation that was asked for
    with Image.open(tmp_path / "parts.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 100
    assert not (tmp_path / "depth.png").exists()

    stamps = {
        r["folder"]: Path(r["folder"], "results.json").stat().st_mtime_ns for r in table["runs"]
    }
    assert example.main(args) == 0  # everything is in the table: nothing runs again
    again = json.loads((tmp_path / "table.json").read_text())
    assert again["runs"] == table["runs"]
    assert stamps == {f: Path(f, "results.json").stat().st_mtime_ns for f in stamps}


def test_runs_that_two_ablations_share_are_one_spec(example) -> None:
    """The parts ablation's MetaMAE is the nearby ablation's s_ratio 0.1 (the spec's own), and
    MAE is the same run in both: identified by the resolved spec, trained once."""
    runs = example.plan([example.ABLATIONS["nearby"], example.ABLATIONS["parts"]], [0], 300, [])
    ids = {(p.ablation.name, p.setting.label): p.run_id for p in runs}
    assert ids[("nearby", "0.1")] == ids[("parts", "MetaMAE")]
    assert ids[("nearby", "MAE")] == ids[("parts", "MAE")]
    assert ids[("nearby", "0.5")] != ids[("nearby", "0.1")]
    assert len(set(ids.values())) == len(ids) - 2

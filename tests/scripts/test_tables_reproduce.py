"""The experiment scripts, thinned onto metamask.experiments, print the tables they printed
before, from the same finished runs.

The runs are planted (tests/scripts/planted.py: every number drawn from the digest of the
run's resolved spec); ``expected/`` holds what each script wrote from them before it was
thinned (its table.md, or metamae_dabs' summary), the output folder written as OUT. A script
that planned another spec would read other numbers, or train, and differ.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from metamask.config import load_spec
from tests.scripts.planted import plant_concentration, plant_results

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).resolve().parent / "expected"


@pytest.fixture
def script(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    name = request.param
    spec = importlib.util.spec_from_file_location(name, ROOT / f"examples/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def _where(folder: Path, out: Path) -> str:
    """``folder`` relative to the experiment's, with the digest of its spec cut off (the
    ablations' folder names end in it; the numbers must not depend on the schema's defaults)."""
    return re.sub(r"-[0-9a-f]{8}$", "", folder.relative_to(out).as_posix())


def _refuse_training(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> None:
    import metamask.experiments.finished as finished

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a planted run was not read back")

    monkeypatch.setattr(finished, "run_spec", refuse)
    for module in modules:
        if hasattr(module, "run_spec"):
            monkeypatch.setattr(module, "run_spec", refuse)


def _same(path: Path, expected: str, out: Path) -> None:
    text = path.read_text().replace(str(out), "OUT")
    want = (EXPECTED / expected).read_text()
    wall = [
        (r"Wall time of this invocation: [\d.]+ min", "Wall time of this invocation: W min"),
        (r"\| [\d.]+ \|$", "| W |"),  # the ablations' wall s/run: the time of reading back
    ]
    for pattern, fixed in wall:
        text = re.sub(pattern, fixed, text, flags=re.M)
        want = re.sub(pattern, fixed, want, flags=re.M)
    assert text == want


@pytest.mark.parametrize("script", ["metamae_dabs"], indirect=True)
def test_metamae_dabs(script: ModuleType, tmp_path: Path, monkeypatch) -> None:
    sets = ["model.backbone=tiny", "train.threads=1", "eval.probe.epochs=2"]
    for seed in (0, 1, 2):
        for method in ("mae", "metamae"):
            path = ROOT / f"problems/{method}-wine.yaml"
            spec = load_spec(path, [*sets, "train.steps=3", f"seed={seed}"])
            where = f"wine/{method}/seed{seed}"
            plant_results(tmp_path / where, spec, where)
    _refuse_training(monkeypatch, script)
    args = ["--dataset", "wine", "--seeds", "0", "1", "2", "--steps", "3", "--quiet"]
    args += [x for s in sets for x in ("--set", s)]
    assert script.main([*args, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert summary == json.loads((EXPECTED / "metamae_dabs.json").read_text())


@pytest.mark.parametrize("script", ["mlomae_vs_mae"], indirect=True)
def test_mlomae_vs_mae(script: ModuleType, tmp_path: Path, monkeypatch) -> None:
    extra = [*script.QUICK, "train.threads=1"]
    runs = script.plan(script.DATASETS, script.CONDITIONS, script.METHODS, [0, 1, 2], 3, extra,
                       tmp_path)  # fmt: skip
    for run in runs:
        plant_results(run.folder, run.spec, _where(run.folder, tmp_path), finetune=True)
    _refuse_training(monkeypatch, script)
    assert (
        script.main(["--quick", "--seeds", "0", "1", "2", "--quiet", "--out", str(tmp_path)]) == 0
    )
    _same(tmp_path / "table.md", "mlomae_vs_mae.md", tmp_path)


@pytest.mark.parametrize("script", ["metamae_ablations"], indirect=True)
def test_metamae_ablations(script: ModuleType, tmp_path: Path, monkeypatch) -> None:
    points = script.plan(list(script.ABLATIONS.values()), [0, 1, 2], 3, script.QUICK, tmp_path)
    for point in points:
        plant_results(point.run.folder, point.spec, _where(point.run.folder, tmp_path))
    _refuse_training(monkeypatch, script)
    assert (
        script.main(["--quick", "--seeds", "0", "1", "2", "--quiet", "--out", str(tmp_path)]) == 0
    )
    _same(tmp_path / "table.md", "metamae_ablations.md", tmp_path)


@pytest.mark.parametrize("script", ["controlled_masking"], indirect=True)
def test_controlled_masking(script: ModuleType, tmp_path: Path, monkeypatch) -> None:
    argv = ["--quick", "--seeds", "0", "1", "2", "--budgets", "4", "8"]
    for run in script.plan(script.parse([*argv, "--out", str(tmp_path)])):
        tokens = 64 if run.spec.data.dataset == "controlled_patches" else 16
        plant_concentration(run.folder, run.spec, _where(run.folder, tmp_path), tokens)
    _refuse_training(monkeypatch, script)
    assert script.main([*argv, "--quiet", "--out", str(tmp_path)]) == 0
    _same(tmp_path / "table.md", "controlled_masking.md", tmp_path)

"""metamask.experiments.planning: ``--vary`` builds the expected resolved specs, arms and
folders; the thread share of ``--jobs``; bad values name ``--vary``."""

from __future__ import annotations

from pathlib import Path

import pytest

from metamask.config import load_spec
from metamask.errors import ConfigError
from metamask.experiments.finished import spec_digest
from metamask.experiments.planning import Vary, arms_of, plan, resolve, thread_share

ROOT = Path(__file__).resolve().parents[2]
MAE, META = ROOT / "problems/mae-wine.yaml", ROOT / "problems/metamae-wine.yaml"
TINY = ["model.backbone=tiny", "train.steps=2", "eval.probe.epochs=2"]


def test_vary_builds_every_combination_of_specs_and_values_as_resolved_specs(
    tmp_path: Path,
) -> None:
    varies = [Vary.parse("model.mask_ratio=0.5,0.25"), Vary.parse("train.steps=2, 3")]
    arms = arms_of([MAE, META], varies)
    assert [a.label for a in arms] == [
        f"{stem} model.mask_ratio={r} train.steps={s}"
        for stem in ("mae-wine", "metamae-wine")
        for r in ("0.5", "0.25")
        for s in ("2", "3")
    ]
    runs = plan(arms, [0, 1], tmp_path, common=TINY)
    assert len(runs) == 16
    assert [(r.seed, r.arm.label) for r in runs[:8]] == [(0, a.label) for a in arms]  # seed-major
    for run in runs:
        source = MAE if run.arm.label.startswith("mae-") else META
        ratio, steps = (item.split("=")[1] for item in run.arm.overrides)
        expected = load_spec(
            source, [*TINY, f"model.mask_ratio={ratio}", f"train.steps={steps}", f"seed={run.seed}"]
        )
        assert run.spec == expected
        assert (run.spec.model.mask_ratio, run.spec.train.steps) == (float(ratio), int(steps))
        assert run.folder == (
            tmp_path / "runs" / run.arm.slug / f"seed{run.seed}-{spec_digest(expected)[:8]}"
        )
    assert len({r.folder for r in runs}) == 16
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_jobs_split_the_cores_where_a_spec_asks_for_more_than_its_share() -> None:
    (arm,) = arms_of([MAE])
    assert thread_share(2, cpus=4) == 2 and thread_share(4, cpus=2) == 1
    every = [*TINY, "train.threads=0"]  # 0: all the cores
    assert resolve(arm, 0, every, jobs=2, cpus=4).train.threads == 2
    assert resolve(arm, 0, every, jobs=1, cpus=4).train.threads == 0  # one job: as asked
    assert resolve(arm, 0, [*TINY, "train.threads=3"], jobs=4, cpus=2).train.threads == 1
    assert resolve(arm, 0, [*TINY, "train.threads=1"], jobs=2, cpus=4).train.threads == 1


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        (
            "model.mask_ratioo=0.5",
            "--vary model.mask_ratioo=0.5: model.mask_ratioo: unknown key (did you mean "
            "'mask_ratio'?)",
        ),
        ("model.mask_ratio=0.5,1.5", "--vary model.mask_ratio=1.5: model.mask_ratio: expected"),
        ("model.mask_ratio", "--vary model.mask_ratio: expected KEY=V1,V2,..."),
        ("model.mask_ratio=0.5,", "--vary model.mask_ratio=0.5,: expected KEY=V1,V2,..."),
    ],
)
def test_a_bad_vary_names_the_key_and_value(tmp_path: Path, vary: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        plan(arms_of([MAE], [Vary.parse(vary)]), [0], tmp_path, TINY)
    assert str(error.value).startswith(message)


def test_seeds_and_arms_given_twice_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a seed is given twice"):
        plan(arms_of([MAE]), [0, 0], tmp_path, TINY)
    with pytest.raises(ConfigError, match="'mae-wine' is given twice"):
        plan(arms_of([MAE, MAE]), [0], tmp_path, TINY)
    with pytest.raises(ConfigError, match=r"--vary train\.steps: given twice"):
        arms_of([MAE], [Vary.parse("train.steps=2"), Vary.parse("train.steps=3")])

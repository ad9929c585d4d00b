"""metamask.experiments.masker_measures: each measure on hand-made probabilities and masks, and
the masker at a checkpoint is the masker the run trained (a finished tiny run read back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metamask.config import load_spec
from metamask.experiments.masker_measures import (
    at_checkpoint,
    at_initialisation,
    held_out_inputs,
    informative_tokens,
    masker_measures,
)
from metamask.mask_diversity import masking_source, probabilities_and_masks
from metamask.run import run_spec

ROOT = Path(__file__).resolve().parents[2]


def test_measures_on_hand_made_maps() -> None:
    informative = np.array([True, False, False, True])
    prob = torch.tensor([[0.9, 0.1, 0.2, 0.8], [0.995, 0.5, 0.5, 0.005]])
    mask = torch.tensor([[1, 0, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    m = masker_measures(prob, mask, informative)
    # row 1: both informative above both noise (1); row 2: 0.995 > both, 0.005 < both (0.5)
    assert m["auroc"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["saturated"] == pytest.approx(2 / 8)  # 0.995 and 0.005
    assert m["mean_p"] == pytest.approx(float(prob.double().mean()))
    assert m["overlap"] == pytest.approx(0.5)  # Dice of {0, 3} and {0, 2}
    assert m["map"] == pytest.approx([0.9475, 0.3, 0.35, 0.4025])  # per-token means
    flat = masker_measures(torch.full((2, 4), 0.5), mask, None)
    assert flat["entropy"] == pytest.approx(1.0) and flat["image_info"] == pytest.approx(0.0)
    assert "auroc" not in flat  # no informative map: no auroc


def test_informative_tokens_only_on_controlled_data() -> None:
    controlled = load_spec(ROOT / "problems/mlomae-controlled_patches.yaml")
    tokens = informative_tokens(controlled)
    assert tokens is not None and tokens.shape == (64,) and tokens.sum() == 8
    assert informative_tokens(load_spec(ROOT / "problems/mlomae-digits.yaml")) is None


def test_initialisation_and_checkpoint_measure_the_runs_own_masker(tmp_path: Path) -> None:
    spec = load_spec(
        ROOT / "problems/mlomae-controlled_patches.yaml",
        ["model.backbone=tiny", "train.steps=2", "eval.enabled=false", "train.threads=1"],
    )
    x = held_out_inputs(spec)[:16]
    before = at_initialisation(spec, x)
    result = run_spec(spec, tmp_path / "run", source=str(tmp_path / "run"), progress=False)
    source = masking_source(result.graph)
    assert source is not None
    trained = masker_measures(
        *probabilities_and_masks(result.graph, source.masker, x), informative_tokens(spec)
    )
    after = at_checkpoint(spec, str(tmp_path / "run"), tmp_path / "run" / "checkpoint.pt", x)
    assert before["map"] != pytest.approx(after["map"], abs=1e-9)  # training moved it
    assert after.pop("map") == pytest.approx(trained.pop("map"))  # the trained masker
    assert after == pytest.approx(trained)

"""Mask diversity: the measures on hand-made probabilities and masks equal hand-computed values,
a learned-masker run logs them (and draws mask_diversity.png), and a fixed deterministic masker
on un-augmented data gets the same mask every epoch (repeat rate 1.0) while per-epoch views
lower it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import metamae_mask_graph, mlo_graph, mlo_spec, tiny_bundle, tiny_spec
from torch.utils.data import Dataset

from metamask.compose import build_graph
from metamask.data.base import DataBundle
from metamask.mask_diversity import (
    DIVERSITY_KEYS,
    MaskDiversity,
    RepeatTracker,
    bernoulli_entropy_bits,
    diversity_metrics,
    image_information_bits,
    masking_source,
    mean_entropy_bits,
    pairwise_overlap,
    tracked_indices,
)
from metamask.pictures.curves import read_metrics
from metamask.run import run_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_entropy_in_bits_on_hand_made_probabilities() -> None:
    p = torch.tensor([[0.5, 0.0, 1.0, 0.25]])
    h25 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # 0.811278...
    assert bernoulli_entropy_bits(p)[0].tolist() == pytest.approx([1.0, 0.0, 0.0, h25], abs=1e-15)
    assert mean_entropy_bits(p) == pytest.approx((1.0 + h25) / 4, abs=1e-15)


def test_image_information_is_zero_for_identical_maps_and_one_bit_for_opposite_ones() -> None:
    same = torch.tensor([[0.9, 0.2, 0.5]] * 3)
    assert image_information_bits(same) == pytest.approx(0.0, abs=1e-12)
    opposite = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # H(mean) = 1 bit, each H(p) = 0
    assert image_information_bits(opposite) == pytest.approx(1.0, abs=1e-12)
    # token 0: p = 0.5 and 1.0 -> H(0.75) - (1 + 0) / 2; token 1: the same map, 0
    mixed = torch.tensor([[0.5, 0.3], [1.0, 0.3]])
    h75 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert image_information_bits(mixed) == pytest.approx((h75 - 0.5) / 2, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2 images"):
        image_information_bits(same[:1])


def test_pairwise_overlap_of_hand_made_masks() -> None:
    masks = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    # pairs: (0,1) 1.0, (0,2) 2*1/4 = 0.5, (1,2) 0.5
    assert pairwise_overlap(masks) == pytest.approx(2.0 / 3.0, abs=1e-15)
    assert pairwise_overlap(masks[:2]) == 1.0


def test_repeat_tracker_compares_with_the_last_measurement_of_an_earlier_epoch() -> None:
    tracker = RepeatTracker()
    a = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    b = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    assert tracker.update(0, a) is None  # no earlier epoch yet
    assert tracker.update(0, b) is None  # still epoch 0
    # epoch 1 against epoch 0's last (b): row 0 identical, row 1 overlap 2*1/4
    assert tracker.update(1, a) == (0.5, pytest.approx(0.75))
    # a second measurement in epoch 1 compares with the same reference (b)
    assert tracker.update(1, b) == (1.0, 1.0)
    assert tracker.update(2, b) == (1.0, 1.0)  # against epoch 1's last (b)


def test_diversity_metrics_of_one_measurement() -> None:
    prob = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    mask = torch.tensor([[1, 0], [0, 1]], dtype=torch.bool)
    metrics = diversity_metrics(prob, mask, None)
    assert metrics == {"mask_entropy": 1.0, "mask_image_info": 0.0, "mask_image_overlap": 0.0}
    assert diversity_metrics(prob, mask, (0.25, 0.5))["mask_repeat"] == 0.25


def test_tracked_indices_spread_over_the_dataset() -> None:
    assert tracked_indices(5, 8) == [0, 1, 2, 3, 4]
    assert tracked_indices(100, 3) == [0, 50, 99]


class _Shifted(Dataset):
    """Views that differ per epoch: the example rolled by ``epoch`` along its last axis."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Any:
        return self.base[index]

    def view(self, index: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[index]
        return torch.roll(x, shifts=epoch * 3, dims=-1), y


def _diversity(graph: Any) -> MaskDiversity:
    source = masking_source(graph)
    assert source is not None
    return MaskDiversity(source, count=16)


def test_a_fixed_masker_repeats_its_masks_and_per_epoch_views_change_them() -> None:
    bundle = tiny_bundle("signal1d")
    graph = build_graph(mlo_spec(mlo_graph()), bundle, torch.device("cpu"))
    diversity = _diversity(graph)
    sampler = diversity.source.loader.batch_sampler
    first = diversity.measure(graph)
    assert "mask_repeat" not in first and first["mask_epoch"] == 0
    sampler.epoch = 3  # later epochs, the masker unchanged, the raw examples
    again = diversity.measure(graph)
    assert again["mask_repeat"] == 1.0 and again["mask_repeat_overlap"] == 1.0
    assert again["mask_entropy"] == first["mask_entropy"]
    # the same graph on a dataset with per-epoch views: the masks move with the views
    torch.manual_seed(0)  # the same initial masker
    shifted = DataBundle(bundle.info, _Shifted(bundle.train), bundle.val, bundle.test)
    graph = build_graph(mlo_spec(mlo_graph()), shifted, torch.device("cpu"))
    views = _diversity(graph)
    assert views.measure(graph)["mask_entropy"] == first["mask_entropy"]  # epoch 0: no shift
    views.source.loader.batch_sampler.epoch = 1
    moved = views.measure(graph)
    assert moved["mask_repeat"] < 1.0 and moved["mask_repeat_overlap"] < 1.0


def test_a_metamae_mask_graph_measures_at_its_adapt_node() -> None:
    graph = build_graph(mlo_spec(metamae_mask_graph()), tiny_bundle("image2d"), torch.device("cpu"))
    source = masking_source(graph)
    assert source is not None and source.node.name == "adapt"
    metrics = _diversity(graph).measure(graph)
    assert 0.0 < metrics["mask_entropy"] <= 1.0 and 0.0 <= metrics["mask_image_overlap"] <= 1.0


@pytest.mark.parametrize("lr", [1e-3, 1e-30])
def test_a_learned_masker_run_logs_its_diversity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lr: float
) -> None:
    bundle = tiny_bundle("signal1d")  # 24 training examples: 6 batches of 4 per epoch
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    # the masker reads the MAE's patch embedding: both must stay put for the masks to
    optimizer = {"type": "adamw", "lr": lr}
    graph = mlo_graph(mask={"optimizer": optimizer}, pretrain={"optimizer": optimizer})
    spec = mlo_spec(graph, train={"steps": 14, "log_every": 2}, eval={"enabled": False})
    run_spec(spec, tmp_path, progress=False)
    rows = read_metrics(tmp_path / "metrics.jsonl")["pretrain"]
    assert [row["step"] for row in rows] == [2, 4, 6, 8, 10, 12, 14]
    assert all({"mask_entropy", "mask_image_info", "mask_image_overlap"} <= set(r) for r in rows)
    assert [row["mask_epoch"] for row in rows] == [0, 0, 0, 1, 1, 1, 2]  # steps 1-6: epoch 0
    repeats = [row.get("mask_repeat") for row in rows]
    assert repeats[:3] == [None] * 3 and all(r is not None for r in repeats[3:])
    if lr < 1e-20:  # nothing moves, no augmentation: the deterministic masker repeats itself
        assert repeats[3:] == [1.0] * 4
    for row in rows:
        for key in DIVERSITY_KEYS:
            if key in row and key != "mask_epoch":
                assert 0.0 <= row[key] <= 1.0, (key, row[key])
    assert (tmp_path / "mask_diversity.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((tmp_path / "results.json").read_text())
    assert "mask_entropy" in results["train"]["final"]["pretrain"]


def test_the_repeat_reference_survives_a_checkpoint() -> None:
    graph = build_graph(mlo_spec(mlo_graph()), tiny_bundle("image2d"), torch.device("cpu"))
    diversity = _diversity(graph)
    diversity.measure(graph)
    diversity.source.loader.batch_sampler.epoch = 1
    state = diversity.state_dict()
    resumed = _diversity(graph)
    resumed.load_state_dict(state)
    diversity.source.loader.batch_sampler.epoch = 2
    assert resumed.measure(graph) == diversity.measure(graph)
    assert "mask_repeat" in resumed.measure(graph)


def test_with_augmentation_a_fixed_masker_gives_the_same_image_other_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle("image2d")  # 24 training examples: 6 batches of 4 per epoch
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    frozen = {"type": "adamw", "lr": 1e-30}  # neither the masker nor the embedding moves
    graph = mlo_graph(mask={"optimizer": frozen}, pretrain={"optimizer": frozen})
    spec = tiny_spec(
        graph,
        data={"batch_size": 4, "augment": {"crop_pad": 2}},
        train={"steps": 14, "log_every": 2},
        eval={"enabled": False},
    )
    run_spec(spec, tmp_path, progress=False)
    rows = read_metrics(tmp_path / "metrics.jsonl")["pretrain"]
    repeats = [row["mask_repeat"] for row in rows if "mask_repeat" in row]
    assert len(repeats) == 4 and max(repeats) < 1.0

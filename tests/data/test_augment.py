"""Train-split augmentation (metamask.data.augment): each transform against a reference written
here, views a pure function of (seed, epoch, index), served only on the graph's training
loaders, bit-for-bit resume, and masks of a deterministic masker that change across epochs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_runs import assert_identical
from helpers import MAE_GRAPH, mlo_graph, tiny_bundle, tiny_spec

from metamask.checkpoint import load_checkpoint
from metamask.compose import build_graph
from metamask.config import AugmentSpec
from metamask.data.augment import Augmented, augment_errors
from metamask.data.base import ArrayDataset, DatasetInfo
from metamask.errors import ConfigError
from metamask.seeding import seed_everything
from metamask.spec_data import check_augment
from metamask.train import Trainer

IMAGE = DatasetInfo("img", "image2d", (3, 8, 8), (2, 2), 3, "accuracy")
SIGNAL = DatasetInfo("sig", "signal1d", (2, 16), (2,), 3, "accuracy")
TABLE = DatasetInfo("rows", "signal1d", (1, 6), (1,), 2, "accuracy", domain="tabular")
TOKENS = DatasetInfo("tok", "tokens", (12,), (1,), 3, "accuracy", vocab_size=5)


@dataclass(frozen=True)
class Settings:
    crop_pad: int = 0
    flip: bool = False
    cutout: int = 0
    shift: int = 0


def _images(count: int = 6, shape: tuple[int, ...] = (3, 8, 8)) -> ArrayDataset:
    # positive pixels, so that a zero in a view can only be fill
    x = torch.rand(count, *shape, generator=torch.Generator().manual_seed(1)) + 0.5
    return ArrayDataset(x, torch.arange(count) % 3)


def _found_in_padded(view: torch.Tensor, original: torch.Tensor, pad: int) -> bool:
    """Whether ``view`` is one of the (2 pad + 1)^2 windows of ``original`` zero-padded."""
    h, w = original.shape[-2:]
    padded = torch.zeros(original.shape[0], h + 2 * pad, w + 2 * pad)
    padded[:, pad : pad + h, pad : pad + w] = original
    return any(
        torch.equal(view, padded[:, t : t + h, s : s + w])
        for t in range(2 * pad + 1)
        for s in range(2 * pad + 1)
    )


def test_a_view_is_a_pure_function_of_seed_epoch_and_index() -> None:
    base = _images()
    settings = Settings(crop_pad=2, flip=True, cutout=3)
    a, b = Augmented(base, "image2d", settings, seed=5), Augmented(base, "image2d", settings, 5)
    for epoch in range(3):
        a.set_epoch(epoch)
        for i in range(len(base)):
            assert torch.equal(a[i][0], b.view(i, epoch)[0])  # same seed: same views
            assert torch.equal(a[i][1], base[i][1])  # labels pass through
    views = [torch.stack([a.view(i, e)[0] for i in range(len(base))]) for e in range(4)]
    assert not any(torch.equal(views[0], v) for v in views[1:])  # epochs differ
    other = Augmented(base, "image2d", settings, seed=6)
    assert not torch.equal(views[0], torch.stack([other.view(i, 0)[0] for i in range(len(base))]))


def test_crop_is_a_window_of_the_zero_padded_image_and_every_offset_occurs() -> None:
    base = _images(1)
    data = Augmented(base, "image2d", Settings(crop_pad=2), seed=0)
    x = base[0][0]
    offsets = set()
    for epoch in range(200):
        view = data.view(0, epoch)[0]
        assert view.shape == x.shape
        assert _found_in_padded(view, x, 2)
        rows = (view[0] != 0).any(dim=1).nonzero()
        cols = (view[0] != 0).any(dim=0).nonzero()
        offsets.add((int(rows[0]) - int(8 - 1 - rows[-1]), int(cols[0]) - int(8 - 1 - cols[-1])))
    assert len(offsets) == 25  # every shift of -2..2 in each direction


def test_flip_mirrors_about_half_the_views_and_never_transposes() -> None:
    base = _images(1)
    data = Augmented(base, "image2d", Settings(flip=True), seed=0)
    x = base[0][0]
    flipped = 0
    for epoch in range(400):
        view = data.view(0, epoch)[0]
        assert torch.equal(view, x) or torch.equal(view, x.flip(-1))
        flipped += torch.equal(view, x.flip(-1))
    assert 150 < flipped < 250


def test_cutout_zeroes_one_square_clipped_at_the_borders() -> None:
    base = _images(1, (3, 16, 16))
    data = Augmented(base, "image2d", Settings(cutout=6), seed=0)
    x = base[0][0]
    full = 0
    for epoch in range(100):
        view = data.view(0, epoch)[0]
        hole = view == 0
        assert torch.equal(hole[0], hole[1]) and torch.equal(hole[0], hole[2])  # all channels
        assert torch.equal(view[~hole], x[~hole])  # the rest untouched
        rows, cols = hole[0].any(dim=1).nonzero(), hole[0].any(dim=0).nonzero()
        assert 0 < len(rows) <= 6 and 0 < len(cols) <= 6
        assert int(hole[0].sum()) == len(rows) * len(cols)  # a rectangle
        full += len(rows) == len(cols) == 6
    assert full > 20  # a centre inside the image leaves the whole 6 x 6 square


def test_shift_moves_a_signal_along_time_filling_with_zeros() -> None:
    x = torch.arange(1, 33, dtype=torch.float32).reshape(2, 16)
    data = Augmented(ArrayDataset(x[None], torch.zeros(1)), "signal1d", Settings(shift=3), seed=0)
    seen = set()
    for epoch in range(100):
        view = data.view(0, epoch)[0]
        # a view is x moved by s steps (s > 0: later), the emptied steps zero
        s = next(s for s in range(-3, 4) if torch.equal(view, _moved(x, s)))
        seen.add(s)
    assert seen == set(range(-3, 4))


def _moved(x: torch.Tensor, s: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    if s >= 0:
        out[:, s:] = x[:, : x.shape[1] - s]
    else:
        out[:, :s] = x[:, -s:]
    return out


def test_settings_a_dataset_cannot_take_are_named_by_key() -> None:
    assert augment_errors(Settings(crop_pad=4, flip=True, cutout=8), IMAGE) == []
    assert augment_errors(Settings(shift=15), SIGNAL) == []
    assert [k for k, _ in augment_errors(Settings(flip=True), SIGNAL)] == ["flip"]
    assert [k for k, _ in augment_errors(Settings(shift=2), IMAGE)] == ["shift"]
    assert [k for k, _ in augment_errors(Settings(crop_pad=8), IMAGE)] == ["crop_pad"]
    assert [k for k, _ in augment_errors(Settings(cutout=9), IMAGE)] == ["cutout"]
    assert [k for k, _ in augment_errors(Settings(shift=16), SIGNAL)] == ["shift"]
    assert "tabular" in augment_errors(Settings(shift=1), TABLE)[0][1]
    assert "no augmentation" in augment_errors(Settings(crop_pad=1), TOKENS)[0][1]
    with pytest.raises(ValueError, match="no augmentation for tokens"):
        Augmented(ArrayDataset(torch.zeros(2, 12), torch.zeros(2)), "tokens", Settings(), 0)


def test_the_spec_check_names_the_key_and_the_dataset() -> None:
    spec = tiny_spec(MAE_GRAPH, data={"dataset": "wine", "augment": {"flip": True}})
    with pytest.raises(ConfigError, match=r"^<spec>: data.augment.flip: dataset wine has signal1d"):
        check_augment(spec)
    check_augment(tiny_spec(MAE_GRAPH, data={"dataset": "digits", "augment": {"crop_pad": 4}}))
    assert AugmentSpec() == AugmentSpec(0, False, 0, 0)  # everything off by default


# -- in a graph ----------------------------------------------------------------------------------


def _loader_datasets(spec_augment: dict | None) -> tuple[dict, object]:
    data = {"augment": spec_augment} if spec_augment else {}
    spec = tiny_spec(mlo_graph(), data={"batch_size": 4, **data})
    bundle = tiny_bundle("image2d")
    graph = build_graph(spec, bundle, torch.device("cpu"))
    return {name: node.loaders[0].dataset for name, node in graph.nodes.items()}, bundle


def test_only_the_graphs_training_loaders_serve_augmented_views() -> None:
    served, bundle = _loader_datasets({"crop_pad": 2, "flip": True})
    assert all(isinstance(d, Augmented) for d in served.values())
    head = served["head"]
    assert isinstance(head, Augmented)
    assert served["pretrain"].base is bundle.train  # type: ignore[attr-defined]
    assert head.base is not served["mask"].base  # type: ignore[attr-defined]  # splits A and B
    assert len(head) + len(served["mask"]) == len(bundle.train)  # type: ignore[arg-type]
    # the probe, fine-tuning, validation and test read the bundle, which stays as loaded
    for split in (bundle.train, bundle.val, bundle.test):
        assert type(split) is ArrayDataset
    plain, _ = _loader_datasets(None)
    assert not any(isinstance(d, Augmented) for d in plain.values())


def test_a_dataset_declared_for_a_node_is_served_as_given() -> None:
    from metamask.compose import GraphBuilder

    spec = tiny_spec(MAE_GRAPH, data={"batch_size": 4, "augment": {"crop_pad": 1}})
    mine = _images(8)
    module = torch.nn.Linear(1, 1)
    builder = GraphBuilder(spec, tiny_bundle("image2d"))
    builder.node("custom", module=module, loss=lambda batch: module.weight.sum(), data=mine)
    graph = builder.build()
    assert graph.nodes["custom"].loaders[0].dataset is mine
    assert isinstance(graph.nodes["reconstruct"].loaders[0].dataset, Augmented)


def test_the_sampler_tells_the_views_the_epoch_it_serves() -> None:
    spec = tiny_spec(MAE_GRAPH, data={"batch_size": 4, "augment": {"crop_pad": 2}})
    graph = build_graph(spec, tiny_bundle("image2d", n=8), torch.device("cpu"))
    loader = graph.nodes["reconstruct"].loaders[0]
    data: Augmented = loader.dataset
    for epoch in range(3):
        for batch_index, (x, _) in enumerate(loader):
            order = loader.batch_sampler.order(epoch)[4 * batch_index : 4 * batch_index + 4]
            assert data.epoch == epoch
            assert torch.equal(x, torch.stack([data.view(i, epoch)[0] for i in order]))


def _trainer(steps: int, out: Path) -> Trainer:
    spec = tiny_spec(
        MAE_GRAPH,
        train={"steps": steps, "log_every": 1, "checkpoint_every": 3},
        data={"batch_size": 4, "augment": {"crop_pad": 2, "flip": True, "cutout": 3}},
    )
    seed_everything(0)
    built = build_graph(spec, tiny_bundle("image2d", n=10), torch.device("cpu"))
    return Trainer(built, spec, out, progress=False)


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_a_stopped_and_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path: Path) -> None:
    # 10 examples in batches of 4: 2 batches an epoch, so the cut (step 7) is mid-run, 3 epochs in
    _trainer(11, tmp_path / "whole").run()
    _trainer(7, tmp_path / "cut").run()
    resumed = _trainer(11, tmp_path / "cut")
    resumed.restore(load_checkpoint(tmp_path / "cut" / "checkpoint.pt"), tmp_path)
    resumed.run()
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for state in (whole, cut):
        state.pop("spec"), state.pop("clock")  # train.steps of the first leg; wall time
    assert_identical(whole, cut)
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "cut")
    assert len(_losses(tmp_path / "whole")) == 11


def _masks_over_epochs(augment: dict | None, epochs: int = 4) -> list[torch.Tensor]:
    data = {"augment": augment} if augment else {}
    spec = tiny_spec(mlo_graph(), data={"batch_size": 4, **data})
    seed_everything(0)
    graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    pretrain = graph.nodes["pretrain"]
    dataset = pretrain.loaders[0].dataset
    masks = []
    with torch.no_grad():
        for epoch in range(epochs):
            x = dataset.view(0, epoch)[0] if isinstance(dataset, Augmented) else dataset[0][0]
            tokens = pretrain.mae.embed(x[None])
            chosen = pretrain.masker.masks_from(pretrain.masker.probabilities(tokens))
            masks.append(chosen.mask[0])
    return masks


def test_a_deterministic_masker_masks_one_image_differently_only_with_augmentation() -> None:
    fixed = _masks_over_epochs(None)
    assert all(torch.equal(fixed[0], m) for m in fixed[1:])
    moving = _masks_over_epochs({"crop_pad": 2, "flip": True})
    assert not all(torch.equal(moving[0], m) for m in moving[1:])
    assert all(int(m.sum()) == int(fixed[0].sum()) for m in moving)  # as many tokens masked

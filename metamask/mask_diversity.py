"""Mask diversity of a learned masker: how uncertain its probabilities are, how much they differ
between images, and how often one image gets the same mask again in a later epoch.

MLO-MAE's masker masks its ``r L`` most probable tokens: a deterministic choice. Without
augmentation an image is the same input at every epoch, so unless the masker itself changes
it gets the same mask every time and the encoder never sees the rest of it. These measures
say whether that happens (docs/mlomae.md, "Mask diversity"):

- ``mask_entropy``: the mean per-token Bernoulli entropy of the probabilities, in bits
  (1: p = 0.5 everywhere, the masker has no opinion; 0: every p is 0 or 1).
- ``mask_image_info``: how different the probability maps of different images are, in bits:
  the mean over tokens of ``H(mean_i p_i) - mean_i H(p_i)``, the mutual information between
  the image and token ``l``'s mask if masks were drawn Bernoulli(p). It is 0 exactly when every
  image gets the same map, whatever that map is, and at most 1.
- ``mask_image_overlap``: the chosen (top-probability) masks of two different images, their
  Dice overlap ``2|A ∩ B| / (|A| + |B|)`` (the share of masked tokens they have in common when
  both mask as many), averaged over all pairs: 1.0 is the same mask for every image; random
  masks at ratio r give about r.
- ``mask_repeat``: over a fixed set of training examples, the share whose mask now (its view
  at the current epoch, the current masker) is identical to its mask at the last measurement
  in an earlier epoch; ``mask_repeat_overlap``: their mean Dice overlap. A fixed masker on
  un-augmented data gives 1.0 and 1.0; a masker that learns, or augmentation
  (:mod:`metamask.data.augment`), lowers them. They compare token positions of each epoch's
  view: under a crop or shift the same position holds other content of the image.
- ``mask_epoch``: the pretraining loader's epoch at the measurement.

:class:`MaskDiversity` is the trainer callback that measures them at each logged step and adds
them to the row of the node that picks the masks (``pretrain``, or ``adapt`` in
``metamae+mask``) in ``metrics.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch.utils.data import Dataset

from metamask.graph import Graph
from metamask.models.maskers import LearnedMasker
from metamask.nodes.adapt import Adapt
from metamask.nodes.pretrain import Pretrain

if TYPE_CHECKING:
    from metamask.nodes.base import Node
    from metamask.train import Trainer

#: the keys MaskDiversity adds to a node's metrics.jsonl rows
DIVERSITY_KEYS = (
    "mask_entropy",
    "mask_image_info",
    "mask_image_overlap",
    "mask_repeat",
    "mask_repeat_overlap",
    "mask_epoch",
)
TRACKED = 64  # training examples followed across epochs


def bernoulli_entropy_bits(prob: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy of Bernoulli(p) in bits, 0 at p = 0 and p = 1."""
    p = prob.double()
    terms = torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)
    return -terms / torch.log(torch.tensor(2.0, dtype=torch.float64))


def mean_entropy_bits(prob: torch.Tensor) -> float:
    """The mean per-token Bernoulli entropy of probabilities ``prob`` (N, L), in bits."""
    return float(bernoulli_entropy_bits(prob).mean())


def image_information_bits(prob: torch.Tensor) -> float:
    """How much the probability maps ``prob`` (N, L) of N >= 2 images differ, in bits: the
    mean over tokens of ``H(mean_i p_il) - mean_i H(p_il)`` (0 iff every row is the same)."""
    if prob.shape[0] < 2:
        raise ValueError(f"image_information_bits needs at least 2 images, got {prob.shape[0]}")
    p = prob.double()
    info = bernoulli_entropy_bits(p.mean(dim=0)) - bernoulli_entropy_bits(p).mean(dim=0)
    return float(info.clamp_min(0.0).mean())


def dice(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Dice overlap ``2|A ∩ B| / (|A| + |B|)`` of masks (N, L) (1 = masked); 1.0 for
    two empty masks."""
    a, b = a.double(), b.double()
    sizes = a.sum(dim=1) + b.sum(dim=1)
    shared = 2 * (a * b).sum(dim=1)
    return torch.where(sizes > 0, shared / sizes.clamp_min(1.0), torch.ones_like(sizes))


def pairwise_overlap(mask: torch.Tensor) -> float:
    """The mean Dice overlap of the masks (N, L) of every pair of different rows (N >= 2)."""
    n = mask.shape[0]
    if n < 2:
        raise ValueError(f"pairwise_overlap needs at least 2 masks, got {n}")
    m = mask.double()
    shared = 2 * (m @ m.T)
    sizes = m.sum(dim=1)
    total = sizes[:, None] + sizes[None, :]
    pair = torch.where(total > 0, shared / total.clamp_min(1.0), torch.ones_like(total))
    off = ~torch.eye(n, dtype=torch.bool)
    return float(pair[off].mean())


class RepeatTracker:
    """Compares each measurement's masks (N, L) of a fixed set of examples with those of the
    last measurement made in an earlier epoch (several measurements in one epoch compare with
    the same reference: "across epochs")."""

    def __init__(self) -> None:
        self._reference: tuple[int, torch.Tensor] | None = None  # last of an earlier epoch
        self._latest: tuple[int, torch.Tensor] | None = None  # the newest measurement

    def update(self, epoch: int, mask: torch.Tensor) -> tuple[float, float] | None:
        """Record ``mask`` at ``epoch``; return (share identical, mean Dice overlap) against
        the reference, or None before there is one (the first epoch measured)."""
        mask = mask.detach().bool().cpu()
        if self._latest is not None and epoch > self._latest[0]:
            self._reference = self._latest
        self._latest = (epoch, mask)
        if self._reference is None:
            return None
        before = self._reference[1]
        if before.shape != mask.shape:
            raise ValueError(
                f"tracked masks changed shape: {tuple(before.shape)} -> {tuple(mask.shape)}"
            )
        identical = (before == mask).all(dim=1).double().mean()
        return float(identical), float(dice(mask, before).mean())

    def state_dict(self) -> dict[str, Any]:
        """The reference and latest measurements (epoch, masks), for a checkpoint."""
        return {
            key: None if kept is None else {"epoch": kept[0], "mask": kept[1].clone()}
            for key, kept in (("reference", self._reference), ("latest", self._latest))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output: a resumed run compares as the
        uninterrupted one does."""

        def kept(entry: Any) -> tuple[int, torch.Tensor] | None:
            return None if entry is None else (int(entry["epoch"]), entry["mask"].bool())

        self._reference, self._latest = kept(state["reference"]), kept(state["latest"])


@runtime_checkable
class EpochViews(Protocol):
    """A training dataset whose example ``index`` differs per epoch (an augmented one)."""

    def view(self, index: int, epoch: int) -> Any: ...


@dataclass
class MaskingSource:
    """Where a graph's learned masks come from: the masker and the node that draws the batches
    it masks (its loader's dataset and epoch)."""

    node: Node
    masker: LearnedMasker

    @property
    def loader(self) -> Any:
        return self.node.loaders[0]

    @property
    def dataset(self) -> Dataset:
        dataset: Dataset = self.loader.dataset
        return dataset

    @property
    def epoch(self) -> int:
        """The epoch of the batches the node draws now (its sampler's position)."""
        return int(self.loader.batch_sampler.epoch)


def masking_source(graph: Graph) -> MaskingSource | None:
    """The node that masks with a learned masker (MLO-MAE's ``pretrain``, ``metamae+mask``'s
    ``adapt``) and its masker, or None (random masks)."""
    for node in graph.nodes.values():
        if isinstance(node, Pretrain) or (isinstance(node, Adapt) and node.learned):
            masker = node.masker
            assert isinstance(masker, LearnedMasker)
            return MaskingSource(node, masker)
    return None


def tracked_indices(size: int, count: int = TRACKED) -> list[int]:
    """``count`` indices spread evenly over a dataset of ``size`` examples (all if fewer)."""
    if size <= count:
        return list(range(size))
    return [round(i * (size - 1) / (count - 1)) for i in range(count)]


def example_at(dataset: Dataset, index: int, epoch: int) -> torch.Tensor:
    """Example ``index``'s input as training sees it at ``epoch``: its augmented view when the
    dataset has views per epoch, else the example itself."""
    item = dataset.view(index, epoch) if isinstance(dataset, EpochViews) else dataset[index]
    x = item[0] if isinstance(item, tuple | list) else item
    assert isinstance(x, torch.Tensor)
    return x


@torch.no_grad()
def probabilities_and_masks(
    graph: Graph, masker: LearnedMasker, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masker's probabilities (N, L) and its chosen masks (N, L, 1 = masked) for inputs
    ``x``, in eval mode without gradients (the modes are restored)."""
    mae = graph.mae
    was = (mae.training, masker.training)
    mae.eval()
    masker.eval()
    try:
        device = next(mae.parameters()).device
        prob = masker.probabilities(mae.embed(x.to(device)))
        mask = masker.masks_from(prob).mask
    finally:
        mae.train(was[0])
        masker.train(was[1])
    return prob.float().cpu(), mask.bool().cpu()


def diversity_metrics(
    prob: torch.Tensor, mask: torch.Tensor, repeat: tuple[float, float] | None
) -> dict[str, float]:
    """The measures of this module's docstring from one measurement's probabilities and masks
    (N >= 2 examples) and the tracker's answer (``repeat``: None before a reference exists)."""
    metrics = {
        "mask_entropy": mean_entropy_bits(prob),
        "mask_image_info": image_information_bits(prob),
        "mask_image_overlap": pairwise_overlap(mask),
    }
    if repeat is not None:
        metrics["mask_repeat"], metrics["mask_repeat_overlap"] = repeat
    return metrics


class MaskDiversity:
    """A trainer callback: at each step where the masking node is logged, the measures of this
    module on ``count`` fixed training examples, added to that node's row (the trainer puts
    it before :class:`~metamask.callbacks.MetricsLog`, which writes the row).

    It draws nothing at random (the masker's masks are its top probabilities, augmented views
    are a pure function of index and epoch), so a run that measures is the same run. Its
    reference masks travel in the trainer's checkpoints (:meth:`state_dict`), so a resumed run
    logs what the uninterrupted one does.
    """

    def __init__(self, source: MaskingSource, count: int = TRACKED) -> None:
        self.source = source
        size = len(source.dataset)  # type: ignore[arg-type]
        self.indices = tracked_indices(size, max(2, count))
        self.tracker = RepeatTracker()

    def measure(self, graph: Graph) -> dict[str, float]:
        """The measures now, on the tracked examples as the current epoch shows them."""
        epoch = self.source.epoch
        dataset = self.source.dataset
        x = torch.stack([example_at(dataset, i, epoch) for i in self.indices])
        prob, mask = probabilities_and_masks(graph, self.source.masker, x)
        metrics = diversity_metrics(prob, mask, self.tracker.update(epoch, mask))
        return {**metrics, "mask_epoch": epoch}

    def on_train_start(self, trainer: Trainer) -> None:
        """Nothing to prepare."""

    def on_step_end(self, trainer: Trainer, stepped: Sequence[Node]) -> None:
        name = self.source.node.name
        if name in trainer.to_log and name in trainer.latest:
            trainer.latest[name].update(self.measure(trainer.graph))

    def on_train_end(self, trainer: Trainer) -> None:
        """Nothing to close."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of it: the repeat tracker's reference masks."""
        return {"tracker": self.tracker.state_dict(), "indices": list(self.indices)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a resumed run's repeat rate where the checkpoint left it (rows bitwise
        those of the uninterrupted run)."""
        if list(state["indices"]) == self.indices:
            self.tracker.load_state_dict(state["tracker"])

"""What node types read of each other: the roles a learned-masking graph needs, as protocols.

A ``mask`` node sits on a :class:`MaskedPretraining` node (MLO-MAE's ``pretrain``, or
``reconstruct`` above an ``adapt`` node with a learned masker) and reads the loss of a
:class:`Downstream` node on held-out data (MLO-MAE's ``head``, or a custom node). Any node
type that has these members can take these places; the pictures of a run
(:mod:`metamask.pictures.maskers`) find the learned masker the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from metamask.models.mae import MaskedAutoencoder
    from metamask.models.maskers import LearnedMasker


@runtime_checkable
class MaskedPretraining(Protocol):
    """A pretraining node a ``mask`` node can sit on: it has the run's auto-encoder and (when
    it learns where to mask) a learned masker."""

    name: str

    @property
    def mae(self) -> MaskedAutoencoder: ...

    def learned_masker(self) -> LearnedMasker | None:
        """The masking network whose probabilities weight this node's loss, if any."""
        ...


@runtime_checkable
class Downstream(Protocol):
    """A node below a ``mask`` node whose loss on held-out data the masker minimises."""

    name: str

    def heldout_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """The loss (key ``"loss"``, plus terms to log) on a batch of the mask node's data."""
        ...

    def release(self) -> None:
        """Drop what was kept for re-evaluations of this node's loss (after the mask step)."""
        ...

"""Models: tokenizers, the masked auto-encoder, maskers and heads. Nothing here knows Betty."""

from metamask.models.heads import Projector, linear_head
from metamask.models.mae import MaskedAutoencoder, masked_mean
from metamask.models.masking import Masks, RandomMasker, num_kept
from metamask.models.transformer import twice_differentiable

__all__ = [
    "MaskedAutoencoder",
    "Masks",
    "Projector",
    "RandomMasker",
    "linear_head",
    "masked_mean",
    "num_kept",
    "twice_differentiable",
]

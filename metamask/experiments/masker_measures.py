"""What a learned masker does to test images, measured: where its masks go and how they differ.

The masker experiments (``examples/masker_levers.py``, ``examples/masker_long.py``) read a
run's masker at initialisation and after training with the same measures, on the test split's
inputs in eval mode:

- ``auroc`` (controlled datasets only, where :func:`informative_map` knows the informative
  tokens): per image, P(an informative token's masking probability > a noise token's), ties
  half, averaged over images (0.5: no preference; 1: the informative tokens are masked first;
  0: they are kept visible);
- ``entropy``: mean per-token Bernoulli entropy of the probabilities, bits (1 at p = 0.5);
- ``image_info``: bits per token that the image carries about the map (0: one map for all);
- ``overlap``: Dice overlap of two images' chosen masks (1: the same mask for every image;
  random masks at ratio r: about r);
- ``mean_p`` and ``saturated`` (share of probabilities below 0.01 or above 0.99);
- ``map``: the probabilities averaged over the images, one per token (for pictures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from metamask.compose import build_graph
from metamask.config import RunSpec
from metamask.data.embedded.controlled import informative_map
from metamask.errors import DataError
from metamask.mask_diversity import (
    image_information_bits,
    masking_source,
    mean_entropy_bits,
    pairwise_overlap,
    probabilities_and_masks,
)
from metamask.run import graph_at_checkpoint, resolve_device
from metamask.seeding import seed_everything
from metamask.spec_data import load_pretrain_data
from metamask.train import Trainer

#: the scalar measures, in the order tables show them
MEASURES = ("auroc", "entropy", "image_info", "overlap", "mean_p", "saturated")


def auroc(prob: np.ndarray, informative: np.ndarray) -> float:
    """Mean over rows of P(p[informative] > p[noise]) (ties half) for probabilities (N, L)."""
    pos, neg = prob[:, informative], prob[:, ~informative]
    greater = (pos[:, :, None] > neg[:, None, :]).mean(axis=(1, 2))
    ties = (pos[:, :, None] == neg[:, None, :]).mean(axis=(1, 2))
    return float((greater + 0.5 * ties).mean())


def informative_tokens(spec: RunSpec) -> np.ndarray | None:
    """The informative tokens of the spec's dataset when it is a controlled one, else None."""
    try:
        return informative_map(spec.data.dataset)
    except DataError:
        return None


def masker_measures(
    prob: torch.Tensor, mask: torch.Tensor, informative: np.ndarray | None
) -> dict[str, Any]:
    """The module's measures of probabilities and masks (N, L); no ``auroc`` without a map."""
    p = prob.double()
    measures: dict[str, Any] = {
        "entropy": mean_entropy_bits(p),
        "image_info": image_information_bits(p),
        "overlap": pairwise_overlap(mask),
        "mean_p": float(p.mean()),
        "saturated": float(((p < 0.01) | (p > 0.99)).double().mean()),
        "map": [float(v) for v in p.mean(dim=0)],
    }
    if informative is not None:
        measures["auroc"] = auroc(p.numpy(), informative)
    return measures


def held_out_inputs(spec: RunSpec) -> torch.Tensor:
    """The spec's test split's inputs, stacked (N, ...)."""
    test = load_pretrain_data(spec).test
    return torch.stack([test[i][0] for i in range(len(test))])  # type: ignore[arg-type]


def _measured(graph: Any, x: torch.Tensor, informative: np.ndarray | None) -> dict[str, Any]:
    source = masking_source(graph)
    if source is None:
        raise ValueError("the graph has no learned masker to measure")
    return masker_measures(*probabilities_and_masks(graph, source.masker, x), informative)


def at_initialisation(spec: RunSpec, x: torch.Tensor) -> dict[str, Any]:
    """The measures of the masker a run of ``spec`` starts from: its graph built as
    ``run_spec`` builds it (same threads, seeding and order), untrained."""
    if spec.train.threads > 0:
        torch.set_num_threads(spec.train.threads)
    seed_everything(spec.seed)
    graph = build_graph(spec, load_pretrain_data(spec), resolve_device(spec.train.device))
    return _measured(graph, x, informative_tokens(spec))


def at_checkpoint(spec: RunSpec, source: str, path: Path, x: torch.Tensor) -> dict[str, Any]:
    """The measures of the masker a run's checkpoint at ``path`` holds (nothing is written)."""
    graph, state, _, _ = graph_at_checkpoint(spec, source, path)
    Trainer(graph, spec, None, None, progress=False).restore(state, path)
    return _measured(graph, x, informative_tokens(spec))

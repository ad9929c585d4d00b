"""Shared test helpers: tiny synthetic datasets of every modality and tiny graph specs."""

from __future__ import annotations

import copy
from typing import Any

import torch

from metamask.config import RunSpec, spec_from_dict
from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo

TINY_INFOS = {
    "signal1d": DatasetInfo("tiny1d", "signal1d", (3, 16), (2,), 3, "accuracy"),
    "image2d": DatasetInfo("tiny2d", "image2d", (3, 8, 8), (2, 2), 3, "accuracy"),
    "tokens": DatasetInfo("tinytok", "tokens", (12,), (1,), 3, "accuracy", vocab_size=5),
}


def tiny_bundle(
    modality: str, n: int = 24, seed: int = 0, dtype: torch.dtype = torch.float32
) -> DataBundle:
    """A random dataset of the given modality, split 24/8/8 by default."""
    info = TINY_INFOS[modality]
    g = torch.Generator().manual_seed(seed)

    def make(count: int) -> ArrayDataset:
        if modality == "tokens":
            x = torch.randint(0, info.vocab_size, (count, *info.input_shape), generator=g)
        else:
            x = torch.randn(count, *info.input_shape, generator=g, dtype=dtype)
        y = torch.randint(0, info.num_classes, (count,), generator=g)
        return ArrayDataset(x, y)

    return DataBundle(info, make(n), make(8), make(8))


METAMAE_GRAPH: dict[str, Any] = {
    "nodes": {
        "adapt": {
            "type": "adapt",
            "inner_lr": 0.5,
            "s_ratio": 0.5,
            "latent_solver": {"type": "unrolled"},
        },
        "reconstruct": {
            "type": "reconstruct",
            "reg_weight": 0.5,
            "optimizer": {"type": "adamw", "lr": 1e-3},
        },
    },
    "u2l": {"reconstruct": ["adapt"]},
    "l2u": {"adapt": ["reconstruct"]},
}
MAE_GRAPH: dict[str, Any] = {
    "nodes": {"reconstruct": {"type": "reconstruct", "optimizer": {"type": "adamw", "lr": 1e-3}}}
}


def tiny_spec(graph: dict[str, Any] | None = None, **sections: Any) -> RunSpec:
    """A RunSpec on the tiny backbone; keyword sections (data=..., train=...) are merged in."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "data": {"dataset": "tiny", "batch_size": 8},
        "model": {"backbone": "tiny", "mask_ratio": 0.5},
        "graph": copy.deepcopy(graph if graph is not None else METAMAE_GRAPH),
        "train": {"steps": 3, "log_every": 1},
        "eval": {"probe": {"epochs": 3}},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(raw)


# -- MLO-MAE and metamae+mask graphs (tests/nodes/test_mlomae.py, test_compose_graphs.py, ...) --

ADAMW = {"type": "adamw", "lr": 1e-3, "betas": [0.9, 0.95]}
MLO_GRAPH: dict[str, Any] = {
    "nodes": {
        "pretrain": {
            "type": "pretrain",
            "unroll_steps": 2,
            "masker": {"type": "flat_mlp", "hidden": 16},
            "hypergradient": {"type": "darts"},
            "optimizer": ADAMW,
        },
        "head": {
            "type": "head",
            "hypergradient": {"type": "darts"},
            "optimizer": ADAMW,
        },
        "mask": {"type": "mask", "optimizer": ADAMW},
    },
    "u2l": {"mask": ["pretrain"]},
    "l2u": {"pretrain": ["head", "mask"], "head": ["mask"]},
}


def mlo_spec(graph: dict[str, Any], **sections: Any) -> RunSpec:
    """A tiny spec; batch 4 so that split B (5 of the 24 training examples) fills a batch."""
    return tiny_spec(graph, data={"batch_size": 4}, **sections)


def mlo_graph(**changes: Any) -> dict[str, Any]:
    graph = copy.deepcopy(MLO_GRAPH)
    for name, options in changes.items():
        graph["nodes"][name].update(options)
    return graph


PLAIN_ADAMW = {"type": "adamw", "lr": 1e-3}
METAMAE_MASK: dict[str, Any] = copy.deepcopy(METAMAE_GRAPH)
METAMAE_MASK["nodes"]["adapt"]["masker"] = {
    "type": "token_mlp",
    "hidden": 8,
    "ratio_bounds": [0.25, 0.75],
}
METAMAE_MASK["nodes"]["reconstruct"].update(unroll_steps=2, hypergradient={"type": "darts"})
METAMAE_MASK["nodes"]["head"] = {
    "type": "head",
    "hypergradient": {"type": "darts"},
    "optimizer": PLAIN_ADAMW,
}
METAMAE_MASK["nodes"]["mask"] = {"type": "mask", "optimizer": PLAIN_ADAMW}
METAMAE_MASK["u2l"]["mask"] = ["reconstruct"]
METAMAE_MASK["l2u"].update(reconstruct=["head", "mask"], head=["mask"])


def metamae_mask_graph(**changes: dict[str, Any]) -> dict[str, Any]:
    """The tiny metamae+mask graph with node keys changed."""
    graph = copy.deepcopy(METAMAE_MASK)
    for name, keys in changes.items():
        graph["nodes"][name].update(keys)
    return graph

"""Datasets: the (x, y) contract, the embedded offline datasets, and the registry."""

from metamask.data.base import (
    ArrayDataset,
    DataBundle,
    DatasetEntry,
    DatasetInfo,
    LoadOptions,
    stratified_split,
)
from metamask.data.registry import all_datasets, get_dataset, load_dataset, register_dataset

__all__ = [
    "ArrayDataset",
    "DataBundle",
    "DatasetEntry",
    "DatasetInfo",
    "LoadOptions",
    "all_datasets",
    "get_dataset",
    "load_dataset",
    "register_dataset",
    "stratified_split",
]

"""Datasets: the (x, y) contract, the embedded offline datasets, the DABS folder loaders,
the user's own arrays, and the registry."""

from metamask.data.base import (
    IGNORE_LABEL,
    NO_LABEL,
    ArrayDataset,
    DataBundle,
    DatasetEntry,
    DatasetInfo,
    LoadOptions,
    stratified_split,
)
from metamask.data.registry import (
    all_datasets,
    get_dataset,
    load_dataset,
    load_entry,
    register_dataset,
)
from metamask.data.user_arrays import ArraySource, load_array_dataset, register_array_dataset

__all__ = [
    "IGNORE_LABEL",
    "NO_LABEL",
    "ArrayDataset",
    "ArraySource",
    "DataBundle",
    "DatasetEntry",
    "DatasetInfo",
    "LoadOptions",
    "all_datasets",
    "get_dataset",
    "load_array_dataset",
    "load_dataset",
    "load_entry",
    "register_array_dataset",
    "register_dataset",
    "stratified_split",
]

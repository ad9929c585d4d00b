"""Datasets: the (x, y) contract and registry, re-exported; importing it registers every dataset.

The package has three kinds of module. At this level, the contract and its plumbing:
``base`` (DatasetInfo, DataBundle, LoadOptions), ``registry``, ``bundles`` (splits), ``cache``,
``lazy`` (decode-on-access datasets) and ``user_arrays`` (a researcher's own arrays). In
``formats/``, the file formats, readers and transforms the loaders share. And the loaders,
which register their datasets when imported: ``embedded/`` (offline data from installed wheels
or generated) and ``dabs/`` (the DABS benchmark's folders under ``--data-root``). The registry
imports none of them; the imports at the end of this file do.
"""

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

# importing the loader packages registers their datasets (after the registry exists)
from metamask.data import dabs, embedded  # noqa: F401  isort: skip

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

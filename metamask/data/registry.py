"""The dataset registry: name -> (facts, loader, availability check).

The registry imports none of its members: each loader module registers its datasets when it is
imported, and ``metamask/data/__init__.py`` imports the loader packages (``embedded``, ``dabs``),
so any import of ``metamask.data...`` fills the registry before a lookup can run.
"""

from __future__ import annotations

from metamask.data.base import DataBundle, DatasetEntry, LoadOptions
from metamask.errors import DataError, did_you_mean

DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add a dataset under ``entry.info.name``; a second registration of a name is an error."""
    name = entry.info.name
    if name in DATASETS:
        raise ValueError(f"dataset {name!r} is registered twice")
    DATASETS[name] = entry
    return entry


def get_dataset(name: str) -> DatasetEntry:
    """The registered entry for ``name``; DataError with a suggestion when unknown."""
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; "
            "`metamask datasets` lists the registered ones"
        )
    return DATASETS[name]


def load_dataset(name: str, options: LoadOptions | None = None) -> DataBundle:
    """Load the splits of dataset ``name``; DataError when it cannot be loaded here."""
    return load_entry(get_dataset(name), options)


def load_entry(entry: DatasetEntry, options: LoadOptions | None = None) -> DataBundle:
    """Load a dataset entry, registered or not: availability check, load, shape check."""
    options = options or LoadOptions()
    reason = entry.requires(options)
    if reason is not None:
        raise DataError(f"dataset {entry.info.name}: {reason}")
    bundle = entry.load(options)
    _check_bundle(bundle)
    return bundle


def all_datasets() -> dict[str, DatasetEntry]:
    """Every registered dataset, embedded and folder-based."""
    return dict(DATASETS)


def _check_bundle(bundle: DataBundle) -> None:
    """Shapes are checked at the boundary: the first example must have the declared shape (and
    there must be one)."""
    info = bundle.info
    splits = {"pretraining": bundle.pretrain_set, "training": bundle.train}
    for split, dataset in splits.items():
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise DataError(f"dataset {info.name}: its {split} split is empty (no examples read)")
    x, _ = bundle.pretrain_set[0]
    if tuple(x.shape) != info.input_shape:
        raise DataError(
            f"dataset {info.name}: expected inputs of shape {info.input_shape}, "
            f"the loader produced {tuple(x.shape)}"
        )

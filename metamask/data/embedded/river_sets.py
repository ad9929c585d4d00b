"""Embedded tabular data from river's bundled files: Statlog Shuttle (49,097 rows x 9 sensors).

river's own code needs narwhals, numpy>=2.2.5 and a compiled extension, none of which reading
one CSV does; it is installed ``--no-deps`` and never imported: ``river/datasets/shuttle.csv.gz``
is read by path (:mod:`metamask.data.embedded.wheels`, :mod:`metamask.data.formats.gzip_csv`).
Inputs are standardised per feature with statistics of the training split only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.embedded.wheels import missing_package_file, package_file
from metamask.data.formats.gzip_csv import read_gzip_csv
from metamask.data.registry import register_dataset
from metamask.errors import DataError

SHUTTLE_FILE = "datasets/shuttle.csv.gz"
SHUTTLE_FEATURES = tuple(f"f{i}" for i in range(1, 10))

SHUTTLE = DatasetInfo(
    name="shuttle",
    modality="signal1d",
    input_shape=(1, len(SHUTTLE_FEATURES)),
    patch=(1,),  # each sensor reading is a token
    num_classes=2,
    metric="binary_accuracy",
    domain="tabular",
    description="river Shuttle (UCI Statlog Shuttle as in ODDS): 49,097 rows x 9 shuttle "
    "sensors, Rad Flow vs rare classes (7.2 % anomalies; majority baseline 92.8 %)",
)


def shuttle_arrays(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, 1, 9) sensor readings and int64 labels (1 = anomaly) of river's shuttle file.

    ``path`` defaults to the file inside the installed river wheel.
    """
    path = path if path is not None else package_file("river", SHUTTLE_FILE)
    table = read_gzip_csv(path, (*SHUTTLE_FEATURES, "anomaly"))
    labels = table[:, -1]
    if not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][0]
        raise DataError(f"{path}: column 'anomaly' holds {bad:g}; expected 0 or 1")
    if len(np.unique(labels)) < 2:
        raise DataError(f"{path}: column 'anomaly' holds one class only; expected 0 and 1")
    x = table[:, None, :-1].astype(np.float32)
    return x, labels.astype(np.int64)


def _load_shuttle(options: LoadOptions) -> DataBundle:
    x, y = shuttle_arrays()
    return split_bundle(SHUTTLE, x, y, options, standardise="feature")


register_dataset(
    DatasetEntry(
        SHUTTLE,
        _load_shuttle,
        requires=lambda o: missing_package_file("river", SHUTTLE_FILE),
    )
)

"""DABS tabular: HIGGS (28 kinematic features per collision, signal vs background).

Files (both layouts): ``particle_physics/higgsPretrain.csv`` (first 90 % of TFDS ``higgs``,
~9.9 M rows) and ``higgsTransfer.csv`` (last 10 %), written by DABS with pandas: a leading
unnamed index column, ``class_label`` (0.0 / 1.0), then the 28 features. Rows are read lazily
through a line index (see metamask.data.formats.csv_rows): the 9.9 M-row file is never held
in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.bundles import lazy_bundle
from metamask.data.dabs.layout import Layouts, dabs_head_tail, dabs_order, folder_entry
from metamask.data.formats.csv_rows import CsvRows
from metamask.data.lazy import CsvRowsDataset, Item
from metamask.data.registry import register_dataset
from metamask.errors import DataError

HIGGS_FEATURES = 28

HIGGS = DatasetInfo(
    name="higgs",
    modality="signal1d",
    input_shape=(1, HIGGS_FEATURES),
    patch=(1,),
    num_classes=2,
    metric="binary_accuracy",
    domain="tabular",
    description="HIGGS (UCI / TFDS) as DABS stores it: 28 features -> 28 tokens, signal vs "
    "background",
)
LAYOUTS = Layouts("particle_physics", "particle_physics")
PRETRAIN, TRANSFER = "higgsPretrain.csv", "higgsTransfer.csv"


@dataclass(frozen=True)
class HiggsRow:
    """One CSV row -> ((1, 28) float32 features, int64 label 0 / 1). Columns are found by name
    in the header (``class_label``), not by position, so a pandas version cannot shift them."""

    label: int
    features: tuple[int, ...]

    def __call__(self, fields: list[str], where: str) -> Item:
        try:
            label = float(fields[self.label])
            x = np.array([float(fields[i]) for i in self.features], dtype=np.float32)
        except ValueError:
            raise DataError(f"{where}: a HIGGS value is not a number") from None
        if label not in (0.0, 1.0):
            raise DataError(f"{where}: class_label must be 0 or 1, got {fields[self.label]!r}")
        return torch.from_numpy(x.reshape(1, HIGGS_FEATURES)), torch.tensor(int(label))


def higgs_parser(rows: CsvRows) -> HiggsRow:
    """Locate the label and the 28 feature columns of a DABS HIGGS CSV header."""
    label = rows.column("class_label")
    skip = {label, 0} if rows.header and rows.header[0] in ("", "Unnamed: 0") else {label}
    features = tuple(i for i in range(len(rows.header)) if i not in skip)
    if len(features) != HIGGS_FEATURES:
        raise DataError(
            f"{rows.path}: expected {HIGGS_FEATURES} feature columns besides class_label "
            f"(and the index), found {len(features)}"
        )
    return HiggsRow(label, features)


def _load_higgs(options: LoadOptions) -> DataBundle:
    base = LAYOUTS.base(options, (PRETRAIN, TRANSFER), "higgs")
    transfer, pretrain = CsvRows(base / TRANSFER), CsvRows(base / PRETRAIN)
    parse = higgs_parser(transfer)
    head, tail = dabs_head_tail(dabs_order(len(transfer)))
    pretrain_head, _ = dabs_head_tail(dabs_order(len(pretrain)))
    return lazy_bundle(
        HIGGS,
        CsvRowsDataset(transfer, head, parse),
        np.zeros(len(head)),  # labels are not known without parsing: unstratified val split
        options,
        test=CsvRowsDataset(transfer, tail, parse),
        pretrain=CsvRowsDataset(pretrain, pretrain_head, higgs_parser(pretrain)),
    )


register_dataset(folder_entry(HIGGS, LAYOUTS, (PRETRAIN, TRANSFER), _load_higgs))

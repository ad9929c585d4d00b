"""DABS tokens: genomics (bacterial DNA, 250 bases) and proteins (Pfam, SCOP, secondary
structure, stability, fluorescence; 128 residues).

Every file is a CSV written by DABS with pandas (a leading unnamed index column); rows are
read lazily through a line index (metamask.data.formats.csv_rows) and columns are looked up by
*name* (the official code used positions, ``row[0]``, which pandas 3 no longer resolves).

Deliberate differences from the official loaders:

* secondary-structure pads its per-residue labels with IGNORE_LABEL (not scored), not with a
  4th class 3 that the official code counted in loss and accuracy: num_classes is 3;
* the Pfam clan -> label map (sorted clans of the pretraining CSV) is built once per file and
  cached in the user cache instead of re-reading the whole pretraining CSV on every load;
* a base or residue outside the vocabulary is a DataError naming file and row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metamask.data.base import IGNORE_LABEL, DataBundle, DatasetInfo, LoadOptions
from metamask.data.bundles import lazy_bundle
from metamask.data.cache import cached_json
from metamask.data.dabs.layout import Layouts, dabs_head_tail, dabs_order, folder_entry
from metamask.data.formats.csv_rows import CsvRows
from metamask.data.formats.vocab import (
    DNA,
    DNA_TABLE,
    PROTEIN,
    PROTEIN_LENGTH,
    PROTEIN_PAD,
    PROTEIN_TABLE,
    encode,
    pad_or_truncate,
)
from metamask.data.lazy import CsvRowsDataset, Item, RowParser
from metamask.data.registry import register_dataset
from metamask.errors import DataError

# ----------------------------------------------------------------------------------------------
# genomics: TFDS genomics_ood (250-base bacterial sequences)
# ----------------------------------------------------------------------------------------------

GENOMICS_LENGTH = 250
GENOMICS_LAYOUTS = Layouts("genomics", "genomics")


def genomics_info(name: str, classes: int, description: str) -> DatasetInfo:
    """The DatasetInfo shared by genomics, genomics-id and genomics-ood."""
    return DatasetInfo(
        name=name,
        modality="tokens",
        input_shape=(GENOMICS_LENGTH,),
        patch=(1,),
        num_classes=classes,
        metric="accuracy",
        vocab_size=len(DNA),
        domain="genomics",
        description=description,
    )


GENOMICS = genomics_info(
    "genomics", 10, "genomics_ood train split (DABS pretraining): 10 in-distribution bacteria"
)
GENOMICS_ID = genomics_info(
    "genomics-id", 10, "genomics_ood validation split: the 10 in-distribution bacteria"
)
GENOMICS_OOD = genomics_info(
    "genomics-ood", 60, "genomics_ood validation_ood split: 60 other bacteria (labels 10-69)"
)


@dataclass(frozen=True)
class GenomicsRow:
    """A genomics CSV row -> (250 int64 base ids, int64 label - offset)."""

    label: int
    sequence: int
    offset: int  # 10 for the OOD file, whose labels are 10..69
    classes: int

    def __call__(self, fields: list[str], where: str) -> Item:
        seq = fields[self.sequence]
        if seq[:2] in ("b'", 'b"') and seq[-1:] == seq[1]:  # the bytes repr TFDS left behind
            seq = seq[2:-1]
        if len(seq) < GENOMICS_LENGTH:
            raise DataError(f"{where}: sequence has {len(seq)} bases, expected {GENOMICS_LENGTH}")
        ids = encode(seq[:GENOMICS_LENGTH], DNA_TABLE, where)
        try:
            label = int(float(fields[self.label])) - self.offset
        except ValueError:
            raise DataError(f"{where}: label {fields[self.label]!r} is not a number") from None
        if not 0 <= label < self.classes:
            raise DataError(
                f"{where}: label {label + self.offset} outside "
                f"{self.offset}..{self.offset + self.classes - 1}"
            )
        return torch.from_numpy(ids), torch.tensor(label)


def _genomics_rows(path: Path, info: DatasetInfo, offset: int) -> tuple[CsvRows, GenomicsRow]:
    rows = CsvRows(path)
    return rows, GenomicsRow(rows.column("label"), rows.column("seq"), offset, info.num_classes)


def _genomics_loader(
    info: DatasetInfo, filename: str, offset: int
) -> Callable[[LoadOptions], DataBundle]:
    def load(options: LoadOptions) -> DataBundle:
        base = GENOMICS_LAYOUTS.base(options, (filename,), info.name)
        rows, parse = _genomics_rows(base / filename, info, offset)
        head, tail = dabs_head_tail(dabs_order(len(rows)))
        return lazy_bundle(
            info,
            CsvRowsDataset(rows, head, parse),
            np.zeros(len(head)),
            options,
            test=CsvRowsDataset(rows, tail, parse),
        )

    return load


for _info, _file, _offset in (
    (GENOMICS, "genomicsPretrain.csv", 0),
    (GENOMICS_ID, "genomicsTransferID.csv", 0),
    (GENOMICS_OOD, "genomicsTransferOOD.csv", 10),
):
    register_dataset(
        folder_entry(_info, GENOMICS_LAYOUTS, (_file,), _genomics_loader(_info, _file, _offset))
    )

# ----------------------------------------------------------------------------------------------
# proteins: TAPE tasks in the 26-letter vocabulary, 128 residues
# ----------------------------------------------------------------------------------------------

PFAM_LAYOUTS = Layouts("pfam", "proteins")
TAPE_LAYOUTS = Layouts("pfam/transfer", "proteins")
PFAM_PRETRAIN, PFAM_TRANSFER = "pfam_pretrain_train.csv", "pfam_transfer.csv"


def protein_tokens(sequence: str, where: str) -> np.ndarray:
    """First 128 residues as int64 ids of the DABS vocabulary, right-padded with X (0)."""
    ids = encode(sequence.strip(), PROTEIN_TABLE, where)
    return pad_or_truncate(ids, PROTEIN_LENGTH, PROTEIN.index(PROTEIN_PAD))


def protein_info(
    name: str, classes: int, metric: str, description: str, labelled: bool = True
) -> DatasetInfo:
    """The DatasetInfo shared by the protein datasets."""
    return DatasetInfo(
        name=name,
        modality="tokens",
        input_shape=(PROTEIN_LENGTH,),
        patch=(1,),
        num_classes=classes,
        metric=metric,  # type: ignore[arg-type]
        vocab_size=len(PROTEIN),
        domain="proteins",
        description=description,
        labelled=labelled,
    )


PFAM = protein_info("pfam", 623, "accuracy", "TAPE Pfam: domains -> 623 clans (DABS)")
SCOP = protein_info("scop", 1195, "accuracy", "TAPE remote homology: 1195 SCOP folds")
SECONDARY_STRUCTURE = protein_info(
    "secondary-structure", 3, "token_accuracy", "TAPE secondary structure: 3 classes per residue"
)
STABILITY = protein_info("stability", 0, "spearman", "TAPE stability: regression, Spearman")
FLUORESCENCE = protein_info(
    "fluorescence", 0, "spearman", "TAPE GFP fluorescence: regression, Spearman"
)


@dataclass(frozen=True)
class ClassRow:
    """Protein row -> (tokens, int64 class): an integer column, or a name looked up in a map."""

    sequence: int
    label: int
    classes: int
    names: Mapping[str, int] | None = None  # when set: the label cell is a name -> its class

    def __call__(self, fields: list[str], where: str) -> Item:
        cell = fields[self.label].strip()
        if self.names is not None:
            if cell not in self.names:
                raise DataError(f"{where}: {cell!r} is not a class of the pretraining CSV")
            label = self.names[cell]
        else:
            try:
                label = int(float(cell))
            except ValueError:
                raise DataError(f"{where}: label {cell!r} is not an integer") from None
        if not 0 <= label < self.classes:
            raise DataError(f"{where}: label {label} outside 0..{self.classes - 1}")
        return torch.from_numpy(protein_tokens(fields[self.sequence], where)), torch.tensor(label)


@dataclass(frozen=True)
class PerResidueRow:
    """secondary-structure row -> (tokens, (128,) int64 labels, IGNORE_LABEL past the end)."""

    sequence: int
    label: int

    def __call__(self, fields: list[str], where: str) -> Item:
        tokens = protein_tokens(fields[self.sequence], where)
        try:
            labels = [int(v) for v in json.loads(fields[self.label])]
        except (ValueError, TypeError):
            raise DataError(f"{where}: ss3 {fields[self.label][:40]!r} is not a list") from None
        if any(not 0 <= v <= 2 for v in labels):
            raise DataError(f"{where}: ss3 classes must be 0, 1 or 2")
        y = np.full(PROTEIN_LENGTH, IGNORE_LABEL, dtype=np.int64)
        n = min(PROTEIN_LENGTH, len(labels), len(fields[self.sequence].strip()))
        y[:n] = labels[:n]
        return torch.from_numpy(tokens), torch.from_numpy(y)


@dataclass(frozen=True)
class RegressionRow:
    """stability / fluorescence row -> (tokens, float32 target); the target is stored as a
    one-element list string like ``"[0.37]"`` (a plain number is accepted too)."""

    sequence: int
    label: int

    def __call__(self, fields: list[str], where: str) -> Item:
        cell = fields[self.label].strip()
        try:
            value = json.loads(cell)
            value = float(value[0] if isinstance(value, list) else value)
        except (ValueError, TypeError, IndexError):
            raise DataError(f"{where}: target {cell[:40]!r} is not a number") from None
        if not np.isfinite(value):
            raise DataError(f"{where}: target is not finite")
        tokens = protein_tokens(fields[self.sequence], where)
        return torch.from_numpy(tokens), torch.tensor(value, dtype=torch.float32)


def pfam_clans(path: Path) -> tuple[str, ...]:
    """Sorted distinct clans of the Pfam pretraining CSV (one streaming pass, then cached)."""

    def build() -> list[str]:
        clans: set[str] = set()
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if "clan" not in header:
                raise DataError(f"{path}: no column 'clan'; columns are {header}")
            at = header.index("clan")
            for row in reader:
                if len(row) > at:
                    clans.add(row[at].strip())
        return sorted(clans)

    clans = tuple(cached_json("pfam-clans", [path], build))
    if len(clans) > PFAM.num_classes:
        raise DataError(f"{path}: {len(clans)} clans, more than the 623 DABS declares")
    return clans


def _load_pfam(options: LoadOptions) -> DataBundle:
    base = PFAM_LAYOUTS.base(options, (PFAM_PRETRAIN, PFAM_TRANSFER), "pfam")
    pretrain, transfer = CsvRows(base / PFAM_PRETRAIN), CsvRows(base / PFAM_TRANSFER)
    clans = {clan: i for i, clan in enumerate(pfam_clans(base / PFAM_PRETRAIN))}
    parse = ClassRow(transfer.column("primary"), transfer.column("clan"), PFAM.num_classes, clans)
    head, tail = dabs_head_tail(np.arange(len(transfer)))  # DABS wrote it shuffled already
    pretrain_parse = ClassRow(
        pretrain.column("primary"), pretrain.column("clan"), PFAM.num_classes, clans
    )
    return lazy_bundle(
        PFAM,
        CsvRowsDataset(transfer, head, parse),
        np.zeros(len(head)),
        options,
        test=CsvRowsDataset(transfer, tail, parse),
        pretrain=CsvRowsDataset(pretrain, np.arange(len(pretrain)), pretrain_parse),
    )


register_dataset(folder_entry(PFAM, PFAM_LAYOUTS, (PFAM_PRETRAIN, PFAM_TRANSFER), _load_pfam))


def _tape_loader(
    info: DatasetInfo, task: str, column: str
) -> tuple[tuple[str, str], Callable[[LoadOptions], DataBundle]]:
    files = (f"{task}_train.csv", f"{task}_valid.csv")

    def load(options: LoadOptions) -> DataBundle:
        base = TAPE_LAYOUTS.base(options, files, info.name)
        train, test = CsvRows(base / files[0]), CsvRows(base / files[1])

        def parser(rows: CsvRows) -> RowParser:
            seq, label = rows.column("primary"), rows.column(column)
            if info.metric == "token_accuracy":
                return PerResidueRow(seq, label)
            if info.num_classes == 0:
                return RegressionRow(seq, label)
            return ClassRow(seq, label, info.num_classes)

        # TAPE's train file -> probe training (+ validation); its valid file -> test (DABS)
        return lazy_bundle(
            info,
            CsvRowsDataset(train, np.arange(len(train)), parser(train)),
            np.zeros(len(train)),
            options,
            test=CsvRowsDataset(test, np.arange(len(test)), parser(test)),
        )

    return files, load


for _info, _task, _column in (
    (SCOP, "remote_homology", "fold_label"),
    (SECONDARY_STRUCTURE, "secondary_structure", "ss3"),
    (STABILITY, "stability", "stability_score"),
    (FLUORESCENCE, "fluorescence", "log_fluorescence"),
):
    _files, _load = _tape_loader(_info, _task, _column)
    register_dataset(folder_entry(_info, TAPE_LAYOUTS, _files, _load))

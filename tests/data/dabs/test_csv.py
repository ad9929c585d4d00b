"""DABS CSV datasets (higgs, genomics, pfam, TAPE tasks) from tiny files in both layouts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import (
    CLANS,
    assert_disjoint,
    assert_items,
    dna,
    protein,
    write_genomics,
    write_higgs,
    write_pfam,
    write_tape,
)

from metamask.data import LoadOptions, get_dataset, load_dataset
from metamask.data.base import IGNORE_LABEL
from metamask.data.dabs.layout import dabs_head_tail, dabs_order
from metamask.data.formats.vocab import PROTEIN
from metamask.errors import DataError

LAYOUTS = ["metamae", "dabs"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAMASK_CACHE_DIR", str(tmp_path / "cache"))


def _options(root: Path, seed: int = 0) -> LoadOptions:
    return LoadOptions(seed=seed, data_root=str(root))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_higgs_rows_become_28_tokens_with_the_dabs_test_rows(tmp_path: Path, layout: str) -> None:
    write_higgs(tmp_path, layout)
    bundle = load_dataset("higgs", _options(tmp_path))
    assert_items(bundle)
    assert_disjoint(bundle)
    head, tail = dabs_head_tail(dabs_order(21))
    assert [int(x[0, 0]) for x, _ in bundle.test] == tail.tolist()  # feature 0 = row number
    x, y = bundle.test[0]
    assert torch.allclose(x[0, :3], torch.tensor([0.0, 0.01, 0.02]) + float(tail[0]))
    assert int(y) == tail[0] % 2
    assert len(bundle.train) + len(bundle.val) == len(head) == 19
    assert len(bundle.pretrain) == 27  # head of the 30-row pretraining file


def test_higgs_split_is_deterministic_per_seed(tmp_path: Path) -> None:
    write_higgs(tmp_path, "metamae")
    a = load_dataset("higgs", _options(tmp_path, 1))
    b = load_dataset("higgs", _options(tmp_path, 1))
    c = load_dataset("higgs", _options(tmp_path, 2))
    assert a.val.indices.tolist() == b.val.indices.tolist()
    assert a.val.indices.tolist() != c.val.indices.tolist()
    assert a.test.order.tolist() == c.test.order.tolist()  # the test set never moves


def test_missing_higgs_file_names_both_layout_paths(tmp_path: Path) -> None:
    write_higgs(tmp_path, "metamae")
    (tmp_path / "particle_physics/higgsPretrain.csv").unlink()
    expected = tmp_path / "particle_physics/higgsPretrain.csv"
    assert str(expected) in (get_dataset("higgs").requires(_options(tmp_path)) or "")
    with pytest.raises(DataError, match=re.escape(f"dataset higgs: expected {expected}")):
        load_dataset("higgs", _options(tmp_path))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_genomics_sequences_are_250_base_tokens_and_ood_labels_shift_by_10(
    tmp_path: Path, layout: str
) -> None:
    write_genomics(tmp_path, layout)
    for name in ("genomics", "genomics-id", "genomics-ood"):
        bundle = load_dataset(name, _options(tmp_path))
        assert_items(bundle)
        assert_disjoint(bundle)
    ood = load_dataset("genomics-ood", _options(tmp_path))
    row = int(ood.test.order[0])
    x, y = ood.test[0]
    assert int(y) == row % 60  # file label 10 + row % 60
    assert x.tolist() == ["ACGT".index(b) for b in dna(row)]


def test_genomics_base_outside_acgt_is_an_error_naming_the_row(tmp_path: Path) -> None:
    write_genomics(tmp_path, "metamae")
    path = tmp_path / "genomics/genomicsTransferID.csv"
    path.write_text(path.read_text().replace("b'A", "b'N", 1))  # file row 0 (data row 1)
    with pytest.raises(DataError, match=r"genomicsTransferID.csv data row 1: characters 'N'"):
        bundle = load_dataset("genomics-id", _options(tmp_path))  # may decode row 0 already
        for split in (bundle.train, bundle.val, bundle.test):
            for i in range(len(split)):
                split[i]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pfam_labels_are_sorted_clans_of_the_pretraining_csv(tmp_path: Path, layout: str) -> None:
    write_pfam(tmp_path, layout)
    bundle = load_dataset("pfam", _options(tmp_path))
    assert_items(bundle)
    assert_disjoint(bundle)
    assert len(bundle.pretrain) == 20  # every pretraining row
    assert bundle.test.order.tolist() == [18, 19]  # the pfam transfer CSV is not reshuffled
    for (x, y), row in zip(bundle.test, (18, 19), strict=True):
        assert int(y) == sorted(CLANS).index(CLANS[row % 3])
        residues = protein(row, 100 + 5 * row)[:128]  # 190 and 195 residues: cut to 128
        assert x.tolist() == [PROTEIN.index(r) for r in residues]
    x, _ = bundle.pretrain[0]  # 100 residues: X-padded
    assert (x[100:] == PROTEIN.index("X")).all() and (x[:100] != 0).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tape_tasks_load_with_their_label_kinds(tmp_path: Path, layout: str) -> None:
    write_tape(tmp_path, layout)
    for name in ("scop", "secondary-structure", "stability", "fluorescence"):
        bundle = load_dataset(name, _options(tmp_path))
        assert_items(bundle)
        assert_disjoint(bundle)
        assert len(bundle.test) == 5 and len(bundle.train) + len(bundle.val) == 12
    stability = load_dataset("stability", _options(tmp_path))
    assert [float(y) for _, y in stability.test] == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])
    scop = load_dataset("scop", _options(tmp_path))
    assert [int(y) for _, y in scop.test] == [0, 7, 14, 21, 28]


def test_secondary_structure_padding_is_not_scored(tmp_path: Path) -> None:
    write_tape(tmp_path, "dabs")
    bundle = load_dataset("secondary-structure", _options(tmp_path))
    assert bundle.info.num_classes == 3
    x, y = bundle.test[0]  # 60 residues
    assert y[:60].tolist() == [k % 3 for k in range(60)]
    assert (y[60:] == IGNORE_LABEL).all() and (x[60:] == 0).all()
    x, y = bundle.test[4]  # 100 residues
    assert (y[:100] >= 0).all() and (y[100:] == IGNORE_LABEL).all()


def test_protein_residue_outside_the_vocabulary_is_an_error(tmp_path: Path) -> None:
    write_tape(tmp_path, "metamae")
    path = tmp_path / "pfam/transfer/stability_valid.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",A", ",a*", 1)
    path.write_text("\n".join(lines) + "\n")
    bundle = load_dataset("stability", _options(tmp_path))
    with pytest.raises(DataError, match=r"stability_valid.csv data row 1: characters '\*'"):
        bundle.test[0]


def test_pfam_clan_map_is_cached_per_file(tmp_path: Path) -> None:
    from metamask.data.dabs.tokens import pfam_clans

    write_pfam(tmp_path, "metamae")
    path = tmp_path / "pfam/pfam_pretrain_train.csv"
    assert pfam_clans(path) == tuple(sorted(CLANS))
    assert len(list((tmp_path / "cache/pfam-clans").iterdir())) == 1
    assert np.array_equal(pfam_clans(path), sorted(CLANS))

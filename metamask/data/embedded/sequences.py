"""Embedded token datasets from FASTA files inside wheels: janggu mouse DNA, pyhmmer proteins.

janggu cannot be imported (it needs keras, pysam, Biopython==1.77); pyhmmer could be, but only
its test-data folder is needed. Both are read by path.
"""

from __future__ import annotations

import numpy as np

from metamask.data.base import NO_LABEL, DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.embedded.wheels import missing_package_file, package_file
from metamask.data.formats.text_files import read_fasta
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
from metamask.data.registry import register_dataset
from metamask.errors import DataError

# ----------------------------------------------------------------------------------------------
# janggu: DNA tokens (200 bp mouse intervals; binary task: which of two FASTA files)
# ----------------------------------------------------------------------------------------------

JANGGU_LENGTH = 200

JANGGU_DNA = DatasetInfo(
    name="janggu_dna",
    modality="tokens",
    input_shape=(JANGGU_LENGTH,),
    patch=(1,),
    num_classes=2,
    metric="binary_accuracy",
    vocab_size=len(DNA),
    domain="genomics",
    description="janggu sample.fa vs sample2.fa: 7797 mouse 200 bp intervals (+200 held out), "
    "which file (GC 0.46 vs 0.39)",
)
_JANGGU = "resources/{}.fa"


def fasta_dna(name: str) -> np.ndarray:
    """Token ids (N, 200) of janggu's ``resources/<name>.fa`` (soft-masked lower case -> upper)."""
    path = package_file("janggu", _JANGGU.format(name))
    seqs = [encode(seq, DNA_TABLE, f"{path} record '{head}'") for head, seq in read_fasta(path)]
    lengths = {len(s) for s in seqs}
    if lengths != {JANGGU_LENGTH}:
        raise DataError(f"{path}: expected {JANGGU_LENGTH} bp sequences, found lengths {lengths}")
    return np.stack(seqs)


def _two_files(first: str, second: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = fasta_dna(first), fasta_dna(second)
    return np.concatenate([a, b]), np.repeat(np.array([0, 1], dtype=np.int64), [len(a), len(b)])


def _load_janggu(options: LoadOptions) -> DataBundle:
    x, y = _two_files("sample", "sample2")
    test = _two_files("sample_test", "sample2_test")  # janggu's own held-out files
    return split_bundle(JANGGU_DNA, x, y, options, test=test)


register_dataset(
    DatasetEntry(
        JANGGU_DNA,
        _load_janggu,
        requires=lambda o: missing_package_file("janggu", _JANGGU.format("sample2_test")),
    )
)

# ----------------------------------------------------------------------------------------------
# proteins: protein tokens (2100 proteins of one proteome; unlabelled, pretraining only)
# ----------------------------------------------------------------------------------------------

PROTEINS = DatasetInfo(
    name="proteins",
    modality="tokens",
    input_shape=(PROTEIN_LENGTH,),
    patch=(1,),
    num_classes=0,
    metric="accuracy",  # never used: unlabelled
    vocab_size=len(PROTEIN),
    domain="proteins",
    description="pyhmmer test proteome (938293.PRJEB85.HG003687): 2100 proteins, first 128 "
    "residues, X-padded; unlabelled",
    labelled=False,
)
_PROTEOME = "tests/data/seqs/938293.PRJEB85.HG003687.faa"


def proteome_tokens() -> np.ndarray:
    """Token ids (N, 128) of the pyhmmer proteome in the 26-letter DABS vocabulary.

    The stop symbol ``*`` that ends most predicted proteins is not a residue and is dropped;
    sequences are truncated to 128 residues or right-padded with X (id 0), as DABS does.
    """
    path = package_file("pyhmmer", _PROTEOME)
    pad = PROTEIN.index(PROTEIN_PAD)
    return np.stack(
        [
            pad_or_truncate(
                encode(seq.replace("*", ""), PROTEIN_TABLE, f"{path} record '{head.split()[0]}'"),
                PROTEIN_LENGTH,
                pad,
            )
            for head, seq in read_fasta(path)
        ]
    )


def _load_proteins(options: LoadOptions) -> DataBundle:
    x = proteome_tokens()
    return split_bundle(PROTEINS, x, np.full(len(x), NO_LABEL, dtype=np.int64), options)


register_dataset(
    DatasetEntry(
        PROTEINS, _load_proteins, requires=lambda o: missing_package_file("pyhmmer", _PROTEOME)
    )
)

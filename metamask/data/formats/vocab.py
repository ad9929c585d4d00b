"""Token vocabularies for discrete sequences (DNA, proteins) and the encoder that applies them.

The orders are those of the DABS / MetaMAE code so that token ids mean the same thing here as
there: DNA ``A C G T`` -> 0..3; proteins ``X A R N D C Q E G H I L K M F P S T W Y V U O B Z J``
-> 0..25, where X (unknown residue) doubles as padding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from metamask.errors import DataError

DNA = "ACGT"  # DABS genomics vocabulary (4 tokens)
DNA_AMBIGUOUS = "ACGTN"  # + N, one token for every IUPAC ambiguity code (see SPLICE_CODES)
PROTEIN = "XARNDCQEGHILKMFPSTWYVUOBZJ"  # DABS protein vocabulary (26 tokens); X = 0 = padding
PROTEIN_PAD = "X"
PROTEIN_LENGTH = 128  # DABS: truncate / right-pad every protein to 128 residues

# IUPAC ambiguity codes (a base that is one of several) -> the single "unknown base" token N
IUPAC_AMBIGUOUS = "NRYSWKMBDHV"


def lookup_table(alphabet: str, aliases: Mapping[str, str] | None = None) -> np.ndarray:
    """A 256-entry byte -> token id table (-1 = not in the vocabulary), upper- and lower-case.

    ``aliases`` maps extra characters onto letters of ``alphabet`` (e.g. ambiguity codes -> N).
    """
    table = np.full(256, -1, dtype=np.int64)
    for i, letter in enumerate(alphabet):
        table[ord(letter.upper())] = table[ord(letter.lower())] = i
    for extra, letter in (aliases or {}).items():
        table[ord(extra.upper())] = table[ord(extra.lower())] = alphabet.index(letter)
    return table


def encode(sequence: str, table: np.ndarray, where: str) -> np.ndarray:
    """Token ids (int64) of ``sequence``; DataError naming ``where`` on a character outside it."""
    raw = np.frombuffer(sequence.encode("latin-1", errors="replace"), dtype=np.uint8)
    ids = table[raw]
    if (ids < 0).any():
        bad = sorted({sequence[i] for i in np.flatnonzero(ids < 0)})
        raise DataError(f"{where}: characters {''.join(bad)!r} are not in the vocabulary")
    return ids


def pad_or_truncate(ids: np.ndarray, length: int, pad_id: int) -> np.ndarray:
    """Cut ``ids`` to ``length`` or right-pad it with ``pad_id``."""
    out = np.full(length, pad_id, dtype=np.int64)
    n = min(length, len(ids))
    out[:n] = ids[:n]
    return out


DNA_TABLE = lookup_table(DNA)
DNA_AMBIGUOUS_TABLE = lookup_table(DNA_AMBIGUOUS, {c: "N" for c in IUPAC_AMBIGUOUS})
PROTEIN_TABLE = lookup_table(PROTEIN)

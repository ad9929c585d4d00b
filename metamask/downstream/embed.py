"""``metamask embed``: a pretrained encoder's features of a dataset's splits, or of your arrays.

The output (docs/using-encoders.md, "embed"), for ``--out feats.npy``:

- ``feats.npy``: float32 features, one row per example: (N, D) with the global pool, or
  (N, L, D) for an encoder whose probe reads per-token features; with ``--data``, the
  splits one after the other (train, validation, test), each in the dataset's own order;
- ``feats.labels.npy``: the labels, row for row (absent when the data has none);
- ``feats.json``: where each split's rows lie (``splits``: name -> [start, end)), the encoder,
  the data, the pool and the shapes.

Features are computed in batches under ``torch.no_grad`` with the encoder in eval mode, with a
progress bar on stderr; every file is written atomically, after all rows are computed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from metamask.checkpoint import atomic_write
from metamask.data.base import LoadOptions
from metamask.data.registry import load_dataset
from metamask.downstream.encoder import EncoderConfig, PretrainedEncoder
from metamask.downstream.load import load_encoder
from metamask.errors import DataError


def embed(
    source: Path,
    out: Path,
    data: str | None = None,
    arrays: Path | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Write the features (and labels) of ``data``'s splits or of ``arrays`` beside ``out``;
    returns what ``feats.json`` holds.

    Raises:
        EncoderError: ``source`` is no loadable export or run folder.
        DataError: unknown dataset, unreadable arrays, inputs of another shape than the
            encoder's.
    """
    if (data is None) == (arrays is None):
        raise DataError("embed: give one of --data NAME or --arrays FILE")
    encoder = load_encoder(source, device)
    config = encoder.config
    splits: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    if data is not None:
        options = LoadOptions(
            seed=int(config.data.get("seed", 0)),
            val_fraction=float(config.data.get("val_fraction", 0.2)),
            data_root=data_root,
        )
        bundle = load_dataset(data, options)
        info = bundle.info
        _check_inputs(config, info.modality, tuple(info.input_shape), info.vocab_size, data)
        for name in ("train", "val", "test"):
            feats, labels = _run(
                encoder, getattr(bundle, name), batch_size, device, name, progress, console
            )
            splits[name] = (feats, labels if info.labelled else None)
    else:
        assert arrays is not None
        x, y = read_arrays(arrays, config)
        dataset = TensorDataset(x, y if y is not None else torch.zeros(len(x)))
        feats, labels = _run(encoder, dataset, batch_size, device, "arrays", progress, console)
        splits["arrays"] = (feats, labels if y is not None else None)
    return _write(out, splits, source, data, arrays, config)


@torch.no_grad()
def _run(
    encoder: PretrainedEncoder,
    dataset: Dataset,
    batch_size: int,
    device: str,
    name: str,
    progress: bool,
    console: Console | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of ``dataset`` in order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    feats, labels = [], []
    bar = Progress(
        TextColumn(f"[bold]embed {name}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task(name, total=len(loader))
        for x, y in loader:
            feats.append(encoder.features(x.to(device)).float().cpu())
            labels.append(y)
            bar.update(task, advance=1)
    empty = torch.zeros((0, encoder.width))
    return (torch.cat(feats) if feats else empty), (torch.cat(labels) if labels else torch.zeros(0))


def read_arrays(path: Path, config: EncoderConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs (and labels when present) of a ``.npz`` (``x``, optional ``y``) or a ``.csv``
    (a header row; a ``label`` column, when present, holds the labels; every other column is
    a feature), reshaped to the encoder's input shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--arrays {path}: no such file")
    suffix = path.suffix.lower()
    y: np.ndarray | None = None
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive:
                    raise DataError(f"--arrays {path}: no array 'x' (found {sorted(archive)})")
                x = np.asarray(archive["x"])
                y = np.asarray(archive["y"]) if "y" in archive else None
        elif suffix == ".csv":
            x, y = _read_csv(path)
        else:
            raise DataError(f"--arrays {path}: expected a .npz or .csv file, got '{suffix}'")
    except DataError:
        raise
    except Exception as exc:  # numpy raises many kinds for a corrupt archive
        raise DataError(f"--arrays {path}: not readable ({type(exc).__name__}: {exc})") from None
    shape = tuple(config.input_shape)
    size = int(np.prod(shape))
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"--arrays {path}: no inputs")
    if int(np.prod(x.shape[1:])) != size:
        raise DataError(
            f"--arrays {path}: each input has {int(np.prod(x.shape[1:]))} values, the encoder "
            f"expects inputs of shape {shape} ({size} values)"
        )
    x = x.reshape(len(x), *shape)
    if y is not None and len(y) != len(x):
        raise DataError(f"--arrays {path}: {len(x)} inputs but {len(y)} labels")
    if config.modality == "tokens":
        if not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0):
            raise DataError(f"--arrays {path}: token ids must be integers")
        tensor = torch.from_numpy(x.astype(np.int64))
        if len(x) and (int(tensor.min()) < 0 or int(tensor.max()) >= config.vocab_size):
            raise DataError(f"--arrays {path}: token ids outside 0..{config.vocab_size - 1}")
    else:
        if not np.all(np.isfinite(x.astype(np.float64))):
            raise DataError(f"--arrays {path}: inputs hold NaN or infinite values")
        tensor = torch.from_numpy(x.astype(np.float32))
    labels = None if y is None else torch.from_numpy(np.asarray(y))
    return tensor, labels


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError(f"--arrays {path}: empty file")
    header, body = rows[0], [r for r in rows[1:] if r]
    label = header.index("label") if "label" in header else None
    try:
        values = np.array(
            [[float(v) for i, v in enumerate(r) if i != label] for r in body], dtype=np.float64
        )
        labels = None if label is None else np.array([float(r[label]) for r in body])
    except (ValueError, IndexError) as exc:
        raise DataError(f"--arrays {path}: not a table of numbers ({exc})") from None
    if labels is not None and np.all(np.mod(labels, 1) == 0):
        labels = labels.astype(np.int64)
    return values, labels


def _check_inputs(
    config: EncoderConfig, modality: str, shape: tuple[int, ...], vocab: int, name: str
) -> None:
    if (modality, shape) != (config.modality, tuple(config.input_shape)) or (
        modality == "tokens" and vocab > config.vocab_size
    ):
        raise DataError(
            f"--data {name}: {modality} inputs {shape} do not fit the encoder, which reads "
            f"{config.modality} inputs {tuple(config.input_shape)}"
        )


def _write(
    out: Path,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
    source: Path,
    data: str | None,
    arrays: Path | None,
    config: EncoderConfig,
) -> dict[str, Any]:
    feats = torch.cat([f for f, _ in splits.values()]).numpy().astype(np.float32)
    has_labels = all(y is not None for _, y in splits.values())
    bounds, start = {}, 0
    for name, (f, _) in splits.items():
        bounds[name] = [start, start + len(f)]
        start += len(f)
    labels_path = out.with_name(out.stem + ".labels.npy")
    index = {
        "source": str(source),
        "data": data,
        "arrays": None if arrays is None else str(arrays),
        "pool": config.pool,
        "features": out.name,
        "shape": list(feats.shape),
        "labels": labels_path.name if has_labels else None,
        "splits": bounds,
    }
    _save_npy(out, feats)
    if has_labels:
        labels = torch.cat([y for _, y in splits.values() if y is not None]).numpy()
        _save_npy(labels_path, labels)
    text = (json.dumps(index, indent=2) + "\n").encode()
    atomic_write(out.with_name(out.stem + ".json"), lambda f: f.write(text))
    return index


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    atomic_write(path, lambda f: f.write(data))

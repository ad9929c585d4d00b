"""Where a pretrained encoder's weights and config come from: an export folder or a run folder.

An export folder (``metamask export``) holds ``config.json`` and ``encoder.safetensors``. A run
folder holds ``spec.yaml`` (or the spec inside its checkpoint) and ``checkpoint.pt``, whose
nodes' module states carry the shared auto-encoder under a prefix (``mae.`` for the built-in
node types), found here by its tokenizer and encoder keys: no graph is built, so neither Betty
nor TorchOpt is imported. Every problem is one line (:class:`~metamask.errors.EncoderError`,
exit 2) naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metamask.checkpoint import load_checkpoint
from metamask.config import RunSpec
from metamask.data.base import DatasetInfo
from metamask.data.registry import get_dataset
from metamask.downstream.encoder import EncoderConfig, config_from_spec
from metamask.errors import EncoderError, MetamaskError
from metamask.resume import CHECKPOINT_NAME, RESULTS_NAME, run_folder_spec, saved_spec
from metamask.spec_data import pretrain_info
from metamask.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "encoder.safetensors"
CARD_NAME = "MODEL.md"


@dataclass
class EncoderSource:
    """A pretrained encoder as read from disk: its config and its weights (CPU tensors)."""

    config: EncoderConfig
    state: dict[str, torch.Tensor]  # tokenizer.*, encoder.* (decoder.* when present)
    path: Path  # the folder it came from
    spec: RunSpec | None = None  # a run folder's spec (an export has its hash only)
    results: dict[str, Any] | None = None  # a run folder's results.json, when readable


def is_export(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() or (path / WEIGHTS_NAME).is_file()


def read_source(path: Path, with_decoder: bool = True) -> EncoderSource:
    """An export folder or a run folder; EncoderError (one line) for anything else."""
    path = Path(path)
    if not path.exists():
        raise EncoderError(f"{path}: no such export or run folder")
    if not path.is_dir():
        raise EncoderError(
            f"{path}: expected an export folder (config.json, encoder.safetensors) or a run "
            "folder (checkpoint.pt), got a file"
        )
    if is_export(path):
        return read_export(path)
    if (path / CHECKPOINT_NAME).is_file():
        return read_run_folder(path, with_decoder)
    raise EncoderError(
        f"{path}: neither an export (no {CONFIG_NAME}, no {WEIGHTS_NAME}) nor a run folder "
        f"(no {CHECKPOINT_NAME})"
    )


def read_export(folder: Path) -> EncoderSource:
    """config.json + encoder.safetensors of an export folder."""
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise EncoderError(
                f"{needed}: missing; an export holds {CONFIG_NAME} and {WEIGHTS_NAME}"
            )
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(f"{config_path}: not readable JSON ({exc})") from None
    config = EncoderConfig.from_json(raw, str(config_path))
    return EncoderSource(config, read_safetensors(weights_path), folder)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file; EncoderError when it is truncated or not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
        state = load(data)
    except (OSError, SafetensorError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncoderError(
            f"{path}: not a readable safetensors file ({reason[:120]}); export it again"
        ) from None
    return dict(state)


def read_run_folder(folder: Path, with_decoder: bool = True) -> EncoderSource:
    """The encoder of the run in ``folder``: its spec, and the auto-encoder's weights from
    ``checkpoint.pt`` (checkpoints are written atomically: a running run can be read)."""
    try:
        spec, _ = run_folder_spec(folder, command="load")
        checkpoint = folder / CHECKPOINT_NAME
        state = load_checkpoint(checkpoint)
        saved_spec(state, checkpoint)  # a checkpoint without a readable spec is refused
    except MetamaskError as exc:
        raise EncoderError(str(exc)) from None
    weights = auto_encoder_state(state, checkpoint, with_decoder)
    results = _read_results(folder / RESULTS_NAME)
    metric = _eval_metric(spec)
    dtype = weights["encoder.cls_token"].dtype
    config = config_from_spec(
        spec,
        with_model_patch(spec),
        metric,
        int(state.get("step", 0)),
        with_decoder and any(k.startswith("decoder.") for k in weights),
        __version__,
        "float64" if dtype == torch.float64 else "float32",
    )
    return EncoderSource(config, weights, folder, spec, results)


def auto_encoder_state(
    state: dict[str, Any], where: Path, with_decoder: bool = True
) -> dict[str, torch.Tensor]:
    """The shared auto-encoder's ``tokenizer.*``, ``encoder.*`` (and ``decoder.*``) tensors
    out of a checkpoint's node states, under whichever node and prefix hold them."""
    nodes = state.get("nodes")
    if not isinstance(nodes, dict):
        raise EncoderError(f"{where}: the checkpoint holds no node states")
    for node in nodes.values():
        module = node.get("module") if isinstance(node, dict) else None
        if not isinstance(module, dict):
            continue
        prefixes = sorted(
            (k[: -len("encoder.cls_token")] for k in module if k.endswith("encoder.cls_token")),
            key=len,
        )
        for prefix in prefixes:
            if not any(k.startswith(prefix + "tokenizer.") for k in module):
                continue
            parts = (
                ("tokenizer.", "encoder.", "decoder.")
                if with_decoder
                else ("tokenizer.", "encoder.")
            )
            return {
                key[len(prefix) :]: value
                for key, value in module.items()
                if key.startswith(prefix) and key[len(prefix) :].startswith(parts)
            }
    raise EncoderError(f"{where}: no auto-encoder (tokenizer and encoder weights) in any node")


def _eval_metric(spec: RunSpec) -> str:
    """The probe's metric: that of eval.dataset when it names another dataset."""
    name = spec.eval.dataset
    if name is not None and name != spec.data.dataset:
        try:
            return get_dataset(name).info.metric
        except MetamaskError:
            pass
    return pretrain_info(spec).metric


def _read_results(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def with_model_patch(spec: RunSpec) -> DatasetInfo:
    """The pretraining data's facts with ``model.patch`` applied, as the model sees them."""
    info = pretrain_info(spec)
    if spec.model.patch is not None:
        info = dataclasses.replace(info, patch=tuple(spec.model.patch))
    return info

"""A run's start weights (``model.init_from``): an export, a run folder, or a ViT state dict.

``model.init_from: PATH`` loads, before the first step, the weights PATH holds into the run's
auto-encoder, whatever graph trains it (MAE, MetaMAE, MLO-MAE, ``metamae+mask``):

- a metamask export folder or run folder: ``tokenizer.*``, ``encoder.*`` and, when it holds
  them, ``decoder.*``;
- a file: a metamask ``encoder.safetensors``, or a timm / facebookresearch/mae ViT state dict
  (``.pth`` / ``.pt`` read with ``weights_only=True``, a ``{"model": ...}`` wrapper unwrapped,
  or ``.safetensors``), mapped by :func:`metamask.downstream.timm_format.from_vit`.

The tokenizer and encoder must all be there, with the model's shapes; with
``model.init_strict: true`` (the default) a missing, unexpected or misshapen key stops the run
before anything is written, in one line listing them (exit 2); ``false`` loads what fits. The
fixed positions are never loaded (metamask computes its own). What was loaded is written to
``init_from.json`` in the run folder and repeated in ``results.json``; a resumed run reads that
file back and loads nothing (its checkpoint holds the weights).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metamask import distributed
from metamask.checkpoint import write_json
from metamask.config import RunSpec
from metamask.config.origins import origin_of
from metamask.downstream.load import encoder_from_source
from metamask.downstream.sources import (
    WEIGHTS_NAME,
    auto_encoder_state,
    is_export,
    read_safetensors,
    read_source,
)
from metamask.downstream.timm_format import from_vit, looks_like_vit
from metamask.errors import EncoderError

RECORD_NAME = "init_from.json"
_POSITIONS = ("encoder.pos_embed", "decoder.pos_embed")
_SOURCE_POSITIONS = "<pos_embed>"  # a ViT's position table, carried aside to be classified


def _positions_kind(table: torch.Tensor | None, mae: nn.Module) -> str | None:
    """What a ViT's ``pos_embed`` (1, 1 + L, D) is, next to metamask's fixed table: the same
    sin-cos, facebookresearch/mae's sin-cos (its halves encode column then row, metamask's row
    then column), or something else (learned): never loaded either way."""
    if table is None:
        return None
    own = mae.encoder.pos_embed[0].detach().double().cpu()  # type: ignore[union-attr,index]
    rows = table.reshape(-1, table.shape[-1])[-own.shape[0] :].double()
    if rows.shape != own.shape:
        return f"other shape {tuple(table.shape)} (not loaded)"
    half = own.shape[1] // 2
    swapped = torch.cat([own[:, half:], own[:, :half]], dim=1)
    if torch.allclose(rows, own, atol=1e-5):
        return "fixed sin-cos, the same as metamask's"
    if len(mae.tokenizer.grid) == 2 and torch.allclose(rows, swapped, atol=1e-5):  # type: ignore[union-attr,arg-type]
        return "facebookresearch/mae's fixed sin-cos: metamask's with row and column halves swapped"
    return "learned or other: not loaded (metamask's positions are fixed sin-cos)"


def check_start_weights(spec: RunSpec, source: str = "<spec>") -> None:
    """Refuse, before any data is loaded, a ``model.init_from`` that does not exist (naming
    the spec file that set it); what the file holds is checked when it is loaded."""
    path = spec.model.init_from
    if path is not None and not Path(path).expanduser().exists():
        where = f"{origin_of(source, 'model.init_from')}: model.init_from"
        raise EncoderError(f"{where}: {path}: no such file or folder")


def start_weights(
    mae: nn.Module, spec: RunSpec, out_dir: Path | None, resuming: bool
) -> dict[str, Any] | None:
    """Load ``spec.model.init_from`` into ``mae`` (a fresh run) and record it in
    ``out_dir/init_from.json``; a resumed run loads nothing and returns that record."""
    path = spec.model.init_from
    if path is None:
        return None
    if resuming:
        record = out_dir / RECORD_NAME if out_dir is not None else None
        if record is not None and record.is_file():
            loaded: dict[str, Any] = json.loads(record.read_text())
            return loaded
        return {"path": path, "note": "resumed: the checkpoint holds the weights"}
    result = apply_start_weights(mae, Path(path).expanduser(), spec.model.init_strict)
    if out_dir is not None and distributed.is_main():
        write_json(out_dir / RECORD_NAME, result)
    return result


def apply_start_weights(mae: nn.Module, path: Path, strict: bool = True) -> dict[str, Any]:
    """Copy the weights in ``path`` into ``mae``'s parameters in place; what was loaded.

    Raises:
        EncoderError: ``path`` missing or unreadable; with ``strict``, keys that do not fit.
    """
    state, kind, skipped = read_start_weights(path)
    positions = state.pop(_SOURCE_POSITIONS, None)
    own = mae.state_dict()
    wanted = {k for k in own if k.startswith(("tokenizer.", "encoder."))}
    if any(k.startswith("decoder.") for k in state):
        wanted |= {k for k in own if k.startswith("decoder.")}
    missing = sorted(wanted - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        k for k in set(state) & set(own) if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if strict and (missing or unexpected or shapes):
        parts = []
        if missing:
            parts.append(f"missing: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected: {_few(unexpected)}")
        if shapes:
            shown = [f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})" for k in shapes]
            parts.append(f"shapes differ: {_few(shown)}")
        raise EncoderError(
            f"model.init_from {path}: the {kind} weights do not fit the model "
            f"({'; '.join(parts)}); set model.init_strict: false to load only what fits"
        )
    fits = sorted(k for k in set(state) & set(own) if k not in shapes)
    params = dict(mae.named_parameters())
    buffers = dict(mae.named_buffers())
    with torch.no_grad():
        for key in fits:
            target = params.get(key, buffers.get(key))
            if target is None:
                continue
            target.copy_(state[key].to(device=target.device, dtype=target.dtype))
    return {
        "path": str(path),
        "kind": kind,
        "sha256": _digest(path),
        "strict": strict,
        "loaded": len(fits),
        "missing": missing,
        "unexpected": unexpected,
        "shapes_differ": shapes,
        "not_loaded": skipped,
        "positions": _positions_kind(positions, mae),
    }


def read_start_weights(path: Path) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """metamask-named tensors of ``path``, the kind of source, and the keys read but left
    out on purpose (fixed positions, an MAE decoder, a classification head)."""
    if not path.exists():
        raise EncoderError(f"model.init_from {path}: no such file or folder")
    if path.is_dir():
        source = read_source(path, with_decoder=True)
        encoder_from_source(source)  # an export whose config and weights disagree is refused
        kind = "metamask export" if is_export(path) else "metamask run"
        state = dict(source.state)
    elif path.suffix == ".safetensors":
        state, kind = read_safetensors(path), "safetensors"
    else:
        state, kind = _read_torch(path), "state dict"
    skipped = [k for k in _POSITIONS if state.pop(k, None) is not None]
    if looks_like_vit(state):
        table = state.get("pos_embed")
        state, more = from_vit(state)
        if table is not None:
            state[_SOURCE_POSITIONS] = table  # not a weight: classified, never loaded
        return state, "timm / facebookresearch/mae ViT", skipped + more
    if any(k.endswith("encoder.cls_token") and k != "encoder.cls_token" for k in state):
        state = auto_encoder_state({"nodes": {"file": {"module": state}}}, path)
        skipped += [k for k in _POSITIONS if state.pop(k, None) is not None]
    if kind in ("safetensors", "state dict") and path.name == WEIGHTS_NAME:
        kind = "metamask export"
    return state, kind, skipped


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = first if "weights_only" not in first and len(first) < 160 else type(exc).__name__
        raise EncoderError(
            f"model.init_from {path}: not a readable state dict ({reason})"
        ) from None
    for wrapper in ("model", "state_dict", "module"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise EncoderError(
            f"model.init_from {path}: expected a state dict (names -> tensors), or an export "
            "or run folder"
        )
    return dict(data)


def _digest(path: Path) -> str | None:
    """sha256 of the file the weights came from (an export's or a run's weights file)."""
    for file in (path, path / WEIGHTS_NAME, path / "checkpoint.pt"):
        if file.is_file():
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()
    return None


def _few(items: list[str], most: int = 5) -> str:
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more

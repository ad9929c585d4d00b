"""``metamask export RUN_DIR --out DIR``: a run's encoder as a folder anyone can load.

The folder holds ``encoder.safetensors`` (tokenizer, positions, encoder blocks; the decoder
with ``--with-decoder``; never a masker or an optimizer), ``config.json``
(:class:`~metamask.downstream.encoder.EncoderConfig`) and ``MODEL.md``
(:mod:`metamask.downstream.card`); with ``--format timm`` (images only) also
``timm_model.safetensors`` under timm's key names, whose ``create_model`` call config.json
and MODEL.md give. It is written into a temporary folder beside DIR and renamed into place
at the end, so DIR is whole or absent. The run folder is read under its lock
(:mod:`metamask.folder_lock`) and nothing in it changes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from metamask.checkpoint import atomic_write
from metamask.downstream.card import model_card
from metamask.downstream.encoder import EncoderConfig
from metamask.downstream.load import encoder_from_source
from metamask.downstream.sources import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_export,
    read_run_folder,
)
from metamask.downstream.timm_format import TIMM_MODEL, timm_call, timm_kwargs, to_timm
from metamask.errors import EncoderError, OutputError
from metamask.folder_lock import run_folder_lock
from metamask.models.posembed import sincos_grid, with_cls_row
from metamask.resume import CHECKPOINT_NAME

TIMM_WEIGHTS_NAME = "timm_model.safetensors"
Format = Literal["native", "timm"]


def export_run(
    run_dir: Path, out: Path, with_decoder: bool = False, fmt: Format = "native"
) -> Path:
    """Export the encoder of the run in ``run_dir`` into the new folder ``out``.

    Raises:
        EncoderError: ``run_dir`` is no run folder with a checkpoint, or its weights are
            unreadable or do not fit its spec; ``--format timm`` of a non-image encoder.
        OutputError: ``out`` exists and is not empty, or cannot be written.
    """
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise EncoderError(f"export {run_dir}: no such run folder")
    if is_export(run_dir):
        raise EncoderError(f"export {run_dir}: this is an export already, not a run folder")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise EncoderError(
            f"export {run_dir}: no {CHECKPOINT_NAME}: not a run folder, or the run stopped "
            "before its first checkpoint"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"--out {out}: already exists; choose a new folder")
    with run_folder_lock(run_dir):
        source = read_run_folder(run_dir, with_decoder)
    config = source.config
    if fmt == "timm" and config.modality != "image2d":
        raise EncoderError(
            f"--format timm: the encoder of {run_dir} reads {config.modality} inputs; timm's "
            "models take images only (no timm model tokenizes a time series, a table or DNA); "
            "export it in the native format"
        )
    model = encoder_from_source(source)  # the weights must fit the config before writing
    state = {k: v.contiguous() for k, v in source.state.items()}
    state["encoder.pos_embed"] = model.encoder.pos_embed.detach().cpu().contiguous()
    if with_decoder and config.decoder is not None:
        width = int(config.decoder["width"])
        pos = with_cls_row(sincos_grid(width, model.tokenizer.grid, model.dtype))[None]
        state["decoder.pos_embed"] = pos.contiguous()
    files: dict[str, bytes] = {WEIGHTS_NAME: _safetensors(state, config)}
    body = config.to_json()
    call = None
    if fmt == "timm":
        enc_state = {k: v for k, v in state.items() if k.startswith(("tokenizer.", "encoder."))}
        files[TIMM_WEIGHTS_NAME] = _safetensors(to_timm(enc_state), config)
        call = timm_call(config)
        body["timm"] = {
            "model_name": TIMM_MODEL,
            "kwargs": timm_kwargs(config),
            "weights": TIMM_WEIGHTS_NAME,
        }
    files[CONFIG_NAME] = (json.dumps(body, indent=2) + "\n").encode()
    files[CARD_NAME] = model_card(config, source.spec, source.results, call, str(out)).encode()
    _write_folder(out, files)
    return out


def _safetensors(state: dict, config: EncoderConfig) -> bytes:
    from safetensors.torch import save

    metadata = {"format": "pt", "metamask_version": config.metamask_version}
    return bytes(save(state, metadata=metadata))


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a temporary folder beside ``out``, then rename it to ``out``."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for name, data in files.items():
            atomic_write(tmp / name, lambda f, data=data: f.write(data))  # type: ignore[misc]
        if out.is_dir():
            out.rmdir()  # an empty folder given as --out: replaced whole
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

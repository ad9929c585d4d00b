"""``metamask.load_encoder(PATH)``: a pretrained encoder as a plain ``torch.nn.Module``.

PATH is an export folder (``metamask export``) or a run folder. The module
(:class:`~metamask.downstream.encoder.PretrainedEncoder`) has ``features(x)``, pooled as the
linear probe pools, and ``tokens(x)``; it is built from the config, then its weights are
checked key by key and shape by shape against the file before they are loaded. Nothing here
imports Betty, TorchOpt or the training stack (``tests/downstream/test_load.py`` checks it in
a fresh process).
"""

from __future__ import annotations

from pathlib import Path

import torch

from metamask.downstream.encoder import PretrainedEncoder
from metamask.downstream.sources import EncoderSource, read_source
from metamask.errors import EncoderError


def load_encoder(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> PretrainedEncoder:
    """The encoder in ``path`` (an export or a run folder) on ``device``, in eval mode.

    ``dtype``: the parameters' dtype (default: the one it was trained in); float64 computes
    the positions anew in float64, as a float64 run does.

    Raises:
        EncoderError: a missing or corrupt file, or a config whose shapes do not match the
            weights (one line, exit 2 through the command line).
    """
    source = read_source(Path(path), with_decoder=False)
    return encoder_from_source(source, device, dtype)


def encoder_from_source(
    source: EncoderSource,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> PretrainedEncoder:
    """Build the module of ``source.config`` and load ``source.state`` into it, checked."""
    model = PretrainedEncoder(source.config)
    state = {k: v for k, v in source.state.items() if k.startswith(("tokenizer.", "encoder."))}
    positions = state.pop("encoder.pos_embed", None)
    check_fits(model, state, source.path)
    if positions is not None and (
        positions.shape != model.encoder.pos_embed.shape
        or not torch.allclose(positions.double(), model.encoder.pos_embed.double(), atol=1e-6)
    ):
        raise EncoderError(
            f"{source.path}: encoder.pos_embed does not match the fixed sin-cos positions of "
            f"the config's grid {tuple(model.tokenizer.grid)}"
        )
    model.load_state_dict(state, strict=True)
    if dtype is not None and dtype != model.dtype:
        model.to_dtype(dtype)
    return model.to(device).eval()


def check_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """EncoderError naming the keys missing, unexpected, or of another shape than the
    config's model has."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} (config: {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shapes differ: {_few(shapes)}")
        if missing:
            parts.append(f"missing: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected: {_few(unexpected)}")
        raise EncoderError(f"{where}: the weights do not fit the config ({'; '.join(parts)})")


def _few(items: list[str], most: int = 4) -> str:
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more

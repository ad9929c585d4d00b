"""metamask: meta-learned masked auto-encoders (MetaMAE, MLO-MAE) as Betty graphs.

``metamask.load_encoder(PATH)`` loads a pretrained encoder from an export or a run folder
(:mod:`metamask.downstream.load`); it is imported on first use, so ``import metamask`` stays
cheap and importing it brings in neither Betty nor TorchOpt.
"""

from typing import Any

from metamask.version import __version__

__all__ = ["__version__", "load_encoder"]


def __getattr__(name: str) -> Any:
    if name == "load_encoder":
        from metamask.downstream.load import load_encoder

        return load_encoder
    raise AttributeError(f"module 'metamask' has no attribute {name!r}")

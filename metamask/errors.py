"""Errors a user can cause, each rendered by the CLI as one line and an exit code.

Anything raised as a :class:`MetamaskError` is the user's input or environment being wrong (a
spec, a data file, a checkpoint, a full disk) or a run stopping on purpose; anything else is a
bug in metamask and keeps its traceback. Exit codes: 2 for input and output errors, 3 for a
non-finite loss or gradient (and an fp16 loss scale below its floor), 128 + the signal number
for SIGINT (130) and SIGTERM (143).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MetamaskError(Exception):
    """Base class: a problem with the user's input, reported in one line."""

    exit_code = 2


class ConfigError(MetamaskError):
    """A spec file or override is malformed, has an unknown key, or a value of the wrong type."""


class DataError(MetamaskError):
    """A dataset is unknown, missing, corrupt, or its shape does not fit the model."""


class GraphError(MetamaskError):
    """An optimization graph is invalid: a cycle, an unknown node, a node without data..."""


class CheckpointError(MetamaskError):
    """A checkpoint is missing, corrupt, or belongs to a different spec."""


class EncoderError(MetamaskError):
    """An encoder export, a run folder's weights or a start-weights file is missing, corrupt,
    or does not fit the model (metamask.downstream)."""


class OutputError(MetamaskError):
    """The run folder cannot be written: the disk is full, a file is too large, no permission."""


class NonFiniteError(MetamaskError):
    """A loss or gradient became NaN/inf; names the node, the step and the loss term."""

    exit_code = 3


class LossScaleError(MetamaskError):
    """fp16: the gradients overflowed at every loss scale down to the floor
    (:data:`metamask.precision.MIN_LOSS_SCALE`); names the node and the step. Exit code 3, as
    a non-finite loss; not a :class:`NonFiniteError`, so ``train.on_nonfinite: skip`` does not
    drop it (every batch would be dropped)."""

    exit_code = 3


class Interrupted(MetamaskError):
    """Training stopped on SIGINT or SIGTERM (after checkpointing, on the first signal)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class SpecDeprecation(FutureWarning):
    """A spec written in an older form that still works (e.g. ``hypergradient:`` on an
    ``adapt`` node, now ``latent_solver:``); the command line prints it as one line."""

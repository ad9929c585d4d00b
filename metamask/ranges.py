"""Declarative value ranges for spec fields: ``batch_size: Count = 32`` instead of a bare ``int``.

A range rides on the field's type as ``typing.Annotated`` metadata, so it sits next to the
field in the schema (``metamask.config.schema``, node-type and estimator options, a user's
``data.arrays``) and :func:`metamask.config.parse.parse_dataclass` checks it where the spec is
read: a batch size of 0 or a mask ratio of 1.5 is a one-line ``ConfigError`` naming the file,
the dotted key, the value and the range, before any folder is made or any data is loaded.

This module sits on the lowest floor (it imports nothing of metamask), so that every package
that declares options can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any


@dataclass(frozen=True)
class Range:
    """A numeric interval; ``low`` / ``high`` None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is refused
    high_open: bool = False  # True: ``high`` itself is refused

    def contains(self, value: float) -> bool:
        """Whether ``value`` (finite) lies in the range; NaN and infinities never do."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )

    def describe(self) -> str:
        """``>= 1``, ``> 0``, ``in (0, 1)``, ``in [0, 1)`` ..."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "finite"


def range_of(metadata: tuple[Any, ...]) -> Range | None:
    """The :class:`Range` among an ``Annotated`` type's metadata, if any."""
    return next((m for m in metadata if isinstance(m, Range)), None)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


# -- the ranges a spec uses ---------------------------------------------------------------------

#: an integer >= 1: batch sizes, steps, epochs, widths, depths, heads, iterations, unroll_steps
Count = Annotated[int, Range(1)]
#: an integer >= 0: warm-up steps, checkpoint_every (0: at the end), threads (0: torch's default)
NonNegativeInt = Annotated[int, Range(0)]
#: a finite number > 0: learning rates, temperatures, step sizes, MLP ratios
Positive = Annotated[float, Range(0, low_open=True)]
#: a finite number >= 0: weight decays, loss weights, tolerances, ridges
NonNegative = Annotated[float, Range(0)]
#: a share strictly between 0 and 1: mask ratio, held-out fractions
Ratio = Annotated[float, Range(0, 1, low_open=True, high_open=True)]
#: a probability in [0, 1]
Probability = Annotated[float, Range(0, 1)]
#: a rate in [0, 1): dropout (1 would drop everything), momentum, Adam betas
Rate = Annotated[float, Range(0, 1, high_open=True)]
#: a seed numpy accepts: an integer in [0, 2**32 - 1]
Seed = Annotated[int, Range(0, 2**32 - 1)]

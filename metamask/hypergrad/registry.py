"""The registry of hypergradient estimators, selectable per node by name.

An estimator answers one question for an edge upper -> lower of the graph: given
``v = dL_upper / d(lower params)``, what is the indirect gradient ``(d lower* / d upper)^T v``
with respect to the upper node's parameters? Estimators are registered with their own options
dataclass, so ``hypergradient: {type: cg, iterations: 10}`` in a spec is validated by the
estimator that owns the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from metamask.config import EstimatorSpec, parse_dataclass
from metamask.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from metamask.nodes.base import Node


class EstimatorFn(Protocol):
    def __call__(
        self, vector: Sequence[torch.Tensor], lower: Node, upper: Node, options: Any
    ) -> list[torch.Tensor]:
        """Indirect gradient w.r.t. ``upper.trainable_parameters()`` from ``v`` on ``lower``'s."""
        ...


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: its function, its options type and what it is."""

    name: str
    fn: EstimatorFn
    options_type: type
    description: str = ""


ESTIMATORS: dict[str, Estimator] = {}


@dataclass(frozen=True)
class NoOptions:
    """This estimator takes no options."""


def register_estimator(
    name: str, options_type: type = NoOptions, description: str = ""
) -> Callable[[EstimatorFn], EstimatorFn]:
    """Decorator: register ``fn(vector, lower, upper, options)`` as estimator ``name``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ScaledOptions:
        ...     scale: float = 1.0
        >>> @register_estimator("my_scaled_identity", ScaledOptions, "-scale * mixed partials")
        ... def my_scaled_identity(vector, lower, upper, options):
        ...     ...
    """

    def wrap(fn: EstimatorFn) -> EstimatorFn:
        if name in ESTIMATORS:
            raise ValueError(f"estimator {name!r} is registered twice")
        ESTIMATORS[name] = Estimator(name, fn, options_type, description)
        return fn

    return wrap


def get_estimator(name: str) -> Estimator:
    """The registered estimator ``name``; ConfigError naming the choices when unknown."""
    _ensure_loaded()
    choices = list(ESTIMATORS)
    if name not in choices:
        raise ConfigError(
            f"unknown hypergradient estimator {name!r}{did_you_mean(name, choices)}; "
            f"expected one of {sorted(choices)}"
        )
    return ESTIMATORS[name]


def estimator_options(spec: EstimatorSpec, source: str = "<spec>", where: str = "") -> Any:
    """Validate ``spec.options`` against the estimator's own options dataclass."""
    estimator = get_estimator(spec.type)
    return parse_dataclass(estimator.options_type, dict(spec.options), source, where)


def estimator_names() -> list[str]:
    _ensure_loaded()
    return sorted(ESTIMATORS)


@register_estimator("first_order", description="ignore the lower level's dependence: zero")
def first_order(
    vector: Sequence[torch.Tensor], lower: Node, upper: Node, options: Any
) -> list[torch.Tensor]:
    return [torch.zeros_like(p) for p in upper.trainable_parameters()]


def _ensure_loaded() -> None:
    """Import the modules that register the built-in estimators (none beyond this one yet)."""

"""metamask.ranges: the intervals spec fields declare, and how the parser applies them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from metamask.config.parse import parse_dataclass
from metamask.errors import ConfigError
from metamask.ranges import Count, Positive, Probability, Range, Rate, Ratio


@pytest.mark.parametrize(
    ("bounds", "inside", "outside", "text"),
    [
        (Range(1), [1, 7], [0, -3], ">= 1"),
        (Range(0, low_open=True), [1e-12, 3.5], [0, -1], "> 0"),
        (Range(0, 1, low_open=True, high_open=True), [0.5], [0, 1], "in (0, 1)"),
        (Range(0, 1), [0, 1], [-0.1, 1.1], "in [0, 1]"),
        (Range(0, 1, high_open=True), [0, 0.99], [1], "in [0, 1)"),
        (Range(high=2.5), [-4, 2.5], [2.6], "<= 2.5"),
    ],
)
def test_a_range_holds_its_values_and_says_so(
    bounds: Range, inside: list[float], outside: list[float], text: str
) -> None:
    assert all(bounds.contains(v) for v in inside)
    assert not any(bounds.contains(v) for v in outside)
    assert not bounds.contains(math.nan) and not bounds.contains(math.inf)
    assert bounds.describe() == text


@dataclass(frozen=True)
class _Options:
    steps: Count = 1
    lr: Positive | None = None  # a range inside an optional
    betas: tuple[Rate, Rate] = (0.9, 0.99)  # ranges inside a tuple
    keep: Probability = 1.0
    share: Ratio = 0.5


def test_the_parser_checks_ranges_inside_optionals_and_tuples_and_names_the_key() -> None:
    assert parse_dataclass(_Options, {"lr": 1, "betas": [0, 0.5], "keep": 0}).lr == 1.0
    for data, message in (
        ({"steps": 0}, "o.yaml: steps: expected an integer >= 1, got 0"),
        ({"lr": -1e-3}, "o.yaml: lr: expected a number > 0, got -0.001"),
        ({"lr": "1e-3x"}, "o.yaml: lr: expected a number, got '1e-3x'"),
        ({"betas": [0.9, 1.0]}, "o.yaml: betas[1]: expected a number in [0, 1), got 1.0"),
        ({"keep": 1.5}, "o.yaml: keep: expected a number in [0, 1], got 1.5"),
        ({"share": 0}, "o.yaml: share: expected a number in (0, 1), got 0"),
        ({"steps": 2.0}, "o.yaml: steps: expected an integer, got 2.0"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_dataclass(_Options, data, "o.yaml")
        assert str(caught.value) == message

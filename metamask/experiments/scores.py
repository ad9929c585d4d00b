"""The scores a comparison reads from a run's results.json, all through :func:`run_scores`.

``probe`` is the linear probe's test metric, ``finetune`` full fine-tuning's (when the spec
asks for it), and ``audit.<name>`` each number of an ``audit`` summary where a run has one
(absent otherwise). Everything else in a comparison reads scores from here only, so a change
of results.json's layout is absorbed in this one file.
"""

from __future__ import annotations

import math
from typing import Any

#: scores that are fractions of 1 (accuracy, F1, ...): shown ×100, in points
FRACTIONS = ("probe", "finetune")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (absent, not a number, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_scores(results: dict[str, Any]) -> dict[str, float]:
    """``{score name: value}`` of one run's results.json (names: module docstring)."""
    scores: dict[str, float] = {}
    probe = _number(results.get("test"))
    if probe is not None:
        scores["probe"] = probe
    finetune = results.get("finetune")
    if isinstance(finetune, dict) and (tuned := _number(finetune.get("test"))) is not None:
        scores["finetune"] = tuned
    audit = results.get("audit")
    if isinstance(audit, dict):
        summary = audit.get("summary", audit)
        if isinstance(summary, dict):
            for key, value in summary.items():
                if (number := _number(value)) is not None:
                    scores[f"audit.{key}"] = number
    return scores


def run_metric(results: dict[str, Any]) -> str | None:
    """The probe's metric name (``accuracy``, ``weighted_f1``, ...), when the run has one."""
    metric = results.get("metric")
    return metric if isinstance(metric, str) else None


def scale_and_unit(score: str) -> tuple[float, str]:
    """How a score is shown: fractions ×100 in ``points``, anything else as it is."""
    return (100.0, "points") if score in FRACTIONS else (1.0, "")


def train_seconds(results: dict[str, Any]) -> float | None:
    """The run's training wall time in seconds (every leg of a resumed run)."""
    train = results.get("train")
    return _number(train.get("seconds")) if isinstance(train, dict) else None


def seconds_per_step(results: dict[str, Any]) -> float | None:
    """The run's median seconds per engine step (0 when it trained nothing here: None)."""
    train = results.get("train")
    value = _number(train.get("seconds_per_step")) if isinstance(train, dict) else None
    return value if value else None

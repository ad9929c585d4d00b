"""Comparisons of methods over seeds (``metamask compare`` and the scripts in ``examples/``):
plan arms x seeds, read finished runs back or train them, and tabulate with paired intervals.

One job per module: :mod:`.finished` (a run read back by its resolved spec, or trained),
:mod:`.planning` (arms, ``--vary``, seeds, folders, validation), :mod:`.running` (side by side,
progress), :mod:`.scores` (what is read of results.json), :mod:`.stats` (mean ± std, paired t
intervals, wins, the sentence), :mod:`.tables` (table.json / table.md), :mod:`.plot`
(compare.png), :mod:`.compare` (all of it in one call).
"""

from metamask.experiments.finished import (
    finished_or_run,
    finished_results,
    spec_as_json,
    spec_digest,
)
from metamask.experiments.stats import mean_std
from metamask.experiments.tables import write_text

__all__ = [
    "finished_or_run",
    "finished_results",
    "mean_std",
    "spec_as_json",
    "spec_digest",
    "write_text",
]

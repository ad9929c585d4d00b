"""metamask.experiments.finished: a finished run is read back only for the very spec asked for."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from metamask.checkpoint import write_json
from metamask.experiments import finished_results, mean_std, spec_as_json, write_text
from tests.helpers import tiny_spec


def test_results_written_from_the_same_spec_are_read_back(tmp_path: Path) -> None:
    spec = tiny_spec()
    write_json(tmp_path / "results.json", {"spec": spec_as_json(spec), "probe": {"test": 0.5}})
    assert finished_results(tmp_path, spec) == {"spec": spec_as_json(spec), "probe": {"test": 0.5}}


def test_another_spec_absent_or_corrupt_results_count_as_not_finished(tmp_path: Path) -> None:
    spec = tiny_spec()
    assert finished_results(tmp_path, spec) is None  # absent
    write_json(tmp_path / "results.json", {"spec": spec_as_json(spec)})
    longer = dataclasses.replace(spec, seed=spec.seed + 1)
    assert finished_results(tmp_path, longer) is None  # written by another spec
    (tmp_path / "results.json").write_text("{not json")
    assert finished_results(tmp_path, spec) is None  # unreadable


def test_a_named_file_other_than_results_json(tmp_path: Path) -> None:
    spec = tiny_spec()
    write_json(tmp_path / "concentration.json", {"spec": spec_as_json(spec), "auroc": 0.7})
    assert finished_results(tmp_path, spec) is None
    assert finished_results(tmp_path, spec, "concentration.json")["auroc"] == 0.7


def test_mean_and_sample_std_over_seeds() -> None:
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    )
    assert mean_std([0.3]) == (0.3, 0.0)


def test_write_text_replaces_a_table_whole(tmp_path: Path) -> None:
    path = tmp_path / "table.md"
    write_text(path, "| a |\n")
    write_text(path, "| b |\n| c |\n")
    assert path.read_text() == "| b |\n| c |\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]  # no temporary left

"""docs/datasets.md stays true: its snippet runs, its tables match the registry."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from metamask.data import all_datasets
from metamask.data.registry import DATASETS
from metamask.data.user_arrays import ArraySource

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def _table_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) > 5:
            rows[cells[0].strip("`")] = cells
    return rows


def test_bring_your_own_data_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = _blocks("python")
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, str(DOC), "exec"), {})
    finally:
        DATASETS.pop("my_sensors", None)
    assert (tmp_path / "sensors.npz").is_file()


def test_yaml_snippet_uses_only_array_source_fields() -> None:
    spec = yaml.safe_load(next(b for b in _blocks("yaml") if "arrays:" in b))
    fields = {f.name for f in dataclasses.fields(ArraySource)}
    assert set(spec["data"]["arrays"]) <= fields


def test_every_dataset_is_in_a_table_with_its_registered_facts() -> None:
    rows = _table_rows()
    for name, entry in all_datasets().items():
        info = entry.info
        key = name
        if name.startswith("fluent-speech-"):
            key = "fluent-speech-{loc,obj,act}"
        assert key in rows, f"{name} missing from docs/datasets.md"
        text = " ".join(rows[key])
        assert str(info.input_shape) in text and str(info.patch) in text, name
        if info.labelled and not name.startswith("fluent"):
            assert info.metric in text, name
            classes = "regression" if info.num_classes == 0 else str(info.num_classes)
            assert classes in text, name

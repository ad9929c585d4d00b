"""docs/graphs.md and examples/custom_graph.py stay true: their code runs as written."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "graphs.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("index", [0, 1])
def test_graphs_doc_snippets_train(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _python_blocks()
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    exec(compile(blocks[index], str(DOC), "exec"), namespace)
    summary = namespace["summary"]
    assert summary.steps == 4  # type: ignore[attr-defined]
    numbers = [float(v) for v in capsys.readouterr().out.split()]
    assert numbers and all(n == n for n in numbers)  # printed, finite
    if index == 1:
        assert 0.3 <= numbers[0] <= 0.7  # the learned share masked stays within its bounds


def test_graphs_doc_pictures_exist() -> None:
    for picture in re.findall(r"\]\((img/[^)]+\.png)\)", DOC.read_text()):
        assert (DOC.parent / picture).is_file(), picture


def test_custom_graph_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ROOT / "examples" / "custom_graph.py"
    assert len(script.read_text().splitlines()) <= 65
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "4"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "held-out MSE of the head" in out and "4 steps" in out


def test_show_png_draws_the_graph_by_levels(tmp_path: Path) -> None:
    from metamask.cli import main
    from metamask.config import load_spec
    from metamask.topology import node_levels

    spec_file = ROOT / "problems" / "metamae+mask-wine.yaml"
    levels = node_levels(load_spec(spec_file).graph)
    assert levels == {"adapt": 0, "reconstruct": 1, "head": 2, "mask": 3}
    picture = tmp_path / "graph.png"
    assert main(["show", str(spec_file), "--png", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

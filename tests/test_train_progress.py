"""The progress bar at 80 columns in a log file: nothing cut, every node's loss named whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from helpers import mlo_graph, mlo_spec, tiny_bundle
from rich.console import Console

from metamask.run import run_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_progress_in_a_log_file_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle("signal1d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    log = io.StringIO()  # not a terminal: rich prints the final state once
    console = Console(width=80, file=log)
    spec = mlo_spec(mlo_graph(), train={"steps": 2}, eval={"enabled": False})
    run_spec(spec, None, progress=True, console=console)
    text = log.getvalue()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    assert "2/2" in text and "it/s" in text
    for node in ("pretrain", "head", "mask"):
        assert f"{node}=" in text, node

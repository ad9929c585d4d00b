"""river's Shuttle: read from a fixture in the real format, from the installed wheel, and a
missing wheel or file is one line, exit 2, through the command line."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import fixtures_data as fx
import numpy as np
import pytest
import torch

from metamask.cli import main
from metamask.data import LoadOptions, load_dataset
from metamask.data.embedded import wheels
from metamask.data.embedded.river_sets import SHUTTLE_FILE, shuttle_arrays
from metamask.errors import DataError

REPO = Path(__file__).resolve().parents[3]
SPEC = str(REPO / "problems/mae-shuttle.yaml")
TINY = ["--set", "model.backbone=tiny", "--set", "train.threads=1", "--quiet"]
needs_river = pytest.mark.skipif(
    wheels.missing_package_file("river", SHUTTLE_FILE) is not None,
    reason="river (scripts/install.sh) is not installed",
)


def test_a_fixture_in_the_real_format_reads_as_rows_and_labels(tmp_path: Path) -> None:
    rows = fx.write_shuttle(tmp_path / "shuttle.csv.gz", n=40, anomalies=4)
    x, y = shuttle_arrays(tmp_path / "shuttle.csv.gz")
    assert x.shape == (40, 1, 9) and x.dtype == np.float32 and y.dtype == np.int64
    assert x[7, 0].tolist() == rows[7][:9] == [71, 72, 73, 74, 75, 76, 77, 78, 79]
    assert y.tolist() == [1] * 4 + [0] * 36


def test_labels_other_than_0_and_1_are_refused(tmp_path: Path) -> None:
    fx.write_shuttle(tmp_path / "a.csv.gz", n=10, anomalies=0)
    with pytest.raises(DataError, match=r"a\.csv\.gz: column 'anomaly' holds one class only"):
        shuttle_arrays(tmp_path / "a.csv.gz")
    path = tmp_path / "b.csv.gz"
    fx.write_shuttle(path, n=10)
    text = gzip.decompress(path.read_bytes()).decode().replace(",1\n", ",4\n", 1)
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(DataError, match="column 'anomaly' holds 4; expected 0 or 1"):
        shuttle_arrays(path)


@needs_river
def test_the_real_set_has_the_documented_size_and_first_row() -> None:
    x, y = shuttle_arrays()
    assert x.shape == (49097, 1, 9)
    assert np.bincount(y).tolist() == [45586, 3511]  # river's docstring: 3,511 anomalies
    assert x[0, 0].tolist() == [50, 21, 77, 0, 28, 0, 27, 48, 22] and y[0] == 1


@needs_river
def test_the_real_bundle_is_stratified_and_standardised_on_training_rows() -> None:
    bundle = load_dataset("shuttle", LoadOptions(seed=0))
    sizes = [len(bundle.train), len(bundle.val), len(bundle.test)]
    assert sum(sizes) == 49097 and sizes[2] == 9819  # 20 % held out, per class
    for split in (bundle.train, bundle.val, bundle.test):
        assert abs(float(split.y.float().mean()) - 3511 / 49097) < 0.002
    assert torch.allclose(bundle.train.x.mean(dim=0), torch.zeros(1, 9), atol=1e-4)
    assert torch.allclose(bundle.train.x.std(dim=0), torch.ones(1, 9), atol=1e-3)


def _without_river(monkeypatch: pytest.MonkeyPatch) -> None:
    real = wheels.package_dir
    monkeypatch.setattr(wheels, "package_dir", lambda p: None if p == "river" else real(p))


def test_a_missing_wheel_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_river(monkeypatch)
    code = main(["run", SPEC, *TINY, "--out", str(tmp_path / "run")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert (
        "dataset shuttle: package 'river' is not installed (pip install --no-deps river==0.26.1)"
        in lines[0]
    )
    assert not (tmp_path / "run").exists()


def test_a_wheel_without_the_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = wheels.package_dir
    shadow = tmp_path / "river"
    monkeypatch.setattr(wheels, "package_dir", lambda p: shadow if p == "river" else real(p))
    code = main(["run", SPEC, *TINY, "--out", str(tmp_path / "run")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    expected = f"file {shadow / 'datasets/shuttle.csv.gz'} is missing from the installed 'river'"
    assert expected in lines[0]
    assert not (tmp_path / "run").exists()


def test_datasets_lists_shuttle_as_unavailable_without_the_wheel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_river(monkeypatch)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["datasets"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("shuttle"))
    assert "embedded" not in row and " no " in row, row


@pytest.mark.slow
def test_a_wheel_without_the_file_is_one_line_on_the_real_command_line(tmp_path: Path) -> None:
    """As a user meets it: a 'river' package first on the path, without the data file."""
    shadow = tmp_path / "site" / "river"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "metamask", "run", SPEC, *TINY, "--out", str(tmp_path / "run")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    expected = f"file {shadow / 'datasets/shuttle.csv.gz'} is missing from the installed 'river'"
    assert expected in lines[0]
    assert not (tmp_path / "run").exists()

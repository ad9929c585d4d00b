"""What the command line prints for people: whole names at 80 columns in a pipe, --version,
--debug anywhere, and cheap errors that do not pay for importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from metamask import __version__
from metamask.data.registry import all_datasets

ROOT = Path(__file__).resolve().parents[1]


def _metamask(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`metamask ARGS` with stdout a pipe (as `| cat` or a log file) and COLUMNS set."""
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "metamask", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def test_datasets_at_80_columns_in_a_pipe_shows_every_name_whole() -> None:
    proc = _metamask("datasets")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "…" not in proc.stdout  # nothing is cut with an ellipsis
    assert all(len(line.rstrip()) <= 80 for line in lines), max(lines, key=len)
    first_words = {line.split()[0] for line in lines if line.strip()}
    for name, entry in all_datasets().items():
        assert name in first_words, name  # the name whole, at the start of its row
        assert entry.info.metric in proc.stdout
    # the reason a folder dataset is unavailable is one note, whole, below the tables
    assert "(1) needs --data-root" in proc.stdout
    assert proc.stdout.count("needs --data-root") == 1


def test_version() -> None:
    proc = _metamask("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"metamask {__version__}"


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    plain = _metamask("run", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().endswith(f"{missing}: spec file not found")
    for args in (("run", missing, "--debug"), ("--debug", "run", missing)):
        proc = _metamask(*args)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, args
        assert "ConfigError" in proc.stderr


def test_a_missing_spec_is_refused_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from metamask.cli import main\n"
        f"codes = [main([cmd, {str(tmp_path / 'nope.yaml')!r}]) for cmd in ('run', 'show')]\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'betty', 'timm') if m in sys.modules]\n"
        "print(codes, heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2, 2] []"
    assert proc.stderr.count("spec file not found") == 2

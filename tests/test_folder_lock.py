"""A run folder has one writer: a second run into it is refused while the first is alive."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import TINY, run, start, wait_for_step

from metamask.errors import OutputError
from metamask.folder_lock import LOCK_NAME, run_folder_lock

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

METAMAE = "problems/metamae-basicmotions.yaml"


def test_a_held_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with run_folder_lock(folder):
        assert (folder / LOCK_NAME).read_text().strip().isdigit()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from metamask.folder_lock import "
                "run_folder_lock\nwith run_folder_lock(Path(sys.argv[1])): pass",
                str(folder),
            ],
            capture_output=True,
            text=True,
        )
        assert child.returncode != 0 and "being written by another metamask process" in child.stderr
        refused = pytest.raises(OutputError, match=r"run is being written .* choose another --out")
        with refused, run_folder_lock(folder):
            pass
    assert not folder.exists()  # created here, nothing written: removed
    with run_folder_lock(folder):  # released: the next run takes it
        (folder / "metrics.jsonl").write_text("")
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.jsonl"]


def test_a_killed_run_leaves_its_folder_free(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    args = [METAMAE, *TINY, "--set", "train.steps=1000", "--set", "train.checkpoint_every=2"]
    victim = start("run", *args, "--out", str(folder))
    wait_for_step(victim, folder / "metrics.jsonl", 3)
    second = run("run", *args, "--resume", str(folder))
    assert second.returncode == 2
    assert "is being written by another metamask process" in second.stderr
    assert f"pid {victim.pid}" in second.stderr
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert (folder / LOCK_NAME).exists()  # SIGKILL left the file, but not the lock
    with run_folder_lock(folder):
        pass

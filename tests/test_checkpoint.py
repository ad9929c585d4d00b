"""Atomic writes and safe checkpoint loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from metamask.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from metamask.errors import CheckpointError
from metamask.seeding import rng_state, set_rng_state


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"format": 1, "x": torch.ones(3)})

    def broken(handle):
        handle.write(b"partial")
        raise RuntimeError("disk died")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temp file left


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"format": 1, "x": torch.ones(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable metamask checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable metamask checkpoint"):
        load_checkpoint(path)
    torch.save({"weights": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match="no 'format' entry"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_never_unpickles_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"format": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_rng_state_round_trips(tmp_path: Path) -> None:
    import random

    import numpy as np

    path = tmp_path / "rng.pt"
    save_checkpoint(path, {"format": 1, "rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_every_file_a_run_writes_has_the_mode_of_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One policy: 0666 less the umask, for atomic writes (mkstemp makes 0600) and for
    metrics.jsonl (opened normally) alike; 027 here, so neither 0600 nor 0644 passes."""
    from helpers import tiny_bundle, tiny_spec

    from metamask.checkpoint import new_file_mode
    from metamask.run import run_spec

    bundle = tiny_bundle("signal1d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    previous = os.umask(0o027)
    try:
        assert new_file_mode() == 0o640
        atomic_write(tmp_path / "one.bin", lambda f: f.write(b"x"))
        spec = tiny_spec(train={"steps": 2}, eval={"enabled": False})
        run_spec(spec, tmp_path / "run", progress=False)
    finally:
        os.umask(previous)
    assert new_file_mode() == 0o666 & ~previous  # the umask is read, then put back
    files = [tmp_path / "one.bin", *(tmp_path / "run").iterdir()]
    names = {f.name for f in files}
    assert {"metrics.jsonl", "results.json", "checkpoint.pt", "losses.png"} <= names
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in files}
    assert set(modes.values()) == {"0o640"}, modes


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 50, b"PK\x03\x04" + bytes(range(256))])
def test_a_corrupt_checkpoint_is_one_line_without_torchs_advice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert text.startswith(f"{path}: not a readable metamask checkpoint (")
    assert "weights_only" not in text and "\n" not in text

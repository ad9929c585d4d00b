"""Finished runs read back by their resolved spec; a run that is not finished is trained, or
resumed from its folder's checkpoint.

An experiment is many runs (method x setting x seed), each in its own folder; one that is
stopped and started again must train only what is missing. A run counts as finished when its
folder's ``results.json`` was written from the very spec asked for now (same resolved spec,
compared in its JSON form), so a changed budget or setting trains again instead of silently
reusing an old number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from metamask.checkpoint import json_default
from metamask.config import RunSpec, spec_to_dict
from metamask.run import run_spec


def spec_as_json(spec: RunSpec) -> Any:
    """``spec`` as results.json stores it (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(spec_to_dict(spec), default=json_default))


def spec_digest(spec: RunSpec) -> str:
    """16 hex digits of the resolved spec (every default written out): the same spec is the
    same run, whichever file, base or override wrote it."""
    text = json.dumps(spec_to_dict(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_results(folder: Path, spec: RunSpec, name: str = "results.json") -> Any | None:
    """The JSON file ``name`` in ``folder`` when it holds ``"spec": spec``, else None (absent,
    unreadable, or written by another spec)."""
    path = folder / name
    try:
        results = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    same = isinstance(results, dict) and results.get("spec") == spec_as_json(spec)
    return results if same else None


def finished_or_run(
    spec: RunSpec, folder: Path, source: str, progress: bool, console: Console
) -> tuple[dict[str, Any], bool]:
    """``folder``'s results of ``spec``: read back when finished, else trained (resuming the
    folder's checkpoint when one is there). Returns the results and whether they were reused."""
    results = finished_results(folder, spec)
    if results is not None:
        console.print(f"  already finished: {folder}")
        return results, True
    resume = folder if (folder / "checkpoint.pt").is_file() else None
    if resume is not None:
        console.print(f"  resuming from {folder / 'checkpoint.pt'}")
    return run_spec(spec, folder, source, progress=progress, resume=resume).results, False

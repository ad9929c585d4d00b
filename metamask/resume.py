"""Continuing a run from its folder: which spec changes a resume accepts, and tidying the folder.

A resumed run must be the same run, so the spec it continues with may differ from the
checkpoint's only in what does not change the trajectory: logging, checkpoint frequency,
device, threads, the non-finite policy, the evaluation, where the data lives. Everything
else (model, graph, data, seed, the step budget that schedules depend on) is compared key by
key, and a difference is refused with the differing keys named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metamask.checkpoint import atomic_write
from metamask.errors import CheckpointError

#: spec keys (dotted prefixes) a resumed run may change
MAY_CHANGE = (
    "name",
    "description",
    "eval",
    "data.data_root",
    "train.log_every",
    "train.checkpoint_every",
    "train.device",
    "train.threads",
    "train.on_nonfinite",
)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def spec_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two specs, outside :data:`MAY_CHANGE`."""
    old, new = flatten(saved), flatten(current)
    keys = sorted(set(old) | set(new))
    return [
        key
        for key in keys
        if not _may_change(key) and _normalise(old.get(key)) != _normalise(new.get(key))
    ]


def check_same_run(saved_spec: Mapping[str, Any], spec: Mapping[str, Any], where: Path) -> None:
    """CheckpointError naming the keys when ``spec`` would not continue the saved run."""
    differing = spec_differences(saved_spec, spec)
    if differing:
        old, new = flatten(saved_spec), flatten(spec)
        shown = ", ".join(
            f"{key} ({_show(old, key)} -> {_show(new, key)})" for key in differing[:6]
        )
        more = f" and {len(differing) - 6} more" if len(differing) > 6 else ""
        raise CheckpointError(
            f"{where}: cannot resume: the spec differs from the checkpoint's in {shown}{more}; "
            "resume with the run's own spec (only logging, checkpointing, device, threads, "
            "train.on_nonfinite and eval may change)"
        )


def truncate_metrics(path: Path, step: int) -> int:
    """Drop ``metrics.jsonl`` rows after engine step ``step`` (and a half-written last line).

    A run killed after its last checkpoint logged steps the resumed run will log again;
    returns how many rows were dropped. The file is rewritten atomically.
    """
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept: list[str] = []
    for line in lines:
        if not line.endswith("\n"):
            continue  # the process died mid-write
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and int(row.get("step", 0)) <= step:
            kept.append(line)
    if len(kept) != len(lines):
        text = "".join(kept).encode()
        atomic_write(path, lambda f: f.write(text))
    return len(lines) - len(kept)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files an atomic write left when its process was killed mid-write."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _may_change(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in MAY_CHANGE)


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples and lists compare equal, as in the JSON spec


def _show(flat: Mapping[str, Any], key: str) -> str:
    return json.dumps(flat[key]) if key in flat else "absent"

"""Continuing a run from its folder: the one place that decides what a resume may continue.

It finds the checkpoint (``--resume`` takes a run folder or a checkpoint file) and the folder
the resumed run writes into, checks that the checkpoint can continue this graph (format,
process count, nodes, a step where every unroll window is closed, within the budget), and
tidies the folder (temporaries of a killed write, metrics rows past the checkpoint). The
trainer only applies a checked state (:meth:`metamask.train.Trainer.restore`).

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

from metamask import distributed
from metamask.checkpoint import atomic_write, load_checkpoint
from metamask.config import RunSpec, spec_to_dict
from metamask.errors import CheckpointError

#: what a checkpoint's ``format`` entry must say for this metamask to continue it
CHECKPOINT_FORMAT = 2
#: the files of a run folder that training writes
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"

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


def checkpoint_file(resume: Path) -> Path:
    """``--resume`` takes a run folder (its checkpoint.pt) or a checkpoint file."""
    return resume / CHECKPOINT_NAME if resume.is_dir() else resume


def resume_folder(resume: Path | None) -> Path | None:
    """The run folder a resumed run keeps writing into: DIR, or the checkpoint file's folder."""
    if resume is None:
        return None
    return resume if resume.is_dir() else resume.parent


def read_resume_checkpoint(spec: RunSpec, resume: Path) -> tuple[dict[str, Any], Path]:
    """The checkpoint to continue from; CheckpointError when unreadable or from another spec."""
    path = checkpoint_file(resume)
    state = load_checkpoint(path)
    try:
        saved = json.loads(state["spec"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: the checkpoint holds no readable spec") from None
    check_same_run(saved, spec_to_dict(spec), path)
    return state, path


def check_restorable(
    state: Mapping[str, Any], source: Path, nodes: list[str], period: int, total_steps: int
) -> int:
    """The checkpoint's engine step, once it is known to continue this graph.

    Raises:
        CheckpointError: another format or process count, other nodes, a step inside an
            unroll window (``period``) that is not the run's end, or beyond ``total_steps``.
    """
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source}: checkpoint format {state.get('format')!r}, this metamask writes and "
            f"reads format {CHECKPOINT_FORMAT}"
        )
    saved_world = int(state.get("world_size", 1))
    if saved_world != distributed.world_size():
        raise CheckpointError(
            f"{source}: written by {saved_world} process(es), resumed with "
            f"{distributed.world_size()}: the global batch would change; resume with "
            f"{saved_world}"
        )
    if set(state["nodes"]) != set(nodes):
        raise CheckpointError(
            f"{source}: checkpoint nodes {sorted(state['nodes'])} differ from the graph's "
            f"{sorted(nodes)}"
        )
    step = int(state["step"])
    if step % period and step < total_steps:
        raise CheckpointError(
            f"{source}: saved at step {step}, inside an unroll window of {period} "
            "steps (a run's final checkpoint); only a checkpoint taken at a multiple of "
            f"{period} can be continued"
        )
    if step > total_steps:
        raise CheckpointError(
            f"{source}: the checkpoint is at step {state['step']}, beyond train.steps {total_steps}"
        )
    return step


def tidy_folder(folder: Path, step: int) -> None:
    """Before a resumed run writes into ``folder``: drop a killed write's temporaries and the
    metrics rows logged after the checkpoint's ``step`` (they will be logged again)."""
    remove_stale_temporaries(folder)
    truncate_metrics(folder / METRICS_NAME, step)


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

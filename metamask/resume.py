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
key, and a difference is refused with the differing keys named. One exception is stated, not
silent: ``train.steps`` may grow (a budget extension, :func:`budget_extension`), and the run
then says that it is no longer the run a fresh one of that budget would be.

The folder holds what ``metamask run --resume DIR`` needs without the spec file: ``spec.yaml``
(the resolved spec with every override, rewritten by each resume) and, inside the checkpoint,
the run's clock (:func:`resume_clock`): the training seconds up to the checkpoint and the
resume history, so that ``metrics.jsonl`` and ``results.json`` describe the whole run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metamask import distributed
from metamask.checkpoint import atomic_write, load_checkpoint
from metamask.config import (
    RunSpec,
    apply_override,
    load_spec,
    spec_from_dict,
    spec_to_dict,
    spec_to_yaml,
    written_form,
)
from metamask.errors import CheckpointError, ConfigError

#: what a checkpoint's ``format`` entry must say for this metamask to continue it
CHECKPOINT_FORMAT = 2
#: the files of a run folder that training writes
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
#: the resolved spec of the run, every override included (what ``--resume DIR`` alone reads)
SPEC_NAME = "spec.yaml"
RESULTS_NAME = "results.json"
#: the checkpoint entry holding the run's wall clock (not part of the training state)
CLOCK = "clock"
#: the one spec key that may change on resume only upwards, and then with a stated note
BUDGET = "train.steps"

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
    "train.tensorboard",
    "imports",  # where the run's own estimators live may move; what they compute may not
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
    """CheckpointError naming the keys when ``spec`` would not continue the saved run.

    A larger ``train.steps`` is a budget extension and passes (:func:`budget_extension` says
    so); a smaller one is refused with its reason.
    """
    differing = spec_differences(saved_spec, spec)
    if BUDGET in differing:
        before, after = flatten(saved_spec).get(BUDGET), flatten(spec).get(BUDGET)
        if isinstance(before, int) and isinstance(after, int) and after > before:
            differing.remove(BUDGET)
        elif isinstance(before, int) and isinstance(after, int) and len(differing) == 1:
            raise CheckpointError(
                f"{where}: cannot resume with train.steps {after}: the run's budget is {before} "
                "steps; a resume may only extend it (train.steps larger than "
                f"{before}), since the schedules are laid out over the budget"
            )
    if differing:
        old, new = flatten(saved_spec), flatten(spec)
        shown = ", ".join(
            f"{key} ({_show(old, key)} -> {_show(new, key)})" for key in differing[:6]
        )
        more = f" and {len(differing) - 6} more" if len(differing) > 6 else ""
        raise CheckpointError(
            f"{where}: cannot resume: the spec differs from the checkpoint's in {shown}{more}; "
            "resume with the run's own spec (only logging, checkpointing, device, threads, "
            "train.on_nonfinite and eval may change, and train.steps may grow)"
        )


def budget_extension(saved_spec: Mapping[str, Any], spec: RunSpec) -> str | None:
    """The line a resume prints when it extends the run's budget (``train.steps`` grew), else
    None. The schedules (cosine decay, warm-up over the run) are laid out over the budget, so
    from the checkpoint on they follow the new total: the result is a run of its own, not the
    one a fresh run of the new budget would give bit for bit."""
    before = flatten(saved_spec).get(BUDGET)
    after = spec.train.steps
    if not isinstance(before, int) or after <= before:
        return None
    return (
        f"extending the budget from {before} to {after} steps: schedules over the run (cosine "
        f"decay) now end at step {after}, so from the checkpoint on this run is no longer the "
        f"one a fresh run of {after} steps would give bit for bit"
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
    check_same_run(saved_spec(state, path), spec_to_dict(spec), path)
    return state, path


def saved_spec(state: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The spec a checkpoint was written with (plain data, as :func:`spec_to_dict` gives).

    It is read through today's schema, so a key added to the schema since the checkpoint was
    written (with its default) is not a difference; a spec today's schema no longer reads
    is compared as saved, and the comparison names what differs.
    """
    try:
        saved = json.loads(state["spec"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: the checkpoint holds no readable spec") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: the checkpoint holds no readable spec")
    try:
        normalised: dict[str, Any] = spec_to_dict(
            spec_from_dict(written_form(saved), source=str(path))
        )
    except (ConfigError, AttributeError, KeyError, TypeError):
        return saved
    return normalised


def check_not_finished(state: Mapping[str, Any], spec: RunSpec, folder: Path) -> None:
    """Refuse to resume a run that has finished (its budget reached, results.json written):
    nothing would train; say how to evaluate it again or extend its budget."""
    step = int(state.get("step", 0))
    if step >= spec.train.steps and (folder / RESULTS_NAME).is_file():
        raise CheckpointError(
            f"{folder}: the run is finished (step {step} of {spec.train.steps}): evaluate it "
            f"again with `metamask eval {folder}`, or extend its budget with `metamask run "
            f"--resume {folder} --set train.steps=N` (N > {step})"
        )


def write_run_spec(folder: Path, spec: RunSpec) -> Path:
    """Write the run's resolved spec (every override applied) as ``DIR/spec.yaml``, atomically:
    ``metamask run --resume DIR`` and ``metamask eval DIR`` read it back."""
    path = folder / SPEC_NAME
    text = spec_to_yaml(spec).encode()
    atomic_write(path, lambda f: f.write(text))
    return path


def run_folder_spec(
    folder: Path, overrides: Sequence[str] = (), command: str = "--resume"
) -> tuple[RunSpec, str]:
    """The spec of the run in ``folder`` with ``overrides`` applied, and the file it came from.

    Read from ``DIR/spec.yaml``; a run written before that file existed falls back on the
    spec its checkpoint holds. Raises CheckpointError (one line) when ``folder`` is not a run
    folder: missing, or holding neither file.
    """
    if not folder.is_dir():
        raise CheckpointError(f"{command} {folder}: no such run folder")
    path = folder / SPEC_NAME
    if path.is_file():
        return load_spec(path, overrides), str(path)
    checkpoint = folder / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{command} {folder}: not a run folder (no {SPEC_NAME} and no {CHECKPOINT_NAME}); "
            "give the folder `metamask run` wrote"
        )
    raw = written_form(saved_spec(load_checkpoint(checkpoint), checkpoint))
    for item in overrides:
        apply_override(raw, item)
    return spec_from_dict(raw, source=str(checkpoint)), str(checkpoint)


def resume_clock(state: Mapping[str, Any], step: int) -> tuple[float, list[dict[str, Any]]]:
    """From a checkpoint: the run's training seconds up to it, and its resume history with an
    entry for this resume appended (``from_step``, ``at``: local time, ``seconds``: filled in
    by :func:`clock_state` as this leg runs). A checkpoint written before the clock existed
    counts as 0 seconds and no earlier resume."""
    clock = state.get(CLOCK)
    clock = clock if isinstance(clock, Mapping) else {}
    elapsed = float(clock.get("elapsed", 0.0))
    history = [dict(entry) for entry in clock.get("resumes", [])]
    history.append({"from_step": step, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0})
    return elapsed, history


def clock_state(
    elapsed_before: float, leg_seconds: float, history: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The checkpoint's clock: the whole run's training seconds (those the checkpoint it
    resumed from held, plus this leg's), and the resume history with this leg's seconds.

    Time a killed leg spent after its last checkpoint is not counted: the next leg repeats
    those steps, and counts them once."""
    resumes = [dict(entry) for entry in history]
    if resumes:
        resumes[-1]["seconds"] = leg_seconds
    return {"elapsed": elapsed_before + leg_seconds, "resumes": resumes}


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

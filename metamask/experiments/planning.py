"""A comparison's plan: arms (spec files × ``--vary`` values) × seeds, each a resolved spec in
its own run folder, every spec validated before anything is trained.

An arm is a spec file with overrides: ``metamask compare A.yaml B.yaml --vary K=1,2`` has four
arms (A K=1, A K=2, B K=1, B K=2). The overrides apply in this order: the spec's file, the
comparison's ``--set``, the arm's ``--vary`` values, the thread share of ``--jobs``, then the
seed. A run's folder is ``OUT/runs/<arm>/seed<N>-<digest>``: the digest of its resolved spec,
so a changed budget or setting is a new run beside the old, never a clash with it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metamask.config import RunSpec, load_spec
from metamask.errors import ConfigError, MetamaskError
from metamask.experiments.finished import spec_digest

#: the prefix load_spec gives an override's error; a --vary value's error names --vary instead
_SET_PREFIX = re.compile(r"^--set:? ?")


@dataclass(frozen=True)
class Vary:
    """``--vary KEY=V1,V2,...``: one spec key and the values it takes (as ``--set`` text)."""

    key: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Vary:
        """``KEY=V1,V2`` -> Vary; a missing key, ``=`` or value is refused in one line."""
        key, eq, values = text.partition("=")
        items = tuple(v.strip() for v in values.split(",")) if eq else ()
        if not key.strip() or not eq or not items or any(not v for v in items):
            raise ConfigError(
                f"--vary {text}: expected KEY=V1,V2,... (a spec key and one or more "
                "comma-separated values, e.g. model.mask_ratio=0.5,0.75)"
            )
        return cls(key.strip(), items)


@dataclass(frozen=True)
class Arm:
    """One arm: a spec file with its overrides, shown as ``label``."""

    label: str
    source: Path
    overrides: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """``label`` as a folder name."""
        return re.sub(r"[^A-Za-z0-9+._=-]+", "_", self.label).strip("_") or "arm"


#: where a planned run's folder lies: (out, arm, seed, resolved spec) -> folder
FolderRule = Callable[[Path, "Arm", int, RunSpec], Path]


@dataclass(frozen=True)
class Planned:
    """One run: an arm at a seed, resolved, with its folder."""

    arm: Arm
    seed: int
    spec: RunSpec
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.arm.label} seed {self.seed}"


def arms_of(specs: Sequence[Path], varies: Sequence[Vary] = ()) -> list[Arm]:
    """Every spec × every combination of the ``varies`` values, spec-major; labelled by the
    spec's file name (without ``.yaml``) and ``key=value`` of each vary."""
    keys = [v.key for v in varies]
    if len(set(keys)) < len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"--vary {twice}: given twice; list all its values in one --vary")
    arms = []
    for source in specs:
        for values in itertools.product(*(v.values for v in varies)):
            overrides = tuple(f"{k}={value}" for k, value in zip(keys, values, strict=True))
            label = " ".join([Path(source).stem, *overrides])
            arms.append(Arm(label, Path(source), overrides))
    return arms


def cpu_count() -> int:
    """The cores this process may use (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_share(jobs: int, cpus: int | None = None) -> int:
    """Threads per run when ``jobs`` runs go side by side on ``cpus`` cores (at least 1)."""
    return max(1, (cpus or cpu_count()) // max(1, jobs))


def resolve(
    arm: Arm, seed: int, common: Sequence[str] = (), jobs: int = 1, cpus: int | None = None
) -> RunSpec:
    """``arm``'s spec at ``seed``: file, ``common`` (--set), the arm's overrides, the thread
    share of ``jobs`` (only where the spec asks for more threads than its share, or for all
    of them with 0), then the seed. Errors name ``--vary KEY=VALUE`` for an arm's value."""
    spec = load_spec(arm.source, common)  # the file and --set alone: their errors as they are
    for item in arm.overrides:
        try:
            spec = load_spec(arm.source, [*common, item])
        except ConfigError as exc:
            raise ConfigError(f"--vary {item}: {_SET_PREFIX.sub('', str(exc))}") from None
    spec = load_spec(arm.source, [*common, *arm.overrides]) if arm.overrides else spec
    extra = []
    share = thread_share(jobs, cpus)
    if jobs > 1 and (spec.train.threads == 0 or spec.train.threads > share):
        extra.append(f"train.threads={share}")
    return load_spec(arm.source, [*common, *arm.overrides, *extra, f"seed={seed}"])


def plan(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    out: Path,
    common: Sequence[str] = (),
    jobs: int = 1,
    cpus: int | None = None,
    folder: FolderRule | None = None,
) -> list[Planned]:
    """Every arm at every seed, seed-major (the arms of a seed run next to each other, so a
    stopped comparison has whole pairs), each resolved and validated as ``metamask run``
    would before training (:func:`validate`). ``folder`` places a run (default: module
    docstring)."""
    if not arms:
        raise ConfigError("compare: give at least one SPEC file")
    if not seeds:
        raise ConfigError("compare: give at least one seed (--seeds 0 1 2)")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: a seed is given twice")
    labels = [a.label for a in arms]
    if len(set(labels)) < len(labels):
        twice = next(x for x in labels if labels.count(x) > 1)
        raise ConfigError(f"compare: the arm {twice!r} is given twice")
    place = folder or default_folder
    runs = []
    for seed in seeds:
        for arm in arms:
            spec = resolve(arm, seed, common, jobs, cpus)
            runs.append(Planned(arm, seed, spec, place(out, arm, seed, spec)))
    for arm in arms:  # once per arm: the checks build the graph on stand-in data
        validate(next(r for r in runs if r.arm == arm))
    return runs


def default_folder(out: Path, arm: Arm, seed: int, spec: RunSpec) -> Path:
    """``OUT/runs/<arm>/seed<N>-<digest of the resolved spec, 8 digits>``."""
    return out / "runs" / arm.slug / f"seed{seed}-{spec_digest(spec)[:8]}"


def validate(run: Planned) -> None:
    """What ``metamask run`` refuses before training: the graph's shape and options, the
    evaluation data, the augmentation. Errors name the arm's ``--vary`` values when those
    wrote the key."""
    from metamask.compose import check_buildable
    from metamask.config.imports import import_modules
    from metamask.spec_data import check_augment, check_eval_data
    from metamask.topology import validate_graph

    source = str(run.arm.source)
    try:
        import_modules(run.spec.imports, source)  # a module may register data or estimators
        validate_graph(run.spec.graph, source)
        check_buildable(run.spec, source)
        check_eval_data(run.spec, source)
        check_augment(run.spec, source)
    except MetamaskError as exc:
        if run.arm.overrides:
            raise type(exc)(f"{run.arm.label}: {exc}") from None
        raise

"""Finished runs planted without training: a results.json (and the controlled task's
concentration.json) whose every number is drawn from the digest of the run's resolved spec.

The experiment scripts read such a run back as finished (its results.json holds its spec), so
their tables can be computed in a second and compared with the table the scripts printed
before they were thinned onto :mod:`metamask.experiments`. The numbers are drawn from the run's
folder (relative to the experiment's), name, dataset, seed and budget: a script that placed or
named a run differently, or mixed up seeds, would read other numbers. (Not from the whole
resolved spec: a new default in the schema would change every number.)
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from metamask.checkpoint import write_json
from metamask.config import RunSpec
from metamask.experiments import spec_as_json


def _draw(spec: RunSpec, where: str) -> random.Random:
    key = f"{where}|{spec.name}|{spec.data.dataset}|{spec.seed}|{spec.train.steps}"
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))


def plant_results(
    folder: Path, spec: RunSpec, where: str, finetune: bool = False
) -> dict[str, Any]:
    """Write ``folder/results.json`` of a finished run of ``spec``; ``where``: the folder
    relative to the experiment's. Returns it."""
    rng = _draw(spec, where)
    results = {
        "name": spec.name,
        "seed": spec.seed,
        "spec": spec_as_json(spec),
        "metric": "accuracy",
        "test": round(rng.uniform(0.5, 0.95), 4),
        "val": round(rng.uniform(0.5, 0.95), 4),
        "probe_seconds": round(rng.uniform(1, 20), 2),
        "finetune": (
            {
                "test": round(rng.uniform(0.5, 0.95), 4),
                "val": round(rng.uniform(0.5, 0.95), 4),
                "seconds": round(rng.uniform(1, 20), 2),
            }
            if finetune
            else None
        ),
        "train": {
            "steps": spec.train.steps,
            "seconds": round(rng.uniform(1, 100), 2),
            "seconds_per_step": round(rng.uniform(0.01, 0.5), 4),
            "final": {"reconstruct": {"loss": round(rng.uniform(0.1, 1.0), 5)}},
            "resumed_from": None,
        },
    }
    write_json(folder / "results.json", results)
    return results


def plant_concentration(folder: Path, spec: RunSpec, where: str, tokens: int) -> dict[str, Any]:
    """Write ``folder/concentration.json`` as examples/controlled_masking.py writes it."""
    rng = _draw(spec, where)
    row = {
        "spec": spec_as_json(spec),
        "dataset": spec.data.dataset,
        "budget": spec.train.steps,
        "seed": spec.seed,
        "auroc": round(rng.uniform(0.3, 0.7), 4),
        "ratio": round(rng.uniform(0.9, 1.1), 4),
        "masked_informative": round(rng.uniform(0.6, 0.8), 4),
        "masked_noise": round(rng.uniform(0.6, 0.8), 4),
        "mask_ratio": spec.model.mask_ratio,
        "probe_test": round(rng.uniform(0.5, 0.95), 4),
        "train_seconds": round(rng.uniform(1, 100), 2),
        "seconds_per_step": round(rng.uniform(0.01, 0.5), 4),
        "wall_seconds": round(rng.uniform(1, 100), 2),
        "mean_map": [round(rng.uniform(0.4, 0.6), 4) for _ in range(tokens)],
    }
    write_json(folder / "concentration.json", row)
    return row

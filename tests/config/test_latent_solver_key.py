"""``latent_solver:`` on an adapt node, and its old name ``hypergradient:`` kept working.

``hypergradient`` means a graph edge's estimator (darts, cg, ...) on every node; MetaMAE's
adapt node picks its latent solver (first_order, unrolled, implicit) with ``latent_solver``.
An old spec (or an old run folder's spec.yaml) still loads, with one deprecation line, to the
same spec as the new form, so ``eval`` and ``--resume`` of old runs keep working.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from metamask.config import spec_from_dict, spec_to_dict, spec_to_yaml, written_form
from metamask.errors import ConfigError, SpecDeprecation

ROOT = Path(__file__).resolve().parents[2]


def raw(adapt: dict) -> dict:
    return {
        "name": "t",
        "data": {"dataset": "digits"},
        "graph": {
            "nodes": {
                "adapt": {"type": "adapt", "inner_lr": 0.5, **adapt},
                "reconstruct": {"type": "reconstruct", "optimizer": {"type": "adamw"}},
            },
            "u2l": {"reconstruct": ["adapt"]},
            "l2u": {"adapt": ["reconstruct"]},
        },
    }


def test_the_old_name_loads_to_the_same_spec_with_one_deprecation() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = spec_from_dict(raw({"latent_solver": {"type": "implicit", "iterations": 3}}))
        assert not caught
        old = spec_from_dict(
            raw({"hypergradient": {"type": "implicit", "iterations": 3}}), "o.yaml"
        )
    assert spec_to_dict(old) == spec_to_dict(new)
    assert [w.category for w in caught] == [SpecDeprecation]
    message = str(caught[0].message)
    assert message.startswith("o.yaml: graph.nodes.adapt.hypergradient: on an adapt node")
    assert "latent_solver" in message and "\n" not in message


def test_a_short_form_is_a_type() -> None:
    spec = spec_from_dict(raw({"latent_solver": "unrolled"}))
    assert spec.graph.nodes["adapt"].options["latent_solver"] == {"type": "unrolled"}


def test_both_names_are_refused_in_one_line() -> None:
    both = raw({"latent_solver": "unrolled", "hypergradient": "implicit"})
    with pytest.raises(ConfigError) as info:
        spec_from_dict(both, "b.yaml")
    assert str(info.value).startswith(
        "b.yaml: graph.nodes.adapt.hypergradient: an adapt node's latent solver is set by "
        "latent_solver:, which is there too"
    )


def test_the_resolved_spec_round_trips_without_the_old_name() -> None:
    spec = spec_from_dict(raw({"latent_solver": "unrolled"}))
    text = spec_to_yaml(spec)
    adapt = yaml.safe_load(text)["graph"]["nodes"]["adapt"]
    assert "hypergradient" not in adapt and adapt["latent_solver"] == {"type": "unrolled"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation on reading it back
        assert spec_to_dict(spec_from_dict(yaml.safe_load(text))) == spec_to_dict(spec)


def test_an_old_run_folders_saved_spec_normalises_to_the_new_one() -> None:
    """A checkpoint written before the rename holds adapt's ``hypergradient`` (plain data as
    spec_to_dict gave it then): read back, it is the spec the renamed file gives."""
    saved = spec_to_dict(spec_from_dict(raw({"latent_solver": "unrolled"})))
    adapt = saved["graph"]["nodes"]["adapt"]
    adapt["hypergradient"] = {"type": "unrolled", "options": {}}  # as the old code saved it
    del adapt["options"]["latent_solver"]
    with pytest.warns(SpecDeprecation):
        again = spec_to_dict(spec_from_dict(written_form(saved)))
    assert again == spec_to_dict(spec_from_dict(raw({"latent_solver": "unrolled"})))


def test_the_command_line_prints_the_deprecation_as_one_line(tmp_path: Path) -> None:
    old = raw({"hypergradient": {"type": "unrolled"}})
    old["model"] = {"backbone": "tiny"}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    result = subprocess.run(
        [sys.executable, "-m", "metamask", "show", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"metamask: deprecated: {path}: graph.nodes.adapt.hypergradient: on an adapt node"
    )
    assert "unrolled" in result.stdout  # the table shows the latent solver

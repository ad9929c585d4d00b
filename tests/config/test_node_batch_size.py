"""A node's own ``batch_size`` (spec key ``graph.nodes.NAME.batch_size``): its loader's batches,
checked like every key, and refused on a node that draws no batches of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metamask.compose import check_buildable
from metamask.config import load_spec, spec_from_dict, spec_to_yaml_dict

REPO = Path(__file__).resolve().parents[2]
MLOMAE = str(REPO / "problems/mlomae-digits.yaml")
METAMAE = str(REPO / "problems/metamae-basicmotions.yaml")
TINY = "model.backbone=tiny"


def test_a_node_batch_size_sets_that_node_loader_only() -> None:
    spec = load_spec(MLOMAE, [TINY, "graph.nodes.head.batch_size=4"])
    assert spec.graph.nodes["head"].batch_size == 4
    assert spec.graph.nodes["pretrain"].batch_size is None
    graph = check_buildable(spec, MLOMAE)
    sizes = {
        name: node.train_data_loader[0].batch_sampler.batch_size
        for name, node in graph.nodes.items()
    }
    assert sizes == {"pretrain": spec.data.batch_size, "head": 4, "mask": spec.data.batch_size}
    written = spec_to_yaml_dict(spec)  # `show --resolved` writes it back, at the node's level
    assert written["graph"]["nodes"]["head"]["batch_size"] == 4
    assert spec_from_dict(written) == spec


def _show(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "metamask", "show", *args, "--set", TINY]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_bad_node_batch_size_is_one_line() -> None:
    proc = _show(MLOMAE, "--set", "graph.nodes.head.batch_size=0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "metamask: error: --set: graph.nodes.head.batch_size: expected an integer >= 1, got 0"
    ]


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_a_node_that_draws_no_batches_refuses_a_batch_size() -> None:
    """MetaMAE's reconstruct node takes its batches from adapt: the size belongs there."""
    proc = _show(METAMAE, "--set", "graph.nodes.reconstruct.batch_size=4")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "metamask: error: --set: graph.nodes.reconstruct.batch_size: node 'reconstruct' draws "
        "no batches of its own"
    )
    assert _show(METAMAE, "--set", "graph.nodes.adapt.batch_size=4").returncode == 0

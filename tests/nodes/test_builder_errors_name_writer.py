"""Node-builder errors name the file (or ``--set``) that wrote the bad key, not the top spec.

Each case runs `metamask show` (which builds the graph, as `run` would) twice: on a spec that
extends a real problem spec plus a base file holding the bad key (the error must name that base
file), and on the problem spec with the key given by ``--set`` (the error must name ``--set``).
The cases call the command's ``main`` in this process (a fresh process costs seconds each, for
torch); one case runs the real command line in a subprocess, for the exit code and the one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from metamask.cli import main

REPO = Path(__file__).resolve().parents[2]
MLOMAE = REPO / "problems/mlomae-digits.yaml"
MAE = REPO / "problems/mae-basicmotions.yaml"
METAMAE = REPO / "problems/metamae-basicmotions.yaml"

# (node type, problem spec, the bad key as a nested mapping, as --set, expected error text)
CASES: list[tuple[str, Path, dict[str, Any], str, str]] = [
    (
        "pretrain",
        MLOMAE,
        {"pretrain": {"masker": {"type": "random"}}},
        "graph.nodes.pretrain.masker.type=random",
        "graph.nodes.pretrain.masker: pretrain learns where to mask",
    ),
    (
        "pretrain (masker's own check)",
        MLOMAE,
        {"pretrain": {"masker": {"ratio_bounds": [0.9, 0.1]}}},
        "graph.nodes.pretrain.masker.ratio_bounds=[0.9,0.1]",
        "graph.nodes.pretrain.masker.ratio_bounds: expected 0 <= low <= high < 1",
    ),
    (
        "pretrain (token_mlp heads)",
        MLOMAE,
        {"pretrain": {"masker": {"type": "token_mlp", "attention_layers": 1, "heads": 3}}},
        "graph.nodes.pretrain.masker={type: token_mlp, attention_layers: 1, heads: 3}",
        "graph.nodes.pretrain.masker.heads: 3 attention heads do not divide",
    ),
    (
        "mask",
        MLOMAE,
        {"mask": {"hypergradient": {"type": "darts"}}},
        "graph.nodes.mask.hypergradient=darts",
        "graph.nodes.mask.hypergradient: mask is the top node",
    ),
    (
        "mask (its lower's estimator)",
        MLOMAE,
        {"pretrain": {"hypergradient": {"type": "first_order"}}},
        "graph.nodes.pretrain.hypergradient=first_order",
        "graph.nodes.pretrain.hypergradient: 'pretrain' uses the first_order estimator",
    ),
    (
        "head",
        MLOMAE,
        {"head": {"holdout": 1.5}},
        "graph.nodes.head.holdout=1.5",
        "graph.nodes.head.holdout: expected a number",
    ),
    (
        "reconstruct",
        MAE,
        {"reconstruct": {"reg_weight": 0.5}},
        "graph.nodes.reconstruct.reg_weight=0.5",
        "graph.nodes.reconstruct.reg_weight: the contrastive term needs an adapt node",
    ),
    (
        "adapt",
        METAMAE,
        {"adapt": {"masker": {"ratio_bounds": [0.9, 0.1]}}},
        "graph.nodes.adapt.masker.ratio_bounds=[0.9,0.1]",
        "graph.nodes.adapt.masker.ratio_bounds: expected 0 <= low <= high < 1",
    ),
]


def show(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`metamask show ARGS` through the command's main: its one error line (exit code 2)."""
    code = main(["show", *args, "--set", "model.backbone=tiny"])
    out, err = capsys.readouterr()
    assert code == 2, err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def write_specs(tmp_path: Path, problem: Path, nodes: dict[str, Any]) -> None:
    """top.yaml: ``problem`` extended by bad-base.yaml, which holds the bad key."""
    (tmp_path / "bad-base.yaml").write_text(
        yaml.safe_dump({"fragment": True, "graph": {"nodes": nodes}})
    )
    top = {"extends": [os.path.relpath(problem, tmp_path), "bad-base.yaml"], "name": "x"}
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(top))


@pytest.mark.parametrize(("label", "problem", "nodes", "override", "text"), CASES)
def test_builder_error_names_the_base_file_or_set(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    label: str,
    problem: Path,
    nodes: dict[str, Any],
    override: str,
    text: str,
) -> None:
    write_specs(tmp_path, problem, nodes)
    monkeypatch.chdir(tmp_path)
    line = show("top.yaml", capsys=capsys)
    assert line.startswith(f"metamask: error: bad-base.yaml: {text}"), (label, line)
    line = show(str(problem), "--set", override, capsys=capsys)
    assert line.startswith(f"metamask: error: --set: {text}"), (label, line)


def test_the_command_line_names_the_base_file(tmp_path: Path) -> None:
    """The real command, in its own process: exit code 2 and one line naming the base file."""
    _, problem, nodes, _, text = CASES[0]
    write_specs(tmp_path, problem, nodes)
    cmd = [sys.executable, "-m", "metamask", "show", "top.yaml", "--set", "model.backbone=tiny"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"metamask: error: bad-base.yaml: {text}"), proc.stderr

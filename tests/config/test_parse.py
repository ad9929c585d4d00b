"""Spec loading: strict keys and types, one-line errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from metamask.config import BACKBONES, load_spec, spec_from_dict
from metamask.errors import ConfigError

GOOD = """
name: t
data: {dataset: digits, batch_size: 8}
model: {backbone: tiny, mask_ratio: 0.6, encoder: {depth: 3}}
graph:
  nodes:
    adapt: {type: adapt, inner_lr: 0.3, latent_solver: {type: unrolled}}
    reconstruct: {type: reconstruct, optimizer: {type: adamw, lr: 1e-3}}
  u2l: {reconstruct: [adapt]}
  l2u: {adapt: [reconstruct]}
train: {steps: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_good_spec_loads_with_backbone_preset_and_overrides(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD), ["train.steps=7", "model.decoder.depth=2"])
    assert spec.train.steps == 7
    assert spec.model.encoder.depth == 3  # user key beats the preset
    assert (
        spec.model.encoder.width == BACKBONES["tiny"]["encoder"]["width"]
    )  # preset fills the rest
    assert spec.model.decoder.depth == 2
    assert spec.graph.nodes["adapt"].options == {
        "inner_lr": 0.3,
        "latent_solver": {"type": "unrolled"},
    }
    assert spec.graph.nodes["reconstruct"].optimizer.lr == 1e-3  # "1e-3" read as a number


def test_unknown_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("train: {steps: 5}", "train: {stpes: 5}"))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and "train.stpes" in message and "did you mean 'steps'" in message
    assert "\n" not in message


def test_wrong_type_names_key_and_expected_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        load_spec(write(tmp_path, GOOD.replace("steps: 5", "steps: many")))
    with pytest.raises(ConfigError, match=r"data\.batch_size: expected an integer, got True"):
        load_spec(write(tmp_path, GOOD.replace("batch_size: 8", "batch_size: true")))


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_spec(write(tmp_path, "name: t\ndata: {dataset: [digits\n"))


def test_missing_file_and_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="data: required key is missing"):
        load_spec(write(tmp_path, "name: t\ngraph: {nodes: {}}\n"))


def test_literal_choice_and_unknown_backbone() -> None:
    raw = {"name": "t", "data": {"dataset": "d"}, "graph": {"nodes": {}}}
    with pytest.raises(
        ConfigError,
        match=r"optimizer\.type: expected one of .*got 'admaw' \(did you mean 'adamw'\?\)",
    ):
        spec_from_dict(
            {
                **raw,
                "graph": {"nodes": {"n": {"type": "reconstruct", "optimizer": {"type": "admaw"}}}},
            }
        )
    with pytest.raises(ConfigError, match=r"unknown backbone 'dab' .*did you mean 'dabs'"):
        spec_from_dict({**raw, "model": {"backbone": "dab"}})


def test_override_must_be_key_equals_value() -> None:
    with pytest.raises(ConfigError, match=r"expected key.path=value"):
        load_spec(Path("problems/metamae-basicmotions.yaml"), ["train.steps"])


def test_every_shipped_spec_is_valid() -> None:
    from metamask.nodes.registry import get_node_type
    from metamask.topology import validate_graph

    specs = sorted(Path("problems").glob("*.yaml"))
    assert specs
    for path in specs:
        spec = load_spec(path)
        validate_graph(spec.graph, str(path))
        for node in spec.graph.nodes.values():
            get_node_type(node.type)

"""Specs that compose: `extends:` merges base files; errors name the file that wrote the key."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metamask.config import load_spec, parse_dataclass, spec_to_dict
from metamask.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BASE = """
seed: 3
data: {dataset: digits, batch_size: 8}
model: {backbone: tiny, mask_ratio: 0.6, patch: [2, 2]}
graph:
  nodes:
    adapt: {type: adapt, inner_lr: 0.3, latent_solver: {type: unrolled}}
    reconstruct: {type: reconstruct, optimizer: {type: adamw, lr: 1e-3, schedule: cosine}}
  u2l: {reconstruct: [adapt]}
  l2u: {adapt: [reconstruct]}
train: {steps: 5, log_every: 1}
"""


def files(tmp_path: Path, **texts: str) -> Path:
    """Write ``name=text`` files (``__`` in a name is a folder separator); the first one's path."""
    paths = []
    for name, text in texts.items():
        path = tmp_path / (name.replace("__", "/") + ".yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths[0]


def test_extends_merges_mappings_replaces_the_rest_and_keeps_node_order(tmp_path: Path) -> None:
    spec = load_spec(
        files(
            tmp_path,
            spec="""
extends: parts/base.yaml
name: child
model: {patch: [4, 4]}             # a list: replaced, not appended to
graph:
  nodes:
    reconstruct: {optimizer: {lr: 1e-2}}   # merged into the base's node and optimizer
    adapt: {inner_lr: 0.1}
train: {steps: 9}
""",
            parts__base=BASE,
        )
    )
    assert spec.name == "child" and spec.seed == 3
    assert spec.data.batch_size == 8 and spec.model.mask_ratio == 0.6  # from the base
    assert spec.model.patch == [4, 4]
    assert list(spec.graph.nodes) == ["adapt", "reconstruct"]  # the base's order
    optimizer = spec.graph.nodes["reconstruct"].optimizer
    assert optimizer is not None and optimizer.lr == 1e-2 and optimizer.schedule == "cosine"
    assert spec.graph.nodes["adapt"].options == {
        "inner_lr": 0.1,
        "latent_solver": {"type": "unrolled"},
    }
    assert spec.train.steps == 9 and spec.train.log_every == 1


def test_bases_merge_in_order_recursively_relative_to_each_file(tmp_path: Path) -> None:
    spec = load_spec(
        files(
            tmp_path,
            spec="extends: [b/first.yaml, b/second.yaml]\nname: s\n",
            b__first="extends: ../root.yaml\ntrain: {steps: 1, log_every: 2}\n",
            b__second="extends: ../root.yaml\ntrain: {steps: 7}\nseed: 5\n",  # a diamond
            root=BASE,
        ),
        ["seed=11"],  # --set applies after the merge
    )
    assert spec.train.steps == 7  # later bases win, with their own bases: second.yaml brings
    assert spec.train.log_every == 1  # root.yaml's log_every again, over first.yaml's
    assert spec.seed == 11


def test_a_scalar_replaces_a_mapping_and_a_mapping_a_scalar(tmp_path: Path) -> None:
    path = files(
        tmp_path,
        spec="extends: base.yaml\nname: s\ngraph: {nodes: {adapt: {latent_solver: implicit}}}\n",
        base=BASE,
    )
    assert load_spec(path).graph.nodes["adapt"].options["latent_solver"] == {"type": "implicit"}


# (what the base says, the key named in the error, the text of the error)
BASE_ERRORS = [
    ("train: {stpes: 5}", "train.stpes", "unknown key (did you mean 'steps'?)"),
    ("train: {steps: many}", "train.steps", "expected an integer, got 'many'"),
    ("model: {encoder: 3}", "model.encoder", "expected a mapping"),
    ("model: {backbone: dab}", "model.backbone", "unknown backbone 'dab'"),
    ("model: {patch: [2, x]}", "model.patch[1]", "expected an integer, got 'x'"),
    ("graph: {nodes: {extra: {unroll_steps: 2}}}", "graph.nodes.extra.type", "required key"),
    ("graph: {nodes: {adapt: {hypergradient: 3}}}", "graph.nodes.adapt.hypergradient", "'type'"),
    ("graph: {nodes: {adapt: {optimizer: {type: admaw}}}}", "optimizer.type", "'adamw'"),
    ("trian: {steps: 5}", "trian", "unknown key (did you mean 'train'?)"),
]


@pytest.mark.parametrize(("bad", "key", "text"), BASE_ERRORS)
def test_a_bad_value_in_a_base_names_the_base_file_and_key(
    tmp_path: Path, bad: str, key: str, text: str
) -> None:
    path = files(
        tmp_path,
        spec="extends: [base.yaml, parts/bad.yaml]\nname: s\n",
        base=BASE,
        parts__bad=f"extends: ../empty.yaml\n{bad}\n",
        empty="{}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'parts' / 'bad.yaml'}: "), message
    assert key in message and text in message and "\n" not in message


def test_the_file_that_wrote_the_value_last_is_named(tmp_path: Path) -> None:
    spec = files(tmp_path, spec="extends: base.yaml\nname: s\ntrain: {steps: x}\n", base=BASE)
    with pytest.raises(ConfigError, match=rf"^{spec}: train\.steps: expected an integer"):
        load_spec(spec)
    fixed = files(tmp_path, fixed="extends: base.yaml\nname: s\n", base=BASE)
    with pytest.raises(ConfigError, match=r"^--set: train\.steps: expected an integer"):
        load_spec(fixed, ["train.steps=x"])
    with pytest.raises(ConfigError, match=r"^--set: trian: unknown key"):
        load_spec(fixed, ["trian.steps=3"])


def test_node_options_checked_later_name_the_base_file_too(tmp_path: Path) -> None:
    """Node types validate their options after loading, with the spec's path as the source."""

    @dataclasses.dataclass(frozen=True)
    class AdaptOptions:
        inner_lr: float = 0.5
        latent_solver: dict = dataclasses.field(default_factory=dict)  # the base sets it

    spec = files(tmp_path, spec="extends: base.yaml\nname: s\n", base=BASE.replace("0.3", "fast"))
    loaded = load_spec(spec)
    options = dict(loaded.graph.nodes["adapt"].options)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'base.yaml'}: graph\.nodes\.adapt\."):
        parse_dataclass(AdaptOptions, options, str(spec), "graph.nodes.adapt")
    loaded = load_spec(spec, ["graph.nodes.adapt.inner_lr=slow"])
    options = dict(loaded.graph.nodes["adapt"].options)
    with pytest.raises(ConfigError, match=r"^--set: graph\.nodes\.adapt\.inner_lr: expected a"):
        parse_dataclass(AdaptOptions, options, str(spec), "graph.nodes.adapt")


# (the spec's extends value, other files, the file named, the text after "<file>: extends: ")
EXTENDS_ERRORS = [
    ("extends: nope.yaml", {}, "spec", r"base file .*/nope\.yaml not found"),
    ("extends: [base.yaml, s/no.yaml]", {"base": BASE}, "spec", r"base file .*/s/no\.yaml not"),
    ("extends: spec.yaml", {}, "spec", r"a cycle: .*/spec\.yaml -> .*/spec\.yaml$"),
    (
        "extends: a.yaml",
        {"a": "extends: b.yaml\n", "b": "extends: spec.yaml\n"},
        "b",
        r"a cycle: .*/spec\.yaml -> .*/a\.yaml -> .*/b\.yaml -> .*/spec\.yaml$",
    ),
    ("extends: 3", {}, "spec", r"expected a file path or a list of file paths, got int 3$"),
    ("extends: {base: x}", {}, "spec", r"expected a file path or .*, got a mapping$"),
    ("extends: [base.yaml, 1]", {"base": BASE}, "spec", r"expected a file path or a list"),
    ("extends: ''", {}, "spec", r"expected a file path or a list of file paths"),
]


@pytest.mark.parametrize(("line", "others", "named", "pattern"), EXTENDS_ERRORS)
def test_extends_errors_are_one_line_naming_the_file_and_key(
    tmp_path: Path, line: str, others: dict[str, str], named: str, pattern: str
) -> None:
    spec = files(tmp_path, spec=f"{line}\nname: s\n", **others)
    with pytest.raises(ConfigError) as err:
        load_spec(spec)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / named}.yaml: extends: "), message
    assert re.search(pattern, message), message


def test_a_fragment_is_refused_when_run_directly(tmp_path: Path) -> None:
    fragment = files(tmp_path, base="fragment: true\n" + BASE + "name: b\n")
    with pytest.raises(ConfigError, match=r"fragment: this file is a fragment .*not a runnable"):
        load_spec(fragment)
    spec = files(tmp_path, spec="extends: base.yaml\nname: s\n")
    assert load_spec(spec).name == "s"  # a base's `fragment` is not inherited
    with pytest.raises(ConfigError, match=r"fragment: expected true or false"):
        load_spec(files(tmp_path, odd="fragment: maybe\n" + BASE + "name: b\n"))


def test_shipped_bases_are_fragments_outside_the_spec_listing() -> None:
    bases = sorted((ROOT / "problems" / "base").rglob("*.yaml"))
    assert bases and not set(bases) & set((ROOT / "problems").glob("*.yaml"))
    for base in bases:
        assert yaml.safe_load(base.read_text()).get("fragment") is True, base
        with pytest.raises(ConfigError, match="not a runnable spec"):
            load_spec(base)


@pytest.mark.parametrize("path", sorted((ROOT / "problems").glob("*.yaml")), ids=lambda p: p.name)
def test_the_resolved_yaml_of_every_spec_loads_back_to_the_same_spec(
    tmp_path: Path, path: Path
) -> None:
    from metamask.config import spec_to_yaml

    spec = load_spec(path)
    flat = tmp_path / "flat.yaml"
    flat.write_text(spec_to_yaml(spec))
    again = load_spec(flat)
    assert spec_to_dict(again) == spec_to_dict(spec)
    assert list(again.graph.nodes) == list(spec.graph.nodes)


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamask", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_show_resolved_prints_the_spec_as_yaml() -> None:
    proc = run_cli("show", "problems/metamae-wine.yaml", "--resolved", "--set", "seed=4")
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["name"] == "metamae-wine" and shown["seed"] == 4
    assert shown["graph"]["nodes"]["adapt"]["inner_lr"] == 0.5  # options flat, as written
    assert shown["model"]["encoder"]["width"] == 128  # the backbone's values written out
    assert "extends" not in shown and "fragment" not in shown


def test_a_bad_key_in_a_base_fails_the_run_with_one_line_naming_it(tmp_path: Path) -> None:
    spec = files(
        tmp_path,
        spec="extends: [base.yaml, parts/data.yaml]\nname: s\n",
        base=BASE,
        parts__data="data: {batch_sise: 4}\n",
    )
    proc = run_cli("run", str(spec), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"{tmp_path / 'parts' / 'data.yaml'}: data.batch_sise: unknown key" in lines[0]
    assert not (tmp_path / "out").exists()
    proc = run_cli("run", "problems/base/demo.yaml")
    assert proc.returncode == 2 and "not a runnable spec" in proc.stderr

"""The pictures every run folder gets: present, non-trivial, and drawn without randomness."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import mlo_graph, mlo_spec, tiny_bundle, tiny_spec
from PIL import Image

from metamask.pictures.curves import read_metrics
from metamask.pictures.run_pictures import draw_run_pictures
from metamask.run import run_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _non_trivial(path: Path) -> None:
    """A real PNG of a sensible size that is not one colour."""
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", path
    image = Image.open(path)
    assert image.width >= 400 and image.height >= 300, (path, image.size)
    pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10, path  # drawn on, not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, path


@pytest.mark.parametrize("modality", ["image2d", "signal1d", "tokens"])
def test_a_run_folder_gets_loss_curves_and_reconstructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modality: str
) -> None:
    bundle = tiny_bundle(modality)
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = tiny_spec(train={"steps": 4, "log_every": 1}, eval={"enabled": False})
    run_spec(spec, tmp_path, progress=False)
    for name in ("losses.png", "reconstructions.png"):
        _non_trivial(tmp_path / name)
    assert not (tmp_path / "masks.png").exists()  # MetaMAE masks at random: no learned masker
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert set(rows) == {"adapt", "reconstruct"} and len(rows["reconstruct"]) == 4


def test_a_learned_masker_run_also_gets_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle("signal1d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = mlo_spec(mlo_graph(), train={"steps": 2}, eval={"enabled": False})
    run_spec(spec, tmp_path, progress=False)
    for name in ("losses.png", "reconstructions.png", "masks.png", "mask_diversity.png"):
        _non_trivial(tmp_path / name)


def test_pictures_draw_nothing_at_random_and_leave_the_model_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle("image2d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = mlo_spec(mlo_graph(), train={"steps": 2}, eval={"enabled": False})
    graph = run_spec(spec, tmp_path / "run", progress=False).graph
    graph.train()
    params = {k: v.clone() for k, v in graph.mae.state_dict().items()}
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    first = draw_run_pictures(graph, bundle.val, tmp_path / "a", tmp_path / "run/metrics.jsonl")
    again = draw_run_pictures(graph, bundle.val, tmp_path / "b", tmp_path / "run/metrics.jsonl")
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1][1], np.random.get_state()[1])
    assert states[2] == random.getstate()
    assert graph.mae.training  # modes restored
    for key, value in graph.mae.state_dict().items():
        assert torch.equal(value, params[key]), key
    names = ["losses.png", "reconstructions.png", "masks.png", "mask_diversity.png"]
    assert [p.name for p in first] == names
    for a, b in zip(first, again, strict=True):  # the same examples and masks every time
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), a.name


@pytest.mark.parametrize(("domain", "axis"), [("tabular", "feature (column)"), ("", "time step")])
def test_reconstructions_of_table_rows_label_features_not_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, domain: str, axis: str
) -> None:
    """A tabular dataset's 1-D rows are columns: the x axis says feature, not time step."""
    from helpers import TINY_INFOS

    from metamask.models.mae import MaskedAutoencoder
    from metamask.pictures import reconstructions

    info = dataclasses.replace(TINY_INFOS["signal1d"], domain=domain)
    mae = MaskedAutoencoder(info, tiny_spec().model)
    drawn = []
    monkeypatch.setattr(reconstructions, "save_figure", lambda fig, path: drawn.append(fig) or path)
    x = torch.randn(2, *info.input_shape)
    reconstructions.reconstruction_picture(mae, x, tmp_path / "r.png")
    label = drawn[0].axes[-1].get_xlabel()
    assert label.startswith(f"{axis} (grey: masked tokens"), label


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_compose_train_writes_the_pictures_metamask_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose.train(graph, out_dir=) and metamask run (run_spec) draw the same pictures."""
    from metamask.compose import build_graph, train

    bundle = tiny_bundle("signal1d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = mlo_spec(mlo_graph(), train={"steps": 2}, eval={"enabled": False})
    run_spec(spec, tmp_path / "run", progress=False)
    train(build_graph(spec, bundle, torch.device("cpu")), tmp_path / "api")
    names = ["losses.png", "mask_diversity.png", "masks.png", "reconstructions.png"]
    for folder in ("run", "api"):
        assert sorted(p.name for p in (tmp_path / folder).glob("*.png")) == names, folder
        for name in names:
            _non_trivial(tmp_path / folder / name)


def test_a_graph_of_custom_nodes_gets_its_loss_curves_only(tmp_path: Path) -> None:
    """No auto-encoder in the graph: losses.png, and no model is built for a picture."""
    from metamask.compose import new_graph, train

    weight = torch.nn.Parameter(torch.tensor([3.0]))
    module = torch.nn.Module()
    module.register_parameter("w", weight)
    g = new_graph(None, steps=6, log_every=1)
    g.node(
        "fit",
        module=module,
        loss=lambda batch: (weight - 1.0).pow(2).sum(),
        optimizer={"type": "sgd", "lr": 0.1, "weight_decay": 0.0},
    )
    graph = g.build()
    train(graph, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["losses.png"]
    _non_trivial(tmp_path / "losses.png")
    assert "mae" not in graph.context.shared

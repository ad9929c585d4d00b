"""Evaluation after pretraining: full fine-tuning selected on validation, the masking picture."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from helpers import MAE_GRAPH, mlo_graph, mlo_spec, tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.config import FinetuneSpec
from metamask.downstream.finetune import fine_tune
from metamask.models.mae import MaskedAutoencoder
from metamask.pictures.maskers import learned_masker, masking_picture, save_mask_picture
from metamask.run import run_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _model(modality: str = "image2d") -> MaskedAutoencoder:
    bundle = tiny_bundle(modality)
    return MaskedAutoencoder(bundle.info, tiny_spec().model)


def test_fine_tuning_selects_on_validation_and_leaves_the_pretrained_model_alone() -> None:
    bundle = tiny_bundle("image2d", n=48)
    model = _model()
    before = copy.deepcopy(model.state_dict())
    spec = FinetuneSpec(epochs=4, lr=1e-2, batch_size=8, warmup_epochs=1)
    result = fine_tune(model, bundle, spec, torch.device("cpu"), seed=0)
    assert len(result.curve) == 4 and 1 <= result.epoch <= 4
    best = max(row["val"] for row in result.curve)
    assert result.val == best and result.curve[result.epoch - 1]["val"] == best
    assert result.test == result.curve[result.epoch - 1]["test"]  # test read at that epoch
    assert result.curve[-1]["loss"] < result.curve[0]["loss"]  # it trains
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # fine-tuned a copy
    again = fine_tune(model, bundle, spec, torch.device("cpu"), seed=0)
    assert again.curve == result.curve  # seeded: head init, order, dropout


def test_fine_tuning_refuses_zero_epochs() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fine_tune(_model(), tiny_bundle("image2d"), FinetuneSpec(epochs=0), torch.device("cpu"))


@pytest.mark.parametrize("modality", ["image2d", "signal1d"])
def test_the_masking_picture_is_written(tmp_path: Path, modality: str) -> None:
    graph_spec = mlo_graph(pretrain={"masker": {"type": "token_mlp", "hidden": 8}})
    graph = build_graph(mlo_spec(graph_spec), tiny_bundle(modality), torch.device("cpu"))
    masker = learned_masker(graph)
    assert masker is graph.nodes["mask"].masker
    x = torch.stack([graph.context.bundle.val[i][0] for i in range(3)])
    path = masking_picture(graph.mae, masker, x, tmp_path / "m.png", title="t")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    assert masker.training  # modes restored


def test_no_picture_without_a_learned_masker(tmp_path: Path) -> None:
    graph = build_graph(tiny_spec(MAE_GRAPH), tiny_bundle("image2d"), torch.device("cpu"))
    assert save_mask_picture(graph, graph.context.bundle.val, tmp_path) is None
    assert not (tmp_path / "masks.png").exists()


def test_run_spec_reports_fine_tuning_and_draws_the_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle("image2d")
    monkeypatch.setattr("metamask.run.load_pretrain_data", lambda spec: bundle)
    spec = mlo_spec(
        mlo_graph(),
        train={"steps": 4},
        eval={"probe": {"epochs": 2}, "finetune": {"epochs": 2, "batch_size": 8}},
    )
    result = run_spec(spec, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert result.finetune is not None and saved["finetune"]["epoch"] in (1, 2)
    assert saved["finetune"]["metric"] == "accuracy" and saved["test"] is not None
    assert (tmp_path / "masks.png").is_file()


def test_the_docs_snippet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "mlomae.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    monkeypatch.chdir(root)
    scope: dict[str, object] = {}
    exec(compile(code, "docs/mlomae.md", "exec"), scope)
    mask = scope["mask"]
    assert mask.local_step == 2 and "loss" in mask.last_metrics  # type: ignore[attr-defined]

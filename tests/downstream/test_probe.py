"""The linear probe: metrics, and model selection on validation rather than test."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bundle
from sklearn.metrics import f1_score

from metamask.config import ProbeSpec, spec_from_dict
from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo
from metamask.downstream.probe import linear_probe, score
from metamask.models.mae import MaskedAutoencoder


def test_metrics() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 1, 0])
    assert score("accuracy", logits, y) == 0.75
    assert score("weighted_f1", logits, y) == pytest.approx(
        f1_score(y, logits.argmax(1), average="weighted")
    )
    assert score(
        "binary_accuracy", torch.tensor([[1.0], [-1.0], [0.5]]), torch.tensor([1, 1, 1])
    ) == pytest.approx(2 / 3)
    assert score(
        "spearman", torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([10.0, 20.0, 30.0])
    ) == pytest.approx(1.0)
    tokens = torch.zeros(1, 3, 4)
    tokens[0, :, 1] = 1
    assert score("token_accuracy", tokens, torch.tensor([[1, 2, -1]])) == 0.5  # padding unscored


class Identity(torch.nn.Module):
    """A stand-in encoder whose features are the inputs themselves."""

    def features(self, x: torch.Tensor, pool: str = "global") -> torch.Tensor:
        return x


def separable(n: int, flip: bool = False) -> ArrayDataset:
    g = torch.Generator().manual_seed(n)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) * 0.3
    x[:, 0] += (1 - y if flip else y) * 2.0 - 1.0
    return ArrayDataset(x, y)


def test_probe_learns_and_selects_epoch_on_validation() -> None:
    info = DatasetInfo("sep", "signal1d", (1, 4), (1,), 3, "accuracy")
    bundle = DataBundle(info, separable(200), separable(60), separable(60))
    result = linear_probe(Identity(), bundle, ProbeSpec(epochs=20, lr=1e-2), torch.device("cpu"))  # type: ignore[arg-type]
    assert result.test > 0.95
    best_val = max(row["val"] for row in result.curve)
    assert result.val == best_val and result.curve[result.epoch - 1]["val"] == best_val
    # test labels flipped: test accuracy collapses but the selection ignores it
    flipped = DataBundle(info, separable(200), separable(60), separable(60, flip=True))
    bad = linear_probe(Identity(), flipped, ProbeSpec(epochs=20, lr=1e-2), torch.device("cpu"))  # type: ignore[arg-type]
    assert bad.test < 0.1 and bad.epoch == result.epoch


def test_probe_runs_on_a_real_encoder() -> None:
    bundle = tiny_bundle("image2d")
    spec = spec_from_dict(
        {
            "name": "t",
            "data": {"dataset": "x"},
            "graph": {"nodes": {}},
            "model": {"backbone": "tiny"},
        }
    )
    result = linear_probe(
        MaskedAutoencoder(bundle.info, spec.model), bundle, ProbeSpec(epochs=2), torch.device("cpu")
    )
    assert 0.0 <= result.test <= 1.0 and len(result.curve) == 2


class Shrunk(torch.nn.Module):
    """Features that vary between samples a thousand times less than they are large (as
    MetaMAE's pooled features on digits: 0.010 across samples vs 0.86 in size)."""

    def features(self, x: torch.Tensor, pool: str = "global") -> torch.Tensor:
        return 5.0 + 1e-3 * x


def test_standardizing_lets_the_probe_find_a_separation_hidden_by_feature_scale() -> None:
    info = DatasetInfo("sep", "signal1d", (1, 4), (1,), 3, "accuracy")
    bundle = DataBundle(info, separable(200), separable(60), separable(60))
    raw = linear_probe(
        Shrunk(), bundle, ProbeSpec(epochs=20, lr=1e-2, standardize=False), torch.device("cpu")
    )  # type: ignore[arg-type]
    std = linear_probe(Shrunk(), bundle, ProbeSpec(epochs=20, lr=1e-2), torch.device("cpu"))  # type: ignore[arg-type]
    assert ProbeSpec().standardize  # the default
    assert raw.test < 0.8 and std.test > 0.95
    # the same probe on unshrunk features: standardizing is an affine change of the features,
    # which a linear head absorbs, so the scores match
    same = linear_probe(Identity(), bundle, ProbeSpec(epochs=20, lr=1e-2), torch.device("cpu"))  # type: ignore[arg-type]
    assert same.test == pytest.approx(std.test, abs=1e-6)

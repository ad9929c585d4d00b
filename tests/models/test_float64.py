"""A float64 run (train.dtype: float64): parameters, sin-cos positions and inputs in float64,
so gradients can be checked against finite differences to ~1e-9 (float32 stops near 1e-3)."""

from __future__ import annotations

import pytest
import torch
from helpers import MAE_GRAPH, METAMAE_GRAPH, tiny_bundle, tiny_spec

from metamask.compose import build_graph
from metamask.errors import ConfigError
from metamask.models.posembed import sincos_grid, with_cls_row

pytestmark = pytest.mark.usefixtures("one_thread")


def float64_graph(graph: dict, modality: str = "image2d") -> object:
    spec = tiny_spec(graph, train={"dtype": "float64"})
    return build_graph(spec, tiny_bundle(modality), torch.device("cpu"))


def test_the_model_and_its_positions_are_built_in_float64() -> None:
    graph = float64_graph(METAMAE_GRAPH)
    mae = graph.mae
    assert {p.dtype for p in mae.parameters()} == {torch.float64}
    enc, dec = mae.encoder, mae.decoder
    exact = sincos_grid(enc.width, enc.grid, torch.float64)
    assert torch.equal(enc.pos_embed[0], exact)  # computed in float64, not a cast
    assert not torch.equal(exact, sincos_grid(enc.width, enc.grid).double())
    assert torch.equal(dec.pos_embed[0], with_cls_row(sincos_grid(dec.width, dec.grid, torch.float64)))
    projector = graph.nodes["reconstruct"].outer.projector
    assert {p.dtype for p in projector.parameters()} == {torch.float64}
    graph.train()
    graph.step()  # float32 inputs are taken in float64
    assert torch.isfinite(torch.tensor(graph.nodes["reconstruct"].last_metrics["loss"]))


@pytest.mark.parametrize("modality", ["signal1d", "tokens"])
def test_gradients_match_central_differences_in_float64(modality: str) -> None:
    graph = float64_graph(MAE_GRAPH, modality)
    node = graph.nodes["reconstruct"]
    node.module.eval()  # no dropout: the loss is a function of the parameters alone
    batch = tuple(t for t in next(iter(node.loaders[0])))
    params = [p for p in node.module.parameters() if p.requires_grad]

    def loss() -> torch.Tensor:
        torch.manual_seed(5)  # the same random masks at every evaluation
        return node.training_step(batch)["loss"]

    grads = torch.autograd.grad(loss(), params, allow_unused=True)
    g = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    analytic = sum(
        float((gr * d).sum()) for gr, d in zip(grads, direction, strict=True) if gr is not None
    )
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
        plus = float(loss())
        for p, d in zip(params, direction, strict=True):
            p.sub_(2 * eps * d)
        minus = float(loss())
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
    numeric = (plus - minus) / (2 * eps)
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


def test_float64_refuses_a_lower_precision() -> None:
    spec = tiny_spec(MAE_GRAPH, train={"dtype": "float64", "precision": "bf16"})
    with pytest.raises(ConfigError, match=r"train.precision: 'bf16' .* use train.precision: fp32"):
        build_graph(spec, tiny_bundle("signal1d"), torch.device("cpu"))

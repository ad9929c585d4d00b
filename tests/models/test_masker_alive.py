"""The options that keep a learned masker alive (issue 23), each against a hand-computed case:
``temperature``, ``keep_mean``, ``weighting: normalised`` and the mask node's ``max_step``;
each off by default, and each bad value refused in one line with exit 2 on the command line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_runs import run as run_cli
from helpers import mlo_graph, mlo_spec, tiny_bundle

from metamask.cli import main
from metamask.compose import build_graph
from metamask.errors import ConfigError
from metamask.losses import probability_weighted_loss
from metamask.models.maskers import (
    LearnedMasker,
    MaskerSpec,
    TokenMLPMasker,
    build_masker,
    mean_matched_probabilities,
)
from metamask.models.masking import Masks
from metamask.optim import clip_update

REPO = Path(__file__).resolve().parents[2]
MLOMAE = str(REPO / "problems/mlomae-digits.yaml")


class FixedLogits(LearnedMasker):
    """A masker whose logits are the tokens' first feature (so a test sets them by hand)."""

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[..., 0]


def tokens_with_logits(*rows: list[float]) -> torch.Tensor:
    z = torch.tensor(rows, dtype=torch.float64)
    return z.unsqueeze(-1).requires_grad_(True)  # (B, L, 1)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_the_published_defaults_are_plain_sigmoid_and_count_weighting() -> None:
    spec = MaskerSpec()
    assert (spec.temperature, spec.keep_mean, spec.weighting) == (1.0, False, "count")
    masker = FixedLogits(0.5)
    tokens = tokens_with_logits([0.3, -1.2, 2.0])
    assert torch.equal(masker.probabilities(tokens), torch.sigmoid(tokens[..., 0]))


def test_temperature_divides_the_logits() -> None:
    masker = FixedLogits(0.5, temperature=4.0)
    p = masker.probabilities(tokens_with_logits([2.0, -6.0]))
    assert p[0].tolist() == pytest.approx([sigmoid(0.5), sigmoid(-1.5)], abs=1e-15)


def test_keep_mean_two_tokens_is_the_sigmoid_of_half_the_difference() -> None:
    """L = 2, r = 1/2: p1 + p2 = 1 forces b = (z1 + z2) / 2, so p1 = sigmoid((z1 - z2) / 2T)
    and dp1/dz1 = sigmoid'((z1 - z2) / 2T) / 2T."""
    temperature = 2.0
    masker = FixedLogits(0.5, keep_mean=True, temperature=temperature)
    tokens = tokens_with_logits([3.0, -1.0])
    p = masker.probabilities(tokens)
    u = (3.0 - (-1.0)) / (2 * temperature)
    assert p[0].tolist() == pytest.approx([sigmoid(u), 1 - sigmoid(u)], abs=1e-13)
    (grad,) = torch.autograd.grad(p[0, 0], tokens)
    slope = sigmoid(u) * (1 - sigmoid(u)) / (2 * temperature)
    assert grad[0, :, 0].tolist() == pytest.approx([slope, -slope], abs=1e-12)


def test_keep_mean_equal_logits_give_the_ratio_everywhere_and_order_is_kept() -> None:
    masker = FixedLogits(0.75, keep_mean=True)
    p = masker.probabilities(tokens_with_logits([5.0, 5.0, 5.0, 5.0], [9.0, -3.0, 0.5, 30.0]))
    assert p[0].tolist() == pytest.approx([0.75] * 4, abs=1e-12)
    assert p.mean(dim=1).tolist() == pytest.approx([0.75, 0.75], abs=1e-12)
    assert p[1].argsort().tolist() == [1, 2, 0, 3]  # the shift keeps the order: same masks


def test_keep_mean_gradient_equals_finite_differences_of_the_exact_shift() -> None:
    """Against central differences of the bisection-only map (float64), in a random direction;
    the gradient of the mean is zero (it is held at r)."""
    g = torch.Generator().manual_seed(0)
    z = (2 * torch.randn(3, 7, generator=g, dtype=torch.float64)).requires_grad_(True)
    direction = torch.randn(3, 7, generator=g, dtype=torch.float64)
    weights = torch.rand(3, 7, generator=g, dtype=torch.float64)
    p = mean_matched_probabilities(z, 0.3, temperature=0.7)
    (grad,) = torch.autograd.grad((p * weights).sum(), z)
    eps = 1e-6
    with torch.no_grad():
        up = (mean_matched_probabilities(z + eps * direction, 0.3, 0.7) * weights).sum()
        down = (mean_matched_probabilities(z - eps * direction, 0.3, 0.7) * weights).sum()
    fd = float((up - down) / (2 * eps))
    assert float((grad * direction).sum()) == pytest.approx(fd, rel=1e-6)
    (mean_grad,) = torch.autograd.grad(mean_matched_probabilities(z, 0.3, 0.7).sum(), z)
    assert mean_grad.abs().max() < 1e-12


def masks_of(masked: list[list[int]]) -> Masks:
    mask = torch.tensor(masked, dtype=torch.float64)
    return Masks.from_scores(mask, int((1 - mask[0]).sum()))


class IdentityMAE:
    """decode -> the selected targets' losses are the targets themselves (hand-set)."""

    def decode(self, latent: Any, masks: Masks, select: torch.Tensor) -> torch.Tensor:
        return torch.zeros(int(select.sum()))

    def token_losses(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return target + 0 * prediction


@pytest.mark.parametrize("weighting", ["count", "normalised"])
def test_weighting_two_masked_tokens_by_hand(weighting: str) -> None:
    """Masked losses [1, 3] with p [0.25, 0.75] (a third token kept, p 0.9):
    count: (0.25 + 2.25) / 2 = 1.25, d/dp = loss / 2 = [0.5, 1.5];
    normalised: 2.5 / 1.0 = 2.5, d/dp = (loss - 2.5) / 1.0 = [-1.5, 0.5], orthogonal to p."""
    masks = masks_of([[1, 1, 0]])
    target = torch.tensor([[1.0, 3.0, 7.0]], dtype=torch.float64)
    prob = torch.tensor([[0.25, 0.75, 0.9]], dtype=torch.float64, requires_grad=True)
    out = probability_weighted_loss(IdentityMAE(), None, masks, target, prob, weighting)  # type: ignore[arg-type]
    (grad,) = torch.autograd.grad(out["loss"], prob)
    if weighting == "count":
        assert float(out["loss"].detach()) == pytest.approx(1.25)
        assert grad[0].tolist() == pytest.approx([0.5, 1.5, 0.0])
    else:
        assert float(out["loss"].detach()) == pytest.approx(2.5)
        assert grad[0].tolist() == pytest.approx([-1.5, 0.5, 0.0])
        assert float((grad * prob.detach()).sum()) == pytest.approx(0.0, abs=1e-15)  # scale-inv.
    assert float(out["reconstruction"]) == pytest.approx(2.0)


def test_clip_update_scales_a_long_step_back_and_leaves_a_short_one() -> None:
    """SGD, lr 1, gradient [3, 4] on one parameter and [0] on another: the step has norm 5;
    max 1 scales it to [-0.6, -0.8]; max 10 leaves it."""
    for max_norm, expected, clipped in ((1.0, [-0.6, -0.8], True), (10.0, [-3.0, -4.0], False)):
        a = torch.zeros(2, requires_grad=True)
        b = torch.ones(1, requires_grad=True)
        opt = torch.optim.SGD([a, b], lr=1.0)
        a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.zeros(1)
        before = [a.detach().clone(), b.detach().clone()]
        opt.step()
        norm, was_clipped = clip_update([a, b], before, max_norm)
        assert norm == pytest.approx(5.0) and was_clipped is clipped
        assert a.tolist() == pytest.approx(expected) and b.tolist() == [1.0]


def test_max_step_bounds_every_masker_step_in_a_graph() -> None:
    """A tiny MLO-MAE graph (masker lr 1e-1): each masker step is at most max_step long."""
    adamw = {"type": "adamw", "lr": 0.1}
    spec = mlo_spec(mlo_graph(mask={"optimizer": adamw, "max_step": 1e-3}))
    graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    mask = graph.nodes["mask"]
    graph.train()
    lengths = []
    for _ in range(4):  # two cycles: two masker steps
        before = [p.detach().clone() for p in mask.trainable_parameters()]
        graph.step()
        after = [p.detach() for p in mask.trainable_parameters()]
        moved = torch.stack([(a - b).double().pow(2).sum() for a, b in zip(after, before, strict=True)])
        lengths.append(float(moved.sum().sqrt()))
    steps = [length for length in lengths if length > 0]
    assert len(steps) == 2 and all(s == pytest.approx(1e-3, rel=1e-4) for s in steps), lengths
    assert mask.last_metrics["step_norm"] > 1e-3 and mask.last_metrics["step_clipped"] == 1.0


def test_the_options_reach_the_pretrain_node_from_a_spec() -> None:
    masker_spec = {"type": "token_mlp", "hidden": 8, "temperature": 2.0, "keep_mean": True}
    masker_spec["weighting"] = "normalised"
    spec = mlo_spec(mlo_graph(pretrain={"masker": masker_spec}), model={"mask_ratio": 0.75})
    graph = build_graph(spec, tiny_bundle("image2d"), torch.device("cpu"))
    pretrain = graph.nodes["pretrain"]
    masker = pretrain.masker
    assert isinstance(masker, TokenMLPMasker)
    assert (masker.temperature, masker.keep_mean, masker.weighting) == (2.0, True, "normalised")
    graph.train()
    graph.step()
    x = pretrain.cur_batch.x
    with torch.no_grad():
        p = masker.probabilities(pretrain.mae.embed(x))
    assert p.mean(dim=1).tolist() == pytest.approx([0.75] * x.shape[0], abs=1e-5)


def test_conflicting_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="keep_mean: holds each input's mean"):
        build_masker(MaskerSpec(keep_mean=True, ratio_bounds=(0.2, 0.8)), 0.5, 4, 8)
    with pytest.raises(ConfigError, match="a random masker has none"):
        build_masker(MaskerSpec(type="random", temperature=2.0), 0.5, 4, 8)


BAD = [
    ("graph.nodes.pretrain.masker.temperature=0", "temperature: expected a number > 0, got 0"),
    ("graph.nodes.pretrain.masker.weighting=mean", "weighting"),
    ("graph.nodes.mask.max_step=-1", "max_step: expected a number > 0, got -1"),
]


@pytest.mark.parametrize(("setting", "message"), BAD)
def test_bad_values_are_one_line_and_exit_2(
    setting: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", MLOMAE, "--set", "model.backbone=tiny", "--set", setting, "--quiet"]
    code = main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_keep_mean_with_ratio_bounds_on_the_real_command_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        MLOMAE,
        "--set",
        "model.backbone=tiny",
        "--set",
        "graph.nodes.pretrain.masker.keep_mean=true",
        "--set",
        "graph.nodes.pretrain.masker.ratio_bounds=[0.2,0.8]",
        "--quiet",
        "--out",
        str(out),
    )
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert "keep_mean" in err and "ratio_bounds" in err
    assert not out.exists()

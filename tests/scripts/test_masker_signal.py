"""examples/masker_signal.py (issue 23's horizon and noise levers): its measures on hand-made
maps and gradients, the probability change checked against autograd, the spec each window
resolves to, hypergradients that repeat exactly, bad flags refused, and a --quick run end to
end that a rerun reads back without computing anything."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from metamask.spec_data import load_pretrain_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> Any:
    path = ROOT / "examples/masker_signal.py"
    spec = importlib.util.spec_from_file_location("masker_signal", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_auroc_and_the_shares_on_hand_made_maps(example: Any) -> None:
    informative = np.array([True, False, False, True])
    dp = np.array([[0.9, 0.1, 0.2, 0.8], [0.3, 0.3, 0.1, -1.0]])
    # row 1: both informative above both noise (1); row 2: 0.3 ties one and beats one, -1 loses
    assert example.auroc(dp, informative) == pytest.approx((1.0 + (0.5 + 1.0) / 4) / 2)
    uniform = np.array([[-1.0] * 4, [-3.0] * 4])  # a constant per image
    assert example.shares(uniform) == pytest.approx(
        {"uniform": 1.0, "positional": 0.0, "per_image": 0.0}
    )
    positional = np.tile([1.0, -2.0, 0.5, 0.5], (3, 1))  # one map, zero mean, every image
    assert example.shares(positional)["positional"] == pytest.approx(1.0)
    interaction = np.array([[1.0, -1.0], [-1.0, 1.0]])  # rows and columns sum to 0
    assert example.shares(interaction)["per_image"] == pytest.approx(1.0)
    mixed = uniform[:, :2] + interaction  # orthogonal parts: the energies add
    split = example.shares(mixed)
    assert sum(split.values()) == pytest.approx(1.0)
    assert split["uniform"] == pytest.approx((2 * 2 * 2.0**2 + 2 * 2 * 1.0) / (mixed**2).sum())


def test_the_predicted_cosine_of_averages_matches_its_closed_form(example: Any) -> None:
    generator = torch.Generator().manual_seed(0)
    d, n, sigma = 400, 4000, 2.0
    mu = torch.zeros(d)
    mu[:4] = 10.0  # |mu|^2 = 400; tr(Sigma) = d sigma^2 = 1600
    grads = mu + sigma * torch.randn(n, d, generator=generator)
    for m in (1, 4, 16):
        exact = 400.0 / (400.0 + 1600.0 / m)
        assert example.predicted_cosine(grads, m) == pytest.approx(exact, abs=0.02)
    noise = torch.randn(n, d, generator=generator)  # no mean: about 0
    assert abs(example.predicted_cosine(noise, 1)) < 0.01
    a, b = torch.tensor([1.0, -2.0, 3.0, 0.5]), torch.tensor([2.0, -1.0, -3.0, 0.1])
    assert example.sign_agreement(a, b) == pytest.approx(0.75)
    assert example.cosine(a, 2 * a) == pytest.approx(1.0)


def test_summaries_group_disjoint_draws(example: Any) -> None:
    informative = np.array([True, False])
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
    changes = np.stack([np.full((1, 2), float(i)) for i in range(4)])  # (draws, N, L)
    row = example.summarize(grads, changes, 2, informative)
    assert row["groups"] == 2  # [0, 1] and [2, 3]
    # the groups' means: (0.5, 0.5) and (0, 1); cosine 1/sqrt(2); signs: (+,+) vs (0,+)
    assert row["cosine"] == pytest.approx(2**-0.5) and row["sign"] == pytest.approx(0.5)
    assert example.summarize(grads, changes, 8, informative) is None  # no complete group


@pytest.fixture(scope="module")
def tiny(example: Any) -> tuple[Any, Any]:
    spec = example.spec_for(1, "tiny", 0, [])
    return spec, load_pretrain_data(spec)


def test_each_window_resolves_to_the_exact_estimator_on_both_edges(example: Any) -> None:
    for window in (1, 8):
        spec = example.spec_for(window, "small", 3, ["data.batch_size=16"])
        nodes = spec.graph.nodes
        assert spec.data.dataset == "controlled_patches" and spec.seed == 3
        assert nodes["pretrain"].unroll_steps == window
        assert nodes["pretrain"].hypergradient.type == "unrolled"
        assert nodes["head"].hypergradient.type == "unrolled"
        assert nodes["pretrain"].optimizer.warmup_steps == 0
        assert dict(nodes["pretrain"].options)["masker"]["type"] == "flat_mlp"
        assert spec.model.encoder.width == 128 and spec.data.batch_size == 16


def test_the_probability_change_is_minus_the_jacobian_times_the_gradient(
    example: Any, tiny: tuple[Any, Any]
) -> None:
    reference = example.Reference(*tiny)
    masker = reference.masker
    params = [p for _, p in masker.named_parameters() if p.requires_grad]
    theta = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    generator = torch.Generator().manual_seed(1)
    g1, g2 = (torch.randn(theta.numel(), generator=generator) for _ in range(2))
    dp = reference.change(g1).double()

    def probabilities_at(values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(values, params)
            return masker.probabilities(reference.tokens)

    # against central differences in float64 (a step of norm 1e-6 crosses few ReLU kinks)
    eta = 1e-6 / float(g1.norm())
    numeric = (probabilities_at(theta - eta * g1) - probabilities_at(theta + eta * g1)) / (2 * eta)
    probabilities_at(theta)
    assert float((numeric - dp).norm() / dp.norm()) < 1e-3
    # and a descent step's sign: the change lowers <u, p> for u = -dp
    assert float((dp * dp).sum()) > 0
    both = reference.change(g1 + 3 * g2).double()  # linear in g
    summed = dp + 3 * reference.change(g2).double()
    assert float((both - summed).norm() / both.norm()) < 1e-6  # float32 rounding only
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in params]), theta)


def test_a_hypergradient_repeats_exactly_and_draws_differ(
    example: Any, tiny: tuple[Any, Any]
) -> None:
    spec, data = tiny
    first = example.hypergradient(spec, data, 0, "independent")
    assert first["names"] == example.Reference(spec, data).names
    assert torch.equal(first["grad"], example.hypergradient(spec, data, 0, "independent")["grad"])
    other = example.hypergradient(spec, data, 1, "independent")["grad"]
    assert first["grad"].norm() > 0 and not torch.allclose(first["grad"], other)


def test_bad_flags_are_one_line_and_exit_2(
    example: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for argv, message in (
        (["--horizons", "0", "2"], "--horizons: expected windows K >= 1, got [0, 2]"),
        (["--quick", "--batches", "8"], "--batches: expected 1 <= m <= --draws (4), got [8]"),
    ):
        with pytest.raises(SystemExit) as stopped:
            example.parse(argv)
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err
    out = tmp_path / "never"
    assert example.main(["--quick", "--set", "train.stepz=3", "--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_quick_run_end_to_end_and_a_rerun_computes_nothing(example: Any, tmp_path: Path) -> None:
    out = tmp_path / "quick"
    argv = ["--quick", "--out", str(out)]
    assert example.main(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert table["backbone"] == "tiny" and table["computed"] == 4 * 2 * 2 + 2  # + memory
    assert {(r["K"], r["mode"], r["m"]) for r in table["rows"]} == {
        (k, mode, m) for k in (1, 2) for mode in ("independent", "crn") for m in (1, 2)
    }
    for row in table["rows"]:
        assert 0.0 <= row["auroc"] <= 1.0 and row["groups"] == 4 // row["m"]
        assert row["uniform"] + row["positional"] + row["per_image"] == pytest.approx(1.0)
        assert row["seconds"] > 0 and row["peak_mib"] >= row["before_mib"] > 0
    assert 0.3 < table["random_direction"]["auroc"] < 0.7
    assert set(table["dropout_cosine"]) == {"1", "2"}
    assert "| 2 | crn | 4 | 2 | 2 |" in (out / "table.md").read_text()
    assert (out / "signal.png").stat().st_size > 10_000
    draw = out / "draws" / "K2-crn" / "draw003.pt"
    stamp = draw.stat().st_mtime_ns
    assert example.main(argv) == 0
    assert json.loads((out / "table.json").read_text())["computed"] == 0
    assert draw.stat().st_mtime_ns == stamp

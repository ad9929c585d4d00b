"""One graph, three hypergradient estimators: tune a ridge penalty by bilevel optimization.

    python examples/swap_hypergradient.py

The lower node ``fit`` trains a linear model on 30 noisy training rows (20 features, so the
penalty matters) with SGD, ``unroll_steps`` steps per window; the upper node ``tune`` moves
``log lambda`` to lower the validation loss. Only the estimator on ``fit`` changes between
runs (``use_estimator``): ``darts`` (identity inverse Hessian), ``cg`` (conjugate gradient on
the lower Hessian) and ``unrolled`` (exact backpropagation through the window's SGD steps).
The table compares, per estimator: the hypergradient at the start against the closed form
(at the lower optimum for darts/cg; of the unrolled objective for unrolled), the tuned
lambda, the validation loss reached, and the wall time; the best lambda on a fine grid
(closed-form ridge fits) is the reference.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metamask.graph import GraphEngine
from metamask.hypergrad import use_estimator
from metamask.nodes.base import Node
from metamask.nodes.differentiable import DifferentiableNode

DTYPE = torch.float64
FEATURES, TRAIN, VALID, UNROLL, ITERATIONS, LR = 20, 30, 200, 20, 60, 0.05


def make_data(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(FEATURES, generator=g, dtype=DTYPE) * (
        torch.rand(FEATURES, generator=g) < 0.3
    )
    x = torch.randn(TRAIN, FEATURES, generator=g, dtype=DTYPE)
    xv = torch.randn(VALID, FEATURES, generator=g, dtype=DTYPE)
    return {
        "x": x, "y": x @ w_true + torch.randn(TRAIN, generator=g, dtype=DTYPE),
        "xv": xv, "yv": xv @ w_true + torch.randn(VALID, generator=g, dtype=DTYPE),
    }  # fmt: skip


class Penalty(nn.Module):
    """The upper variable: log lambda."""

    def __init__(self) -> None:
        super().__init__()
        self.log_lam = nn.Parameter(torch.tensor(math.log(1e-2), dtype=DTYPE))


class Fit(DifferentiableNode):
    """Lower: mean squared error + lambda ||w||^2 / 2 on the training rows."""

    def __init__(self, data: dict[str, torch.Tensor], penalty: Penalty) -> None:
        module = nn.Linear(FEATURES, 1, bias=False, dtype=DTYPE)
        super().__init__(
            "fit", module, torch.optim.SGD(module.parameters(), lr=LR), unroll_steps=UNROLL
        )
        self.data, self.penalty = data, penalty

    def get_batch(self) -> Any:
        return (self.data["x"], self.data["y"])

    def training_step(self, batch: Any) -> torch.Tensor:
        x, y = batch
        w = self.module.weight
        return ((self(x).squeeze(-1) - y) ** 2).mean() / 2 + self.penalty.log_lam.exp() * (
            w * w
        ).sum() / 2


class Tune(Node):
    """Upper: validation loss of the fitted model; its optimizer moves log lambda."""

    def __init__(self, data: dict[str, torch.Tensor], penalty: Penalty, fit: Fit) -> None:
        super().__init__("tune", penalty, torch.optim.Adam(penalty.parameters(), lr=0.1))
        self.data, self.fit_node = data, fit
        self.first_grad: float | None = None

    def get_batch(self) -> Any:
        return (self.data["xv"], self.data["yv"])

    def training_step(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return ((self.fit_node.module(x).squeeze(-1) - y) ** 2).mean() / 2

    def grad_callback(self) -> None:
        if self.first_grad is None:
            self.first_grad = float(self.module.log_lam.grad)


def ridge_solution(data: dict[str, torch.Tensor], lam: float) -> torch.Tensor:
    x, y = data["x"], data["y"]
    return torch.linalg.solve(
        x.T @ x / TRAIN + lam * torch.eye(FEATURES, dtype=DTYPE), x.T @ y / TRAIN
    )


def valid_loss(data: dict[str, torch.Tensor], w: torch.Tensor) -> float:
    return float(((data["xv"] @ w - data["yv"]) ** 2).mean() / 2)


def closed_form_hypergradient(data: dict[str, torch.Tensor], lam: float, estimator: str) -> float:
    """d valid / d log(lambda): at the optimum (darts, cg), or of UNROLL SGD steps from w = 0."""
    x, y, xv, yv = data["x"], data["y"], data["xv"], data["yv"]
    h = x.T @ x / TRAIN + lam * torch.eye(FEATURES, dtype=DTYPE)
    if estimator != "unrolled":
        w = ridge_solution(data, lam)
        dw = -torch.linalg.solve(h, w) * lam  # dw*/dlog(lambda)
    else:  # forward recursion of the step Jacobian: D <- (I - lr H) D - lr lambda w
        w, dw = torch.zeros(FEATURES, dtype=DTYPE), torch.zeros(FEATURES, dtype=DTYPE)
        for _ in range(UNROLL):
            dw = dw - LR * (h @ dw) - LR * lam * w
            w = w - LR * (h @ w - x.T @ y / TRAIN)
    return float((xv.T @ (xv @ w - yv) / VALID) @ dw)


def main() -> list[dict[str, float]]:
    """Run the comparison, print the table and return its rows."""
    data = make_data()
    penalty = Penalty()
    fit = Fit(data, penalty)
    tune = Tune(data, penalty, fit)
    engine = GraphEngine(
        [fit, tune], {"u2l": {tune: [fit]}, "l2u": {fit: [tune]}}, torch.device("cpu")
    )
    engine.train()
    start_weights, start_log_lam = (
        fit.module.weight.detach().clone(),
        penalty.log_lam.detach().clone(),
    )

    grid = torch.logspace(-4, 1, 400, dtype=DTYPE)
    best = min(grid.tolist(), key=lambda lam: valid_loss(data, ridge_solution(data, lam)))
    table = Table(title="ridge penalty tuned through one graph, three estimators")
    for column in (
        "estimator",
        "hypergrad @ start",
        "closed form",
        "tuned lambda",
        "valid loss",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "estimator" else "right")

    rows: list[dict[str, float]] = []
    for estimator, options in [("darts", {}), ("cg", {"iterations": 20}), ("unrolled", {})]:
        with torch.no_grad():  # same starting point for every estimator
            fit.module.weight.zero_() if estimator == "unrolled" else fit.module.weight.copy_(
                start_weights
            )
            penalty.log_lam.copy_(start_log_lam)
        fit.optimizer.state.clear()
        tune.optimizer.state.clear()
        fit.reset_trajectory()
        tune.first_grad = None
        use_estimator(fit, estimator, **options)
        if estimator != "unrolled":  # implicit estimators: start with the lower at its optimum
            with torch.no_grad():
                fit.module.weight.copy_(ridge_solution(data, float(start_log_lam.exp())))
        lam0 = float(start_log_lam.exp())
        start = time.perf_counter()
        for _ in range(ITERATIONS * UNROLL):
            engine.global_step += 1
            engine.train_step()
        seconds = time.perf_counter() - start
        lam = float(penalty.log_lam.detach().exp())
        rows.append(
            {
                "first": float(tune.first_grad or 0.0),
                "closed": closed_form_hypergradient(data, lam0, estimator),
            }
        )
        table.add_row(
            estimator,
            f"{tune.first_grad:+.4f}",
            f"{closed_form_hypergradient(data, lam0, estimator):+.4f}",
            f"{lam:.4f}",
            f"{valid_loss(data, fit.module.weight.detach().squeeze(0)):.4f}",
            f"{seconds:.2f}",
        )
    table.add_row(
        "grid (closed form)",
        "",
        "",
        f"{best:.4f}",
        f"{valid_loss(data, ridge_solution(data, best)):.4f}",
        "",
    )
    Console(width=110).print(table)
    return rows


if __name__ == "__main__":
    main()

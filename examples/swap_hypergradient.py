"""One graph, three hypergradient estimators: tune a ridge penalty by bilevel optimization.

    python examples/swap_hypergradient.py

The graph is composed (``new_graph``, two custom nodes): the lower node ``fit`` trains a
linear model on 30 noisy training rows (20 features, so the penalty matters) with SGD,
``unroll_steps`` steps per window; the upper node ``tune`` moves ``log lambda`` to lower the
validation loss. Only the estimator on ``fit`` changes between runs (its ``hypergradient``):
``darts`` (identity inverse Hessian), ``cg`` (conjugate gradient on
the lower Hessian) and ``unrolled`` (exact backpropagation through the window's SGD steps).
The hypergradient each estimator composed is read with ``graph.hypergradient("tune")`` after
tune's first step. The table compares, per estimator: that hypergradient against the closed form
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

from metamask.compose import new_graph
from metamask.graph import Graph

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

    def __init__(self, value: float) -> None:
        super().__init__()
        self.log_lam = nn.Parameter(torch.tensor(value, dtype=DTYPE))


def build(
    data: dict[str, torch.Tensor], estimator: str, options: dict[str, Any], start: torch.Tensor
) -> Graph:
    """The two-node graph, composed: ``fit`` (lower, the chosen estimator) under ``tune``."""
    penalty = Penalty(math.log(1e-2))
    fit = nn.Linear(FEATURES, 1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        fit.weight.copy_(start)

    def fit_loss(batch: Any) -> torch.Tensor:
        """Lower: mean squared error + lambda ||w||^2 / 2 on the training rows."""
        residual = fit(data["x"]).squeeze(-1) - data["y"]
        return (residual**2).mean() / 2 + penalty.log_lam.exp() * (fit.weight**2).sum() / 2

    def tune_loss(batch: Any) -> torch.Tensor:
        """Upper: the validation loss of the fitted model."""
        return ((fit(data["xv"]).squeeze(-1) - data["yv"]) ** 2).mean() / 2

    g = new_graph(None, steps=ITERATIONS * UNROLL, name="ridge", source="<swap_hypergradient>")
    g.node(
        "fit",
        module=fit,
        loss=fit_loss,
        optimizer={"type": "sgd", "lr": LR, "weight_decay": 0.0},
        hypergradient={"type": estimator, **options},
        unroll_steps=UNROLL,
    )
    g.node(
        "tune",
        module=penalty,
        loss=tune_loss,
        optimizer={"type": "adam", "lr": 0.1, "weight_decay": 0.0},
    )
    g.u2l("tune", "fit").l2u("fit", "tune")
    return g.build()


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
    start_log_lam = math.log(1e-2)
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
    lam0 = math.exp(start_log_lam)
    for estimator, options in [("darts", {}), ("cg", {"iterations": 20}), ("unrolled", {})]:
        # implicit estimators start with the lower at its optimum; unrolled from w = 0
        if estimator == "unrolled":
            start_w = torch.zeros(1, FEATURES, dtype=DTYPE)
        else:
            start_w = ridge_solution(data, lam0).unsqueeze(0)
        graph = build(data, estimator, options, start_w)
        graph.train()
        first: float | None = None
        start = time.perf_counter()
        for _ in range(ITERATIONS * UNROLL):
            stepped = graph.step()
            if first is None and graph.nodes["tune"] in stepped:
                # the hypergradient the estimator composed for tune's first step
                first = float(graph.hypergradient("tune")["log_lam"])
        seconds = time.perf_counter() - start
        lam = float(graph.nodes["tune"].module.log_lam.detach().exp())
        closed = closed_form_hypergradient(data, lam0, estimator)
        rows.append({"first": float(first or 0.0), "closed": closed})
        fitted = graph.nodes["fit"].module.weight.detach().squeeze(0)
        table.add_row(
            estimator,
            f"{first:+.4f}",
            f"{closed:+.4f}",
            f"{lam:.4f}",
            f"{valid_loss(data, fitted):.4f}",
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

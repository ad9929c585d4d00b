"""How the error of ``cg`` and ``neumann`` falls with their iteration count (their defaults' why).

Closed forms (:mod:`metamask.testing.closed_form`, float64, the lower at its optimum): the
relative error of the upper's total gradient against the exact hypergradient, for K in
``--iterations``. A tiny MLO-MAE (float64, dropout off, after one engine cycle): on each lower
(``head``, whose Hessian is small enough to form, and ``pretrain``), ``x_K`` from K CG steps /
K Neumann terms on ``H x = v`` for the edge's own ``v``, against the dense solve ``H^{-1} v``
(head) or, on ``pretrain``, the relative residual ``|H x_K - v| / |v|`` and where CG stopped.
Usage: ``python benchmarks/solver_iterations.py [--out FILE.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from metamask.errors import NonFiniteError
from metamask.hypergrad.autodiff import conjugate_gradient, dot, hvp, lower_gradient
from metamask.hypergrad.betty_estimators import NeumannOptions, neumann_solve
from metamask.testing.closed_form import Quadratic, Ridge, exact_hypergradient
from metamask.testing.closed_form_graphs import bilevel_graph

ROOT = Path(__file__).resolve().parents[1]
KS = (1, 2, 5, 10, 20, 50, 100)


def closed_form_rows(ks: tuple[int, ...]) -> list[dict[str, Any]]:
    """Relative error of the total gradient, cg and neumann (alpha = 1/L and the default 1)."""
    problems = {
        "ridge n=100": Ridge.make(n=100, m=200),
        "quadratic n=8 (kappa 10)": Quadratic.make(n=8, condition=10.0),
        "quadratic n=100 (kappa 100)": Quadratic.make(n=100, condition=100.0),
    }
    rows = []
    for name, problem in problems.items():
        exact = exact_hypergradient(problem, problem.theta0())
        w = problem.solution(problem.theta0())
        top = float(torch.linalg.eigvalsh(problem.hessian(w, problem.theta0())).max())
        for k in ks:
            row: dict[str, Any] = {"problem": name, "K": k, "lambda_max": top}
            for label, estimator, options in (
                ("cg", "cg", {"iterations": k}),
                ("neumann a=1/L", "neumann", {"iterations": k, "alpha": 1.0 / top}),
                ("neumann a=1", "neumann", {"iterations": k, "alpha": 1.0}),
            ):
                try:
                    got = bilevel_graph(problem, estimator, **options).run_upper_step()
                    row[label] = float((got - exact).norm() / exact.norm())
                except NonFiniteError:  # the series diverged (alpha >= 2 / lambda_max)
                    row[label] = float("inf")
            rows.append(row)
    return rows


def mlomae_rows(ks: tuple[int, ...]) -> list[dict[str, Any]]:
    """CG and Neumann on the tiny MLO-MAE's two lowers, after one engine cycle (darts)."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "nodes"))
    from test_mlomae_gradients import build, mlo_graph_spec  # the tests' float64 tiny MLO-MAE

    torch.manual_seed(0)
    graph = build(mlo_graph_spec("darts"))
    graph.train()
    graph.step()
    graph.step()
    rows = []
    for name in ("head", "pretrain"):
        lower = graph.nodes[name]
        params = lower.trainable_parameters()
        _, grad_w = lower_gradient(lower)
        g = torch.Generator().manual_seed(1)
        v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]

        def matvec(x: list[torch.Tensor], _gw: Any = grad_w, _p: Any = params) -> Any:
            return hvp(_gw, _p, x)

        n = sum(p.numel() for p in params)
        dense = None
        if n <= 2000:
            flat = torch.stack(
                [torch.cat([h.reshape(-1) for h in matvec(unit(params, i))]) for i in range(n)]
            )
            eig = torch.linalg.eigvalsh(0.5 * (flat + flat.T))
            dense = torch.linalg.solve(flat, torch.cat([t.reshape(-1) for t in v]))
            spectrum = (float(eig.min()), float(eig.max()))
        for k in ks:
            x = conjugate_gradient(matvec, v, k)
            hx = matvec(x)
            diff = [a - b for a, b in zip(hx, v, strict=True)]
            residual = float(dot(diff, diff))
            row: dict[str, Any] = {
                "node": name,
                "params": n,
                "K": k,
                "cg residual": residual**0.5 / float(dot(v, v)) ** 0.5,
                "cg |x|": float(dot(x, x)) ** 0.5,
            }
            if dense is not None:
                flat_x = torch.cat([t.reshape(-1) for t in x])
                row["cg rel. error vs dense"] = float((flat_x - dense).norm() / dense.norm())
                row["cosine vs dense"] = float(flat_x @ dense / (flat_x.norm() * dense.norm()))
                row["spectrum"] = spectrum
                nx = neumann_solve(matvec, v, NeumannOptions(iterations=k, alpha=1.0))
                flat_n = torch.cat([t.reshape(-1) for t in nx])
                row["neumann a=1 rel. error vs dense"] = float(
                    (flat_n - dense).norm() / dense.norm()
                )
            rows.append(row)
    return rows


def unit(params: list[torch.Tensor], index: int) -> list[torch.Tensor]:
    """The ``index``-th basis vector of the parameters' flat concatenation, as their shapes."""
    out, offset = [], 0
    for p in params:
        t = torch.zeros_like(p).reshape(-1)
        if offset <= index < offset + t.numel():
            t[index - offset] = 1.0
        out.append(t.reshape(p.shape))
        offset += t.numel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"closed_form": closed_form_rows(KS), "mlomae": mlomae_rows(KS)}
    for table in result.values():
        for row in table:
            print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()})
    if args.out is not None:
        from metamask.checkpoint import atomic_write

        text = json.dumps(result, indent=1).encode()
        atomic_write(args.out, lambda f: f.write(text))


if __name__ == "__main__":
    main()

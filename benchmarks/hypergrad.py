"""Hypergradient estimators measured: relative error, seconds and peak memory per hypergradient.

    python benchmarks/hypergrad.py --out benchmarks/results/hypergrad.json   # ~3 min, 2 threads
    python benchmarks/hypergrad.py --quick                                   # a smoke run
    python benchmarks/hypergrad.py --nested-only --out benchmarks/results/hypergrad-nested.json

Part 1, estimator x problem: the closed-form problems of ``metamask.testing.closed_form``
(float64): ridge regression with 100 features, the dense SPD quadratic (n = 100, condition
100) and the same quadratic with a matrix-free diagonal + rank-4 Hessian (condition ~100) at
n = 10^4, 10^5, 10^6. For the implicit-style estimators the lower node sits at its optimum and the
error is against the exact hypergradient; ``unrolled`` takes K SGD steps (lr = 1/L) and its
error is against the exact gradient of that unrolled objective (its own target), and also
reported against the bilevel optimum's hypergradient. Seconds: one estimator call (for
``unrolled``: its K differentiable lower steps plus the backward pass), median over
interleaved repetitions in this process. Peak memory: a fresh child process per estimator and
problem builds the problem, resets its peak (``/proc/self/clear_refs``), computes one
hypergradient and reports ``VmHWM - VmRSS`` from /proc/self/status (memory the estimator
added above what was resident before it ran).

Part 3, the nested three-level problem (``metamask.testing.closed_form.Nested``: ``theta``
tunes ``v``, ``v`` tunes ``u``, and ``v``'s loss reads ``u*(v)``), built with GraphBuilder
(``nested_graph``), float64, at (n_u, n_v, p) = (5, 4, 3) and (40, 30, 10). ``u`` always uses
``cg`` with n_u iterations (exact); each row is ``v``'s estimator. Error: ``theta``'s gradient
after one engine iteration against the closed form. Seconds: one engine iteration (u, v and
theta step once; theta's step computes the hypergradient), median of interleaved
repetitions. Peak memory: a child process per row, as in part 1. Then the cost of one total
Hessian-vector product of ``v`` (through ``u``'s responses: what the exact estimators need)
against one partial one (``u`` held fixed: Betty's, what ``approximate: true`` uses).

Part 2, seconds per MetaMAE training step with each latent solver (first_order, unrolled,
implicit) on the dabs backbone (D=256, 12 + 4 blocks), the embedded ``digits`` dataset
(3x32x32, patch 4, batch 32), 2 threads; steps interleaved solver by solver, medians; peak
memory of one step from a child process each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from metamask.hypergrad import get_estimator  # noqa: E402
from metamask.hypergrad.nested import plain_operators, total_operators  # noqa: E402
from metamask.testing.closed_form import (  # noqa: E402
    DTYPE,
    LowRankQuadratic,
    Nested,
    Problem,
    Quadratic,
    Ridge,
    exact_hypergradient,
    initial_lower,
    unrolled_hypergradient,
)
from metamask.testing.closed_form_graphs import bilevel_graph, nested_graph  # noqa: E402

K = 10  # iterations / unrolled steps for every iterative estimator

PROBLEMS: dict[str, Callable[[], Problem]] = {
    "ridge n=100": lambda: Ridge.make(n=100, m=200),
    "quadratic n=100": lambda: Quadratic.make(n=100, condition=100.0),
    "quadratic n=1e4": lambda: LowRankQuadratic.make(n=10_000),
    "quadratic n=1e5": lambda: LowRankQuadratic.make(n=100_000),
    "quadratic n=1e6": lambda: LowRankQuadratic.make(n=1_000_000),
}
QUICK_PROBLEMS = ["ridge n=100", "quadratic n=100"]


def curvature(problem: Problem) -> float:
    """L: the largest eigenvalue of the lower Hessian at the optimum."""
    if isinstance(problem, LowRankQuadratic):
        return problem.largest_curvature()
    theta = problem.theta0()
    return float(torch.linalg.eigvalsh(problem.hessian(problem.solution(theta), theta)).max())


# estimator label -> (registered name, options from L)
ESTIMATORS: dict[str, tuple[str, Callable[[float], dict[str, Any]]]] = {
    "first_order": ("first_order", lambda L: {}),
    "darts": ("darts", lambda L: {}),
    "sama (SGD lower)": ("sama", lambda L: {}),
    f"neumann K={K} a=1/L": ("neumann", lambda L: {"iterations": K, "alpha": 1 / L}),
    f"cg K={K}": ("cg", lambda L: {"iterations": K, "tol": 0.0}),
    f"implicit_cg K={K}": ("implicit_cg", lambda L: {"iterations": K, "rtol": 0.0}),
    f"implicit_neumann K={K} a=1/L": (
        "implicit_neumann",
        lambda L: {"iterations": K, "alpha": 1 / L},
    ),
    f"unrolled K={K} lr=1/L": ("unrolled", lambda L: {}),
}


@dataclass
class Prepared:
    """One estimator on one problem, ready to compute hypergradients."""

    once: Callable[[], torch.Tensor]  # one hypergradient (direct + indirect)
    target: torch.Tensor  # what the estimator claims to compute
    exact: torch.Tensor  # the bilevel optimum's hypergradient


def prepare(problem_key: str, label: str) -> Prepared:
    """Build the problem and the graph for ``label``; nothing is timed here."""
    problem = PROBLEMS[problem_key]()
    name, options_of = ESTIMATORS[label]
    big_l = curvature(problem)
    options = options_of(big_l)
    theta = problem.theta0()
    exact = exact_hypergradient(problem, theta)
    spec = get_estimator(name)
    if name == "unrolled":
        lr = 1 / big_l
        graph = bilevel_graph(problem, "unrolled", unroll_steps=K, lr=lr, solve_exactly=False)
        lower, upper = graph.lower, graph.upper
        lower.cur_batch = ()
        w0 = initial_lower(problem.sizes[0])

        def once() -> torch.Tensor:
            with torch.no_grad():
                lower.module.value.copy_(w0)
            lower.reset_trajectory()
            for _ in range(K):
                lower.one_step_descent(())
            v, direct = problem.upper_grads(lower.module.value.detach(), theta)
            return direct + spec.fn([v], lower, upper, spec.options_type())[0]

        target = unrolled_hypergradient(problem, theta, w0, lr, K)
        return Prepared(once, target, exact)

    graph = bilevel_graph(problem, name, **options)
    lower, upper = graph.lower, graph.upper
    with torch.no_grad():
        lower.module.value.copy_(problem.solution(theta))
    lower.cur_batch = ()
    v, direct = problem.upper_grads(lower.module.value.detach(), theta)
    parsed = spec.options_type(**options)

    def once_implicit() -> torch.Tensor:
        return direct + spec.fn([v], lower, upper, parsed)[0]

    return Prepared(once_implicit, exact, exact)


# ----------------------------------------------------------------------------------------------
# memory: one child process per measurement
# ----------------------------------------------------------------------------------------------


def _status_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


def measure_in_child(
    run: Callable[[], object], warm: Callable[[], object] | None = None
) -> dict[str, int]:
    """Peak memory added by ``run()`` in this process: VmHWM after minus VmRSS before (kB)."""
    if warm is not None:
        warm()
    _reset_peak()
    before = _status_kb()["VmRSS"]
    run()
    after = _status_kb()
    return {"rss_before_kb": before, "peak_kb": after["VmHWM"], "delta_kb": after["VmHWM"] - before}


def child_estimator(problem_key: str, label: str) -> dict[str, int]:
    prepared = prepare(problem_key, label)
    return measure_in_child(prepared.once)


NESTED_SIZES: dict[str, tuple[int, int, int]] = {
    "nested n=(5,4,3)": (5, 4, 3),
    "nested n=(40,30,10)": (40, 30, 10),
}
QUICK_NESTED = ["nested n=(5,4,3)"]
NESTED_LABELS = [
    "cg K=n_v",
    "implicit_cg",
    f"neumann K={K}",
    f"implicit_neumann K={K}",
    "cg K=n_v, approximate",
]


def nested_problem(key: str) -> Nested:
    nu, nv, p = NESTED_SIZES[key]
    return Nested.make(nu=nu, nv=nv, p=p, coupling=0.5, seed=0)


def nested_row_graph(key: str, label: str) -> Any:
    """The nested graph with ``v``'s estimator of row ``label`` (``u``: exact cg)."""
    problem = nested_problem(key)
    nu, nv, _ = problem.sizes
    alpha = float(1 / torch.linalg.eigvalsh(problem.total_hessian()).max())
    middle: dict[str, Any] = {
        "cg K=n_v": {"type": "cg", "iterations": nv},
        "implicit_cg": {"type": "implicit_cg", "iterations": nv},
        f"neumann K={K}": {"type": "neumann", "iterations": K, "alpha": alpha},
        f"implicit_neumann K={K}": {"type": "implicit_neumann", "iterations": K, "alpha": alpha},
        "cg K=n_v, approximate": {"type": "cg", "iterations": nv},
    }[label]
    bottom = {"type": "cg", "iterations": nu}
    return nested_graph(problem, middle, bottom, approximate=label.endswith("approximate"))


def child_nested(key: str, label: str) -> dict[str, int]:
    graph = nested_row_graph(key, label)
    return measure_in_child(graph.run_top_step, warm=graph.run_top_step)


def child_metamae(solver: str, threads: int, batch: int) -> dict[str, int]:
    torch.set_num_threads(threads)
    graph = build_metamae(solver, batch)
    return measure_in_child(graph.step)


def run_child(kind: str, *args: Any) -> dict[str, int]:
    payload = json.dumps([kind, *args])  # kind: estimator | metamae | nested
    proc = subprocess.run(
        [sys.executable, __file__, "--child", payload],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {payload} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------------------------
# MetaMAE step time per latent solver
# ----------------------------------------------------------------------------------------------

LATENT_SOLVERS = {
    "first_order": {"type": "first_order"},
    "unrolled": {"type": "unrolled"},
    "implicit (CG 5)": {"type": "implicit", "iterations": 5},
}


def build_metamae(solver: str, batch: int) -> Any:
    from metamask.compose import build_graph
    from metamask.config import spec_from_dict
    from metamask.data import LoadOptions, load_dataset

    torch.manual_seed(0)
    raw = {
        "name": "bench",
        "data": {"dataset": "digits", "batch_size": batch},
        "model": {"backbone": "dabs", "mask_ratio": 0.75},
        "graph": {
            "nodes": {
                "adapt": {
                    "type": "adapt",
                    "inner_lr": 0.5,
                    "latent_solver": LATENT_SOLVERS[solver],
                },
                "reconstruct": {"type": "reconstruct", "optimizer": {"type": "adamw", "lr": 1e-4}},
            },
            "u2l": {"reconstruct": ["adapt"]},
            "l2u": {"adapt": ["reconstruct"]},
        },
        "train": {"steps": 100},
    }
    graph = build_graph(
        spec_from_dict(raw), load_dataset("digits", LoadOptions()), torch.device("cpu")
    )
    graph.train()
    return graph


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def estimator_part(problems: list[str], reps: int, calls: int) -> list[dict[str, Any]]:
    cells = [(p, label) for p in problems for label in ESTIMATORS]
    with ThreadPoolExecutor(max_workers=2) as pool:  # child processes; timing comes later
        memory = dict(
            zip(cells, pool.map(lambda c: run_child("estimator", *c), cells), strict=True)
        )
    prepared = {cell: prepare(*cell) for cell in cells}
    results = {cell: prepared[cell].once() for cell in cells}  # also warms every path up
    times: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
    for _ in range(reps):  # interleaved: every cell once per round
        for cell in cells:
            start = time.perf_counter()
            for _ in range(calls):
                prepared[cell].once()
            times[cell].append((time.perf_counter() - start) / calls)
    rows = []
    for cell in cells:
        problem_key, label = cell
        rows.append(
            {
                "problem": problem_key,
                "estimator": label,
                "rel_error": rel(results[cell], prepared[cell].target),
                "rel_error_vs_optimum": rel(results[cell], prepared[cell].exact),
                "seconds": statistics.median(times[cell]),
                "peak_delta_mb": memory[cell]["delta_kb"] / 1024,
            }
        )
    return rows


def nested_part(sizes: list[str], reps: int, calls: int) -> dict[str, list[dict[str, Any]]]:
    cells = [(key, label) for key in sizes for label in NESTED_LABELS]
    memory = {cell: run_child("nested", *cell) for cell in cells}
    graphs = {cell: nested_row_graph(*cell) for cell in cells}
    results = {cell: graphs[cell].run_top_step() for cell in cells}  # also warms up
    times: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
    for _ in range(reps):
        for cell in cells:
            start = time.perf_counter()
            for _ in range(calls):
                graphs[cell].run_top_step()
            times[cell].append((time.perf_counter() - start) / calls)
    rows = []
    for cell in cells:
        key, label = cell
        problem = graphs[cell].problem
        exact = problem.exact_hypergradient(problem.theta0())
        rows.append(
            {
                "problem": key,
                "estimator": label,
                "rel_error": rel(results[cell], exact),
                "seconds": statistics.median(times[cell]),
                "peak_delta_mb": memory[cell]["delta_kb"] / 1024,
            }
        )
    hvp_rows = []
    for key in sizes:
        graph = graphs[(key, "cg K=n_v")]
        v, theta = graph.graph.nodes["v"], graph.graph.nodes["theta"]
        x = [torch.randn_like(w) for w in v.trainable_parameters()]
        total = total_operators(v, theta).matvec
        partial = plain_operators(v, theta)[0]
        spent: dict[str, list[float]] = {"total": [], "partial": []}
        for _ in range(reps):
            for name, op in (("total", total), ("partial", partial)):
                start = time.perf_counter()
                for _ in range(calls * 10):
                    op(x)
                spent[name].append((time.perf_counter() - start) / (calls * 10))
        t_total, t_partial = statistics.median(spent["total"]), statistics.median(spent["partial"])
        hvp_rows.append(
            {
                "problem": key,
                "total_hvp_ms": t_total * 1e3,
                "partial_hvp_ms": t_partial * 1e3,
                "ratio": t_total / t_partial,
            }
        )
    return {"estimators": rows, "hvp": hvp_rows}


def metamae_part(reps: int, threads: int, batch: int) -> list[dict[str, Any]]:
    memory = {s: run_child("metamae", s, threads, batch) for s in LATENT_SOLVERS}
    graphs = {s: build_metamae(s, batch) for s in LATENT_SOLVERS}
    for graph in graphs.values():
        graph.step()  # warm-up
    times: dict[str, list[float]] = {s: [] for s in LATENT_SOLVERS}
    for _ in range(reps):
        for solver, graph in graphs.items():
            start = time.perf_counter()
            graph.step()
            times[solver].append(time.perf_counter() - start)
    base = statistics.median(times["first_order"])
    return [
        {
            "solver": solver,
            "seconds_per_step": statistics.median(times[solver]),
            "vs_first_order": statistics.median(times[solver]) / base,
            "peak_delta_mb": memory[solver]["delta_kb"] / 1024,
            "peak_rss_mb": memory[solver]["peak_kb"] / 1024,
        }
        for solver in LATENT_SOLVERS
    ]


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    table = Table(
        title=f"Hypergradient estimators (float64, {report['machine']['threads']} threads)"
    )
    for column in ("problem", "estimator", "rel. error", "vs optimum", "ms / hypergrad", "peak MB"):
        table.add_column(column, justify="left" if column in ("problem", "estimator") else "right")
    for row in report["estimators"]:
        table.add_row(
            row["problem"],
            row["estimator"],
            f"{row['rel_error']:.2e}",
            f"{row['rel_error_vs_optimum']:.2e}",
            f"{row['seconds'] * 1e3:.3f}",
            f"{row['peak_delta_mb']:.1f}",
        )
    if report["estimators"]:
        console.print(table)
    if report.get("nested"):
        table = Table(title="Nested three-level problem (float64; u: exact cg; the estimator on v)")
        for column in ("problem", "estimator on v", "rel. error", "ms / engine step", "peak kB"):
            table.add_column(
                column, justify="left" if column in ("problem", "estimator on v") else "right"
            )
        for row in report["nested"]["estimators"]:
            table.add_row(
                row["problem"],
                row["estimator"],
                f"{row['rel_error']:.2e}",
                f"{row['seconds'] * 1e3:.2f}",
                f"{row['peak_delta_mb'] * 1024:.0f}",
            )
        console.print(table)
        table = Table(title="One Hessian-vector product of v: total (through u*(v)) vs partial")
        for column in ("problem", "total ms", "partial ms", "total / partial"):
            table.add_column(column, justify="left" if column == "problem" else "right")
        for row in report["nested"]["hvp"]:
            table.add_row(
                row["problem"],
                f"{row['total_hvp_ms']:.3f}",
                f"{row['partial_hvp_ms']:.3f}",
                f"{row['ratio']:.1f}",
            )
        console.print(table)
    if report["metamae"]:
        table = Table(title="MetaMAE step per latent solver (dabs backbone, digits, batch 32)")
        for column in ("solver", "s / step", "x first_order", "peak MB (step)", "peak RSS MB"):
            table.add_column(column, justify="left" if column == "solver" else "right")
        for row in report["metamae"]:
            table.add_row(
                row["solver"],
                f"{row['seconds_per_step']:.3f}",
                f"{row['vs_first_order']:.2f}",
                f"{row['peak_delta_mb']:.0f}",
                f"{row['peak_rss_mb']:.0f}",
            )
        console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (medians)")
    parser.add_argument("--calls", type=int, default=3, help="hypergradients per timed repetition")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="MetaMAE batch size")
    parser.add_argument("--metamae-reps", type=int, default=5)
    parser.add_argument("--skip-metamae", action="store_true")
    parser.add_argument("--quick", action="store_true", help="two small problems, 2 reps")
    parser.add_argument(
        "--nested-only", action="store_true", help="part 3 alone (both sizes of the nested problem)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = json.loads(args.child)
        torch.set_num_threads(args.threads)
        children = {"estimator": child_estimator, "nested": child_nested, "metamae": child_metamae}
        result = children[kind](*rest)
        print(json.dumps(result))
        return 0

    torch.set_num_threads(args.threads)
    problems = QUICK_PROBLEMS if args.quick else list(PROBLEMS)
    reps = 2 if args.quick else args.reps
    start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": {
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },
        "settings": {"K": K, "reps": reps, "calls": args.calls, "dtype": str(DTYPE)},
        "estimators": [] if args.nested_only else estimator_part(problems, reps, args.calls),
        "nested": nested_part(QUICK_NESTED if args.quick else list(NESTED_SIZES), reps, args.calls),
        "metamae": []
        if args.skip_metamae or args.nested_only
        else metamae_part(2 if args.quick else args.metamae_reps, args.threads, args.batch),
    }
    report["wall_seconds"] = time.perf_counter() - start
    print_tables(report)
    print(f"wall time: {report['wall_seconds']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

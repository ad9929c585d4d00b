"""The hypergradient audit (metamask.hypergrad.audit): exact references on closed forms, the
unrolled reference against the unrolled estimator, refusals, and a run that the audit leaves
bitwise unchanged (through the real command line, across a SIGKILL and --resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_runs import TINY, killed_audited_run_equals_unaudited, run

from metamask.compose import new_graph, train
from metamask.errors import ConfigError
from metamask.graph import Graph
from metamask.hypergrad.audit import Auditor, compare
from metamask.testing.closed_form import Nested, Quadratic
from metamask.testing.closed_form_graphs import Value

ROOT = Path(__file__).resolve().parents[2]
MLOMAE = ROOT / "problems" / "mlomae-digits.yaml"


def quadratic_graph(
    problem: Quadratic, hypergradient: dict[str, Any], steps: int = 3, unroll: int = 1
) -> Graph:
    """``problem`` as two custom nodes: ``w`` (the lower, SGD) under ``theta``."""
    theta = Value(problem.theta0())
    w = Value(torch.linspace(-0.5, 0.5, problem.sizes[0], dtype=torch.float64))
    g = new_graph(None, steps=steps, log_every=1, name="quadratic", source="<quadratic>")
    g.node(
        "w",
        module=w,
        loss=lambda batch: problem.lower_loss(w.value, theta.value),
        optimizer={"type": "sgd", "lr": 0.1, "weight_decay": 0.0},
        hypergradient=hypergradient,
        unroll_steps=unroll,
    )
    g.node(
        "theta",
        module=theta,
        loss=lambda batch: problem.upper_loss(w.value, theta.value),
        optimizer={"type": "sgd", "lr": 0.01, "weight_decay": 0.0},
    )
    g.u2l("theta", "w").l2u("w", "theta")
    return g.build()


def test_an_exact_estimator_audited_against_another_exact_reference_has_cosine_one() -> None:
    problem = Quadratic.make(n=6, seed=1)
    for estimator, reference in (("implicit_cg", "cg"), ("cg", "implicit_cg")):
        hypergradient = {
            "type": estimator,
            "iterations": 60,
            "audit": {"every": 1, "reference": reference, "iterations": 60},
        }
        summary = train(quadratic_graph(problem, hypergradient)).audit["w->theta"]
        assert summary["audits"] == 3
        assert abs(summary["median_cosine"] - 1.0) < 1e-10, (estimator, summary)
        assert abs(summary["median_norm_ratio"] - 1.0) < 1e-8, (estimator, summary)
        assert summary["median_same_sign"] == 1.0


def test_darts_audited_on_a_quadratic_gives_the_closed_form_cosine_and_norm_ratio() -> None:
    problem = Quadratic.make(n=6, seed=1)
    hypergradient = {"type": "darts", "audit": {"every": 1, "reference": "cg", "iterations": 60}}
    summary = train(quadratic_graph(problem, hypergradient)).audit["w->theta"]
    # darts: B^T a (inverse Hessian taken as I); exact: B^T H^-1 a (H, B constant)
    darts = problem.b.T @ problem.a
    exact = problem.b.T @ torch.linalg.solve(problem.h, problem.a)
    cosine = float(darts @ exact / (darts.norm() * exact.norm()))
    assert 0.5 < cosine < 0.99  # a case where darts is visibly off
    assert summary["median_cosine"] == pytest.approx(cosine, abs=1e-9)
    assert summary["median_norm_ratio"] == pytest.approx(
        float(darts.norm() / exact.norm()), rel=1e-8
    )


def test_the_unrolled_reference_is_what_the_unrolled_estimator_gives() -> None:
    """At the first upper step both graphs share their state: the audit's unrolled reference,
    replayed beside a darts run, equals the hypergradient of a run that unrolls."""
    problem = Quadratic.make(n=6, seed=1)
    exact = quadratic_graph(problem, {"type": "unrolled"}, unroll=3)
    exact.train()
    for _ in range(3):
        exact.step()
    want = exact.hypergradient("theta")["value"]

    audited = quadratic_graph(
        problem, {"type": "darts", "audit": {"every": 1, "reference": "unrolled"}}, unroll=3
    )
    auditor = Auditor(audited.nodes, audited.audits)
    auditor.install()
    audited.train()
    for _ in range(3):
        audited.step()
    auditor.remove()
    (result,) = auditor.results
    assert result.reference_gradient is not None
    torch.testing.assert_close(result.reference_gradient[0], want, rtol=1e-12, atol=1e-14)
    estimate = audited.hypergradient("theta")["value"]
    assert result.metrics["cosine"] == pytest.approx(compare([estimate], [want])["cosine"])


def test_cg_stopping_on_negative_curvature_is_reported_with_its_curvature() -> None:
    problem = Quadratic.make(n=6, seed=1)
    problem.h = problem.h - 2.0 * torch.eye(6, dtype=torch.float64) * float(
        torch.linalg.eigvalsh(problem.h)[0]
    )  # indefinite: the smallest eigenvalue flipped below zero
    hypergradient = {"type": "darts", "audit": {"every": 1, "reference": "cg", "iterations": 60}}
    graph = quadratic_graph(problem, hypergradient, steps=1)
    auditor = Auditor(graph.nodes, graph.audits)
    auditor.install()
    graph.train()
    graph.step()
    (result,) = auditor.results
    assert result.warning is not None and "curvature" in result.warning
    assert result.metrics["cg_curvature"] <= 0


def test_references_that_cannot_be_exact_are_refused_naming_the_node() -> None:
    problem = Quadratic.make(n=6, seed=1)
    with pytest.raises(ConfigError, match=r"w.hypergradient.audit.reference: expected one of"):
        quadratic_graph(problem, {"type": "darts", "audit": {"reference": "darts"}})
    with pytest.raises(ConfigError, match=r"'cg' is the estimator being audited"):
        quadratic_graph(problem, {"type": "cg", "audit": {"reference": "cg"}})
    with pytest.raises(ConfigError, match=r"audit.every"):
        quadratic_graph(problem, {"type": "darts", "audit": {"every": 0}})
    with pytest.raises(ConfigError, match=r"'unrolled' cannot be exact on 'v'"):
        _nested_with_audit()


def _nested_with_audit() -> None:
    """The nested closed form with an unrolled audit on its middle node ``v``."""
    problem = Nested.make()
    v0 = problem.solve_v(problem.theta0())
    u_mod, v_mod, t_mod = Value(problem.solve_u(v0)), Value(v0), Value(problem.theta0())
    g = new_graph(None, steps=1, name="nested", source="<nested>")
    sgd = {"type": "sgd", "lr": 0.1, "weight_decay": 0.0}
    g.node(
        "u", module=u_mod, loss=lambda b: problem.bottom_loss(u_mod.value, v_mod.value),
        optimizer=sgd, hypergradient="cg",
    )  # fmt: skip
    g.node(
        "v", module=v_mod,
        loss=lambda b: problem.middle_loss(v_mod.value, u_mod.value, t_mod.value),
        optimizer=sgd, hypergradient={"type": "cg", "audit": {"reference": "unrolled"}},
    )  # fmt: skip
    g.node(
        "theta", module=t_mod,
        loss=lambda b: problem.top_loss(t_mod.value, v_mod.value, u_mod.value), optimizer=sgd,
    )  # fmt: skip
    g.u2l("v", "u").u2l("theta", "v", "u").l2u("u", "v").l2u("v", "theta")
    g.build()


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("{type: cg, audit: {reference: cg}}", "'cg' is the estimator being audited"),
        ("{type: darts, audit: {every: -3}}", "audit.every"),
        ("{type: darts, audit: {refrence: cg}}", "audit.refrence: unknown key"),
        ("{type: darts, audit: {reference: newton}}", "got 'newton'"),
    ],
)
def test_bad_audit_options_are_one_line_and_exit_2(
    tmp_path: Path, block: str, expected: str
) -> None:
    hypergradient = f"graph.nodes.pretrain.hypergradient={block}"
    done = run("show", str(MLOMAE), "--set", hypergradient, timeout=300)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert "graph.nodes.pretrain.hypergradient.audit" in err, err


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_a_run_is_bitwise_the_same_with_the_audit_on_across_a_kill_and_resume(
    tmp_path: Path,
) -> None:
    steps = 6
    args = [
        str(MLOMAE),
        *TINY,
        "--set",
        f"train.steps={steps}",
        "--set",
        "train.checkpoint_every=2",
        "--set",  # the audited run's estimators (the shipped spec has sama on both edges)
        "graph.nodes.pretrain.hypergradient={type: darts}",
        "--set",
        "graph.nodes.head.hypergradient={type: darts}",
    ]
    audit = [
        "--set",
        "graph.nodes.pretrain.hypergradient={type: darts, audit: {every: 1, reference: unrolled}}",
        "--set",
        "graph.nodes.head.hypergradient={type: darts, audit: {every: 2, reference: cg, "
        "iterations: 5}}",
    ]
    victim_dir = killed_audited_run_equals_unaudited(tmp_path, args, audit)
    rows = [json.loads(line) for line in (victim_dir / "metrics.jsonl").read_text().splitlines()]
    audits = [row for row in rows if "audit" in row]
    # mask step 2 audits both edges: each node's row and the joint one
    assert {row["audit"] for row in audits} == {
        "pretrain->mask",
        "head->mask",
        "pretrain+head->mask",
    }
    assert sorted(r["upper_step"] for r in audits if r["audit"] == "pretrain->mask") == [1, 2, 3]
    for row in audits:
        assert -1 <= row["cosine"] <= 1 and row["reference_seconds"] > 0
    results = json.loads((victim_dir / "results.json").read_text())
    assert set(results["audit"]) == {"pretrain->mask", "head->mask", "pretrain+head->mask"}
    assert results["audit"]["pretrain->mask"]["audits"] == 3
    assert (victim_dir / "hypergradient_audit.png").is_file()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_audit_command_audits_a_stopped_run_at_its_checkpoint_and_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    done = run("run", str(MLOMAE), *TINY, "--set", "train.steps=2", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    before = _tree(out)
    report_path = tmp_path / "audit.json"
    args = ["audit", str(out), "--batches", "2", "--out", str(report_path)]
    done = run(*args, "--node", "pretrain", "--reference", "unrolled", timeout=900)
    assert done.returncode == 0, done.stderr
    assert _tree(out) == before  # nothing trained further, nothing written into the folder
    report = json.loads(report_path.read_text())
    assert report["checkpoint_step"] == 2 and list(report["summary"]) == ["pretrain->mask"]
    assert report["summary"]["pretrain->mask"]["audits"] == 2
    assert "pretrain->mask" in done.stdout and "cosine" in done.stdout
    for bad, expected in (
        (["--reference", "newton"], "--reference 'newton'"),
        (["--node", "nope"], "--node 'nope': no such node"),
        (["--node", "mask"], "--node 'mask' passes no hypergradient"),
        (["--batches", "0"], "--batches 0"),
    ):
        done = run("audit", str(out), *bad, timeout=900)
        assert done.returncode == 2, (bad, done.stderr)
        err = done.stderr.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert _tree(out) == before


def test_compare_measures_and_a_zero_reference_without_infinities(tmp_path: Path) -> None:
    estimate = [torch.tensor([1.0, 2.0]), torch.tensor([-2.0])]
    reference = [torch.tensor([2.0, 0.0]), torch.tensor([-1.0])]
    got = compare(estimate, reference)
    assert got["cosine"] == pytest.approx(4.0 / (3.0 * 5**0.5))
    assert got["norm_ratio"] == pytest.approx(3.0 / 5**0.5)
    assert got["relative_error"] == pytest.approx(6**0.5 / 5**0.5)
    assert got["same_sign"] == pytest.approx(2 / 3)  # 2 vs 0 differs in sign
    zero = compare(estimate, [torch.zeros(2), torch.zeros(1)])
    assert zero["reference_zero"] == 1.0 and "norm_ratio" not in zero
    assert json.loads(json.dumps(zero, allow_nan=False)) == zero


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_the_finite_difference_reference_agrees_with_unrolled_on_a_tiny_mlomae(
    tmp_path: Path,
) -> None:
    """float64, unrolled on both edges (the exact one-cycle gradient): central differences of
    the masker's loss after one engine cycle match its composed gradient along each direction."""
    out = tmp_path / "run"
    exact = [
        "--set", "train.dtype=float64", "--set", "train.steps=2",
        "--set", "graph.nodes.pretrain.hypergradient={type: unrolled}",
        "--set", "graph.nodes.head.hypergradient={type: unrolled}",
    ]  # fmt: skip
    done = run("run", str(MLOMAE), *TINY, *exact, "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    report_path = tmp_path / "fd.json"
    args = ["--reference", "finite_difference", "--batches", "1", "--directions", "3"]
    done = run("audit", str(out), *args, "--out", str(report_path), timeout=900)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(report_path.read_text())["rows"]
    assert row["audit"] == "mask (composed)"
    for projected, difference in zip(row["projected"], row["differences"], strict=True):
        assert difference == pytest.approx(projected, rel=1e-4)
    assert row["cosine"] > 1 - 1e-8


def test_the_unrolled_twin_is_kept_only_in_windows_that_end_at_an_audit_step() -> None:
    problem = Quadratic.make(n=6, seed=1)
    graph = quadratic_graph(
        problem, {"type": "darts", "audit": {"every": 3, "reference": "unrolled"}}, unroll=2
    )
    auditor = Auditor(graph.nodes, graph.audits)
    auditor.install()
    graph.train()
    kept = []
    for _ in range(12):  # theta steps every 2 engine steps: local steps 1..6, audits at 3, 6
        graph.step()
        kept.append("w" in auditor._shadows)
    auditor.remove()
    # the twin lives through the two w steps before theta's steps 3 and 6 (engine steps 5-6,
    # 11-12) and is dropped by the audit; nothing is kept anywhere else
    assert kept == [False] * 4 + [True, False] + [False] * 4 + [True, False]
    assert [r.upper_step for r in auditor.results] == [3, 6]


def chain_graph(hypergradients: tuple[Any, Any]) -> Graph:
    """MLO-MAE's shape on quadratics: ``theta`` -> ``w1`` (unrolled twice) -> ``w2`` (reads
    ``w1``, as the head reads the encoder), both lowers of ``theta``; theta's paths are
    ``[theta, w1, theta]`` and ``[theta, w2, w1, theta]``."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    h1 = a @ a.T / 4 + torch.eye(4, dtype=torch.float64)
    b1, c2 = (torch.randn(4, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    f1, f2 = (torch.randn(n, generator=gen, dtype=torch.float64) for n in (4, 2))
    theta = Value(torch.tensor([0.3, -0.2], dtype=torch.float64))
    w1 = Value(torch.linspace(-0.5, 0.5, 4, dtype=torch.float64))
    w2 = Value(torch.full((2,), 0.1, dtype=torch.float64))
    g = new_graph(None, steps=2, log_every=1, name="chain", source="<chain>")
    sgd = {"type": "sgd", "lr": 0.1, "weight_decay": 0.0}
    g.node(
        "w1",
        module=w1,
        loss=lambda batch: 0.5 * w1.value @ h1 @ w1.value - w1.value @ (b1 @ theta.value),
        optimizer=sgd,
        hypergradient=hypergradients[0],
        unroll_steps=2,
    )
    g.node(
        "w2",
        module=w2,
        loss=lambda batch: 0.5 * ((w2.value - c2.T @ torch.tanh(w1.value)) ** 2).sum(),
        optimizer=sgd,
        hypergradient=hypergradients[1],
    )
    g.node(
        "theta",
        module=theta,
        loss=lambda batch: f1 @ torch.tanh(w1.value) + f2 @ w2.value**2,
        optimizer={"type": "sgd", "lr": 0.01, "weight_decay": 0.0},
    )
    g.u2l("theta", "w1").l2u("w1", "w2", "theta").l2u("w2", "theta")
    return g.build()


def test_the_joint_row_replaces_every_audited_edge_at_once() -> None:
    """With both lowers audited against unrolled, the row ``w1+w2->theta`` is the gradient of
    a run with unrolled on both (the exact one-cycle gradient), while each node's own row keeps
    the other's darts and differs from it."""
    exact = chain_graph(({"type": "unrolled"}, {"type": "unrolled"}))
    exact.train()
    for _ in range(2):
        exact.step()
    want = exact.hypergradient("theta")["value"]

    audit = {"every": 1, "reference": "unrolled"}
    audited = chain_graph(({"type": "darts", "audit": audit}, {"type": "darts", "audit": audit}))
    auditor = Auditor(audited.nodes, audited.audits)
    auditor.install()
    audited.train()
    for _ in range(2):
        audited.step()
    auditor.remove()
    rows = {f"{r.audited}->{r.upper}": r for r in auditor.results}
    assert set(rows) == {"w1->theta", "w2->theta", "w1+w2->theta"}
    joint = rows["w1+w2->theta"]
    assert joint.reference == "unrolled+unrolled"
    assert joint.reference_gradient is not None
    torch.testing.assert_close(joint.reference_gradient[0], want, rtol=1e-10, atol=1e-14)
    for single in ("w1->theta", "w2->theta"):
        gradient = rows[single].reference_gradient
        assert gradient is not None
        assert float((gradient[0] - want).norm()) > 1e-3 * float(want.norm())
    estimate = audited.hypergradient("theta")["value"]
    assert joint.metrics["cosine"] == pytest.approx(compare([estimate], [want])["cosine"])

"""The contract tests pick up an estimator nobody listed: one installed by another package
(an entry point in ``metamask.estimators``, written by this test as a ``*.dist-info`` folder)
is collected, held to the contract it declares, and fails when its declaration is false."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = '''
"""Two user estimators: a dense exact solve (true to exact=True) and darts claiming exactness."""
import torch

from metamask.hypergrad import register_estimator
from metamask.hypergrad.autodiff import lower_gradient, mixed_vjp
from metamask.hypergrad.betty_estimators import DartsOptions, central_difference


@register_estimator("contract_dense", exact=True)
def dense(vector, lower, upper, options):
    (p,) = lower.trainable_parameters()
    _, (g,) = lower_gradient(lower)
    rows = [torch.autograd.grad(g[i], p, retain_graph=True)[0] for i in range(p.numel())]
    x = torch.linalg.solve(torch.stack(rows), vector[0])
    return mixed_vjp([g], upper.trainable_parameters(), [x])


@register_estimator("contract_liar", DartsOptions, exact=True)
def liar(vector, lower, upper, options):
    return central_difference(vector, options.alpha, lower, upper)
'''


def test_an_installed_estimator_is_held_to_its_declared_contract(tmp_path: Path) -> None:
    (tmp_path / "contract_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "contract_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[metamask.estimators]\ncontract_dense = contract_plugin\ncontract_liar = contract_plugin\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "tests")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "contract_",
         str(ROOT / "tests" / "hypergrad" / "test_contract.py")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    out = result.stdout
    # the dense solve passes ridge, quadratic and the nested refusal; the liar fails both
    # two-level problems (darts is not exact) and passes the nested refusal
    assert "2 failed, 4 passed" in out, out
    assert "test_two_level_contract[contract_liar-ridge]" in out
    assert "test_two_level_contract[contract_liar-quadratic]" in out
    assert "contract_dense" not in out.split("short test summary")[-1]

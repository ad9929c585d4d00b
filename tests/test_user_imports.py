"""A researcher's own estimator seen by every command: the spec's ``imports:``, ``--import``,
and installed entry points (``metamask.estimators``), through the real command line.

The user module lives in a temporary folder on ``PYTHONPATH`` (as a notebook's neighbour
would); the entry point is a ``*.dist-info`` folder written by the test (no network, no pip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_runs import TINY

from metamask.cli import main
from metamask.config.imports import check_module_names
from metamask.errors import ConfigError
from metamask.hypergrad import registry

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "problems" / "mae+mask-basicmotions.yaml"
USER_MODULE = '''
"""darts under another name: a user's estimator."""
from metamask.hypergrad import register_estimator
from metamask.hypergrad.betty_estimators import DartsOptions, central_difference


@register_estimator("{name}", DartsOptions, "darts, registered by a user module")
def estimator(vector, lower, upper, options):
    return central_difference(vector, options.alpha, lower, upper)
'''


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Path]:
    """A folder with ``lab_est`` (registers ``darts01``), a module that fails on import, a
    module whose import leaves a marker file, and an installed ``lab-plugin`` distribution
    whose entry points name ``darts02`` (registered) and ``hollow`` (registers nothing)."""
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab_est.py").write_text(USER_MODULE.format(name="darts01"))
    (folder / "lab_plugin_est.py").write_text(USER_MODULE.format(name="darts02"))
    (folder / "lab_hollow.py").write_text("VALUE = 1\n")
    (folder / "lab_broken.py").write_text("raise RuntimeError('the lab server is down')\n")
    (folder / "lab_marker.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('imported').write_text('yes')\n"
    )
    dist = folder / "lab_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[metamask.estimators]\ndarts02 = lab_plugin_est\nhollow = lab_hollow\n"
    )
    yield folder
    for name in ("darts01", "darts02"):  # what an in-process test registered
        registry.unregister_estimator(name)
    for module in ("lab_est", "lab_plugin_est", "lab_hollow", "lab_broken", "lab_marker"):
        sys.modules.pop(module, None)


def metamask(lab: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(lab), str(ROOT)]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "metamask", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd or ROOT,
    )


def spec_file(
    folder: Path, estimator: str, imports: list[str] | None = None, **extra: object
) -> Path:
    raw: dict[str, object] = {"extends": str(BASE), "name": "user-estimator"}
    if imports is not None:
        raw["imports"] = imports
    raw["graph"] = {"nodes": {"pretrain": {"hypergradient": {"type": estimator}}}}
    raw.update(extra)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return lines[0]


def test_without_imports_the_error_names_the_estimators_and_the_likely_cause(
    lab: Path, tmp_path: Path
) -> None:
    line = one_line(metamask(lab, "show", str(spec_file(tmp_path, "darts01"))))
    assert "graph.nodes.pretrain.hypergradient: unknown hypergradient estimator 'darts01'" in line
    assert "'cg', 'darts'" in line and "'darts02'" in line  # registered and installed ones
    assert "Registered in another process" in line and "imports:" in line
    assert "--import MODULE" in line


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_spec_imports_make_show_run_eval_and_resume_see_the_estimator(
    lab: Path, tmp_path: Path
) -> None:
    spec = spec_file(tmp_path, "darts01", ["lab_est"])
    shown = metamask(lab, "show", str(spec))
    assert shown.returncode == 0, shown.stderr
    assert "darts01" in shown.stdout
    out = tmp_path / "run"
    first = metamask(lab, "run", str(spec), "--out", str(out), *TINY, "--set", "train.steps=2")
    assert first.returncode == 0, first.stderr
    saved = yaml.safe_load((out / "spec.yaml").read_text())
    assert saved["imports"] == ["lab_est"]  # the run folder records what it needs
    assert saved["graph"]["nodes"]["pretrain"]["hypergradient"]["type"] == "darts01"
    # a fresh process, only the run folder: the saved spec imports the module again
    resumed = metamask(lab, "run", "--resume", str(out), "--set", "train.steps=3", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    evaluated = metamask(
        lab, "eval", str(out), "--set", "eval.probe.epochs=1", "--quiet", cwd=tmp_path
    )
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["spec"]["imports"] == ["lab_est"]


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_the_import_flag_imports_and_the_run_folder_records_it(lab: Path, tmp_path: Path) -> None:
    args = ["--set", "graph.nodes.pretrain.hypergradient.type=darts01", "--import", "lab_est"]
    out = tmp_path / "run"
    ran = metamask(lab, "run", str(BASE), "--out", str(out), *TINY, "--set", "train.steps=1", *args)
    assert ran.returncode == 0, ran.stderr
    assert yaml.safe_load((out / "spec.yaml").read_text())["imports"] == ["lab_est"]


def test_an_installed_entry_point_is_loaded_when_its_name_is_asked_for(
    lab: Path, tmp_path: Path
) -> None:
    shown = metamask(lab, "show", str(spec_file(tmp_path, "darts02")))
    assert shown.returncode == 0, shown.stderr
    assert "darts02" in shown.stdout


@pytest.mark.parametrize(
    ("imports", "flag", "expected"),
    [
        (["lab_missing"], [], "spec.yaml: imports[0]: cannot import module 'lab_missing' "
         "(ModuleNotFoundError: No module named 'lab_missing')"),
        (["lab_est", "lab_broken"], [], "spec.yaml: imports[1]: cannot import module "
         "'lab_broken' (RuntimeError: the lab server is down)"),
        (["lab/est.py"], [], "spec.yaml: imports[0]: 'lab/est.py' is not a module name"),
        ([], ["--import", "lab_missing"], "--import lab_missing: cannot import module "
         "'lab_missing' (ModuleNotFoundError"),
    ],
)  # fmt: skip
def test_a_module_that_cannot_be_imported_is_one_line_exit_2(
    lab: Path,
    tmp_path: Path,
    imports: list[str],
    flag: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(lab))
    spec = spec_file(tmp_path, "darts", imports)
    out = tmp_path / "run"
    for command in (
        ["show", str(spec), *flag],
        ["run", str(spec), *TINY, *flag, "--out", str(out)],
    ):
        assert main(command) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], lines
        assert not out.exists()  # nothing written


def test_the_same_through_the_real_command_line(lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = spec_file(tmp_path, "darts", ["lab_broken"])
    line = one_line(metamask(lab, "run", str(spec), *TINY, "--out", str(out)))
    assert "spec.yaml: imports[0]: cannot import module 'lab_broken' (RuntimeError" in line
    assert not out.exists()


def test_a_bad_spec_is_refused_before_its_imports_run(lab: Path, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, "darts", ["lab_marker"], trian={"steps": 1})
    line = one_line(metamask(lab, "show", str(spec)))
    assert "trian: unknown key (did you mean 'train'?)" in line
    assert not (lab / "imported").exists()  # parsing imported no user code
    shown = metamask(lab, "show", str(spec_file(tmp_path, "darts", ["lab_marker"])))
    assert shown.returncode == 0 and (lab / "imported").exists()  # imported when built


def test_module_names_are_checked_without_importing() -> None:
    check_module_names(["a", "a.b_c", "_x.y1"], "s.yaml")
    for bad in ("a/b", "a.py.", "1a", "a b", ""):
        with pytest.raises(ConfigError, match=r"s\.yaml: imports\[1\]: .* is not a module name"):
            check_module_names(["ok", bad], "s.yaml")


def test_entry_points_load_lazily_and_a_hollow_one_is_refused(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(lab))
    try:
        assert registry.installed_estimators() == {
            "darts02": "lab_plugin_est",
            "hollow": "lab_hollow",
        }
        assert "darts02" not in registry.ESTIMATORS  # listed, not imported
        assert registry.get_estimator("darts02").description == "darts, registered by a user module"
        with pytest.raises(ConfigError, match=r"'hollow': its entry point 'lab_hollow' .* "
                           r"loaded but registered no estimator 'hollow'"):  # fmt: skip
            registry.get_estimator("hollow")
    finally:
        registry.unregister_estimator("darts02")

"""Tables for people: the graph table names the estimators the picture names; tables fit 80
columns without cutting a name."""

from __future__ import annotations

import io
import re
from pathlib import Path

from helpers import METAMAE_GRAPH, mlo_graph, tiny_spec
from rich.console import Console

from metamask.config import OptimizerSpec
from metamask.data.base import LoadOptions
from metamask.data.registry import all_datasets
from metamask.report import (
    datasets_table,
    graph_table,
    optimizer_lines,
    results_row,
    results_table,
)
from metamask.topology import edge_estimator


def _text(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_only_nodes_with_edges_up_have_an_estimator() -> None:
    spec = tiny_spec(mlo_graph(mask={"hypergradient": {"type": "neumann"}}))
    assert edge_estimator(spec.graph, "mask") is None  # top node: no estimator runs for it
    assert edge_estimator(spec.graph, "pretrain") == "darts"
    assert edge_estimator(spec.graph, "head") == "darts"
    rows = {line.split()[0]: line.split() for line in _text(graph_table(spec)).splitlines()[3:]}
    assert rows["mask"][3] == "-" and rows["pretrain"][3] == "darts"
    assert "neumann" not in _text(graph_table(spec))


def test_estimator_options_are_shown_in_the_table() -> None:
    graph = {**METAMAE_GRAPH}
    spec = tiny_spec(graph)
    assert edge_estimator(spec.graph, "adapt", options=True) == edge_estimator(
        spec.graph, "adapt"
    )  # no options: the bare name
    spec = tiny_spec(mlo_graph(pretrain={"hypergradient": {"type": "neumann", "iterations": 3}}))
    assert edge_estimator(spec.graph, "pretrain", options=True) == "neumann iterations=3"
    assert "neumann iterations=3" in _text(graph_table(spec), width=120)


def test_results_table_fits_80_columns_with_names_whole() -> None:
    row = {
        "dataset": "synthetic_wafers",
        "method": "metamae+mask",
        "metric": "binary_accuracy",
        "test": "0.1234 ± 0.0123 (n=3)",
        "seconds_per_step": 0.123456,
        "ratio_vs_mae": 1.5,
    }
    other = {**row, "dataset": "wine", "method": "mae", "test": "0.9 ± 0.01 (n=3)"}
    text = _text(results_table([row, other], "MAE vs MetaMAE", row.keys()))
    assert "…" not in text
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    assert "synthetic_wafers" in text and "metamae+mask" in text and "binary_accuracy" in text
    assert "s/step" in text and "0.1235" in text


def test_datasets_notes_share_one_number_per_reason(tmp_path: Path) -> None:
    options = LoadOptions(data_root=str(tmp_path))
    tables, notes = datasets_table(all_datasets(), options)
    text = _text(tables, 80)
    assert "…" not in text and all(len(line.rstrip()) <= 80 for line in text.splitlines())
    reasons = {e.requires(options) for e in all_datasets().values()} - {None}
    assert len(notes) == len(reasons) > 1  # one note per reason; each folder names its files
    assert {note.split(") ", 1)[1] for note in notes} == reasons
    for number in range(1, len(notes) + 1):
        assert f"no ({number})" in text
    assert "folder" not in text.split()  # none found under an empty --data-root
    _, notes = datasets_table(all_datasets(), LoadOptions())
    assert len(notes) == 1 and notes[0].startswith("(1) needs --data-root")


def test_one_run_summary_is_key_value_lines_with_every_metric() -> None:
    results = {
        "name": "metamae+mask-synthetic_wafers",
        "dataset": "synthetic_wafers",
        "metric": "weighted_f1",
        "test": 0.5,
        "val": 0.25,
        "finetune": {"metric": "weighted_f1", "test": 0.75, "val": 0.625},
        "train": {"seconds_per_step": 0.123456},
    }
    row = results_row(results)
    title = "results (runs/metamae+mask-synthetic_wafers/20260101-120000/results.json)"
    lines = _text(results_table([row], title, row.keys())).splitlines()
    assert lines[0] == title  # the path whole, on its own line
    pairs = {line[:14].strip(): line[14:].strip() for line in lines[1:]}
    assert pairs == {
        "run": "metamae+mask-synthetic_wafers",
        "dataset": "synthetic_wafers",
        "metric": "weighted_f1",
        "test": "0.5000",
        "val": "0.2500",
        "finetune test": "0.7500",
        "finetune val": "0.6250",
        "s/step": "0.1235",
    }


def test_optimizer_lines_spell_out_the_defaults() -> None:
    """optimizer: {lr: 0.1} means AdamW with the default weight decay and betas: said so."""
    spec = tiny_spec(mlo_graph(head={"optimizer": {"lr": 0.1}}, mask={"optimizer": None}))
    lines = optimizer_lines(spec, trained=["pretrain", "head", "mask"])
    assert lines[0].startswith("optimizers (resolved")
    by_node = {line.split(":")[0].strip(): line for line in lines[1:]}
    wd, betas = OptimizerSpec.weight_decay, OptimizerSpec.betas
    assert by_node["head"] == (
        f"  head: adamw lr 0.1, weight decay {wd:g}, betas {betas}, constant schedule"
    )
    assert by_node["mask"].endswith("(no optimizer key: all defaults)")
    assert "mask" not in {n for n, _ in (line.split(":", 1) for line in optimizer_lines(spec))}


def test_the_graph_docs_state_the_optimizer_defaults_the_schema_has() -> None:
    text = " ".join((Path(__file__).resolve().parents[1] / "docs/graphs.md").read_text().split())
    stated = re.search(
        r"\*\*AdamW, lr (\S+), weight decay (\S+) \(decoupled\), betas (\(.*?\)), (\w+) "
        r"schedule, no warm-up\*\*",
        text,
    )
    assert stated is not None
    o = OptimizerSpec()
    assert (o.type, o.warmup_steps) == ("adamw", 0)
    assert float(stated[1]) == o.lr and float(stated[2]) == o.weight_decay
    assert stated[3] == str(o.betas) and stated[4] == o.schedule

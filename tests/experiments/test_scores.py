"""metamask.experiments.scores: what a comparison reads of results.json, and what it skips."""

from __future__ import annotations

from metamask.experiments.scores import run_scores, scale_and_unit, seconds_per_step


def test_probe_finetune_and_an_audit_summary_are_read_when_present() -> None:
    results = {
        "test": 0.9,
        "finetune": {"test": 0.95, "val": 0.9},
        "audit": {"summary": {"cosine": 0.5, "verdict": "ok", "flag": True, "nan": float("nan")}},
        "train": {"seconds": 10.0, "seconds_per_step": 0.1},
    }
    assert run_scores(results) == {"probe": 0.9, "finetune": 0.95, "audit.cosine": 0.5}
    assert run_scores({"test": 0.9, "audit": {"error": 0.01}}) == {
        "probe": 0.9,
        "audit.error": 0.01,
    }  # an audit without a summary block: its own numbers


def test_absent_or_null_scores_are_left_out() -> None:
    assert run_scores({}) == {}
    assert run_scores({"test": None, "finetune": None, "audit": None}) == {}
    assert seconds_per_step({"train": {"seconds_per_step": 0.0}}) is None  # trained nothing here
    assert scale_and_unit("probe") == (100.0, "points")
    assert scale_and_unit("audit.cosine") == (1.0, "")

"""Every shipped spec resolves to its entry in tests/fixtures/resolved_specs.json.

The fixture is the resolution from before the specs were composed with ``extends:``
(tests/fixtures/make_resolved_specs.py writes it); a spec that is meant to change updates its
entry in the same commit, saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metamask.config import load_spec, spec_to_dict

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "resolved_specs.json").read_text())
SPECS = sorted(p.name for p in (ROOT / "problems").glob("*.yaml"))


def test_the_same_spec_files_as_the_fixture() -> None:
    assert sorted(FIXTURE) == SPECS


@pytest.mark.parametrize("name", SPECS)
def test_spec_resolves_to_its_fixture(name: str) -> None:
    resolved = spec_to_dict(load_spec(ROOT / "problems" / name))
    expected = FIXTURE[name]
    assert resolved == expected
    for key in ("nodes", "u2l", "l2u"):  # order matters here: the build order of the nodes
        assert list(resolved["graph"][key]) == list(expected["graph"][key]), key

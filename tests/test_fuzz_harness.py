"""The fuzz harness (benchmarks/fuzz.py) classifies every way a case can end."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def fuzz():
    path = PROJECT_ROOT / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("pku_aigi_fuzz", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_harness_classifies_each_outcome(fuzz, tmp_path):
    """Two of each outcome: the children survive refusals and are replaced after a
    crash, a hang (watchdog) or a runaway allocation (address-space cap); a case that
    leaves more than the bound in its temporary folder is over-disk."""
    counts, findings = fuzz.fuzz(
        ["_selftest"],
        count=18,
        seed=1,
        jobs=2,
        timeout=3,
        memory_mb=512,
        disk_mb=8,
        workdir=tmp_path,
    )
    row = counts["_selftest"]
    assert dict(row) == {
        "clean": 4,  # valid + refused with a PkuAigiError
        "unclean": 2,
        "crash": 2,
        "hang": 2,
        "over-memory": 2,
        "over-disk": 2,
        "wrong": 2,
        "dropped": 2,
    }
    details = {column: detail for _, column, _, detail in findings}
    assert details["crash"] == "signal SIGSEGV"
    assert details["unclean"].startswith("KeyError: 'escaped on purpose'")
    assert details["over-disk"].startswith("left 16.0 MB on disk (bound 8 MB); clean")
    table = fuzz.format_table(counts)
    assert (
        "| _selftest | 18    | 4     | 2       | 2     | 2    | 2           | 2         | 2     "
        "| 2       |" in table
    )


@pytest.mark.slow
def test_seeded_slice_of_every_surface_ends_cleanly(fuzz, tmp_path):
    """CI's slice of the fuzz run (the README has the full run): 1,600 crafted inputs over
    every surface, each refused with a PkuAigiError or decoded exactly."""
    names = fuzz.available_surfaces()
    boundaries = {"aigic", "archives", "images", "model_folders", "zoo_downloads"}
    assert boundaries | {"zoo_entries", "space_http", "cli_inputs"} <= set(names)
    counts, findings = fuzz.fuzz(names, count=1600, seed=2024, jobs=2, timeout=30, workdir=tmp_path)
    assert sum(sum(row.values()) for row in counts.values()) == 1600
    assert set(counts) == set(names)
    shown = "\n".join(f"{s} {col}: {case.get('kind')}: {d}" for s, col, case, d in findings[:20])
    assert not findings, f"{len(findings)} cases did not end cleanly:\n{shown}"

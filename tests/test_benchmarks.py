"""Smoke runs of the benchmarks in --quick mode, so that they cannot rot.

Each script runs as a subprocess with tiny sizes; it must exit 0 and print its figures line
and its budget lines. Timings are not asserted: a missed budget is information, not a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = {
    "throughput": "throughput figures:",
    "pickup_latency": "pickup_latency figures:",
    "idle_cost": "idle_cost figures:",
    "burst": "burst figures:",
    "big_file": "big_file figures:",
    "journal_status": "journal_status figures:",
    "service_makespan": "service_makespan figures:",
    "two_stations": "two_stations figures:",
    "profile_stages": "profile_stages figures:",
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_in_quick_mode(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"{name} crashed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert any(line.startswith(SCRIPTS[name]) for line in lines), done.stdout
    assert any(line.startswith(("budget: PASS", "budget: FAIL")) for line in lines), done.stdout

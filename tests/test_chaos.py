"""The chaos run (benchmarks/chaos.py) in its short form: 30 files, faults of every kind the
sandbox knows, and the daemon killed with SIGKILL four times at random moments; files held
because the service did not know them are sent again by the "user", as README says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

CHAOS = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"


def load_chaos():
    spec = importlib.util.spec_from_file_location("chaos", CHAOS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module
    spec.loader.exec_module(module)
    return module


def test_chaos_nothing_lost_nothing_paid_twice(tmp_path: Path) -> None:
    chaos = load_chaos()
    report = chaos.run_chaos(tmp_path, files=30, kills=4, seed=20261127, timeout=150)
    print(report.line())
    assert report.lost == 0 and report.duplicated == 0, report.line()
    assert report.auto_duplicated == 0, report.line()  # never twice without the user's say
    assert report.damaged == 0 and report.leftovers == 0, report.line()
    assert 30 <= report.charges <= 30 + report.held, report.line()
    assert sum(report.faults.values()) >= 5, "the run must really have been disturbed"


def test_chaos_three_stations_on_one_inbox(tmp_path: Path) -> None:
    """Three PCs with their own state folders on one inbox, faults, stations killed at
    random: each file converted, delivered once, never charged twice without the user."""
    chaos = load_chaos()
    report = chaos.run_chaos(tmp_path, files=30, kills=3, seed=20261201, timeout=150, stations=3)
    print(report.line())
    assert report.lost == 0 and report.duplicated == 0, report.line()
    assert report.auto_duplicated == 0, report.line()
    assert report.damaged == 0 and report.leftovers == 0, report.line()
    assert 30 <= report.charges <= 30 + report.held, report.line()

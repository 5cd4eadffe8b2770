"""benchmarks/pbt_overhead.py part (b) runs end to end on a tiny population (keeps the script from rotting)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pbt_overhead.py"


def test_part_b_runs_and_reads_every_member(capsys):
    spec = importlib.util.spec_from_file_location("pbt_overhead", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.part_b_iteration_cost(sizes=(3, 5), repeats=2, history=2)
    assert [r["population"] for r in rows] == [3, 5]
    assert all(r["median_ms"] > 0 and r["min_ms"] <= r["median_ms"] <= r["max_ms"] for r in rows)
    assert mod.main(["--parts", "b", "--sizes", "4", "--repeats", "1"]) == 0
    assert "one PBT iteration" in capsys.readouterr().out

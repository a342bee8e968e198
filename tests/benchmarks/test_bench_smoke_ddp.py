"""Smoke run of bench_ddp.py: one in-process fit and one torchrun fit (2 gloo ranks) of a tiny model."""

from __future__ import annotations

from tests.benchmarks.files import REAL_RESULTS, digest, run_smoke


def test_ddp_smoke_trains_on_one_and_two_processes_without_touching_results() -> None:
    before = digest(REAL_RESULTS)
    output = run_smoke("bench_ddp.py", timeout=300)
    rows = [line for line in output.splitlines() if line.startswith(("| 1 (", "| 2 ("))]
    assert len(rows) == 2, output
    one, two = ([cell.strip() for cell in row.strip("|").split("|")] for row in rows)
    assert one[0] == "1 (in process)" and two[0] == "2 (torchrun, gloo)"
    assert one[3] == "1.00×" and float(two[3].rstrip("×")) > 0
    # same seed, data and global batch: the two runs end at nearly the same loss
    assert abs(float(one[5]) - float(two[5])) < 0.05, (one, two)
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"

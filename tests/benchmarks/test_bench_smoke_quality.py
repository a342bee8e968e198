"""Smoke runs of the quality and continual-learning benchmarks: tiny model, synthetic rows, seconds.

They check the harness end to end (loopline's trainer, retrain path and gate are really called),
the printed tables, and that a smoke run never appends to the real benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.files import REAL_RESULTS, digest, rows_by_first_cell, run_smoke, table


def test_quality_smoke_prints_table_and_writes_only_where_told(tmp_path: Path) -> None:
    before = digest(REAL_RESULTS)
    results = tmp_path / "RESULTS.md"
    output = run_smoke("bench_quality.py", "--results", str(results))
    header = table(output, "run")[0]
    assert header[:4] == ["run", "test accuracy %", "test macro-F1 %", "best epoch / run"]
    row = rows_by_first_cell(output, "run")["seed 13"]
    assert 0.0 <= float(row[1]) <= 100.0 and 0.0 <= float(row[2]) <= 100.0
    assert "difference to reference loop" in output and "target ≥ 91.5" in output
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_quality" in written
    assert "| seed 13 |" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"


def test_quality_smoke_trains_seeds_in_parallel_processes() -> None:
    output = run_smoke("bench_quality.py", "--seeds", "3", "4", "--jobs", "2", "--no-write")
    rows = rows_by_first_cell(output, "run")
    assert list(rows)[:3] == ["seed 3", "seed 4", "**mean ± std (2 seed(s))**"]
    accuracies = [float(rows[seed][1]) for seed in ("seed 3", "seed 4")]
    mean = float(rows["**mean ± std (2 seed(s))**"][1].split("±")[0])
    assert abs(mean - sum(accuracies) / 2) < 0.01


def test_continual_smoke_compares_three_methods_without_touching_results() -> None:
    before = digest(REAL_RESULTS)
    output = run_smoke("bench_continual.py")
    per_round = table(output, "step")[0]
    for column in (
        "intents seen",
        "rows in / accepted / quarantined / already stored",
        "naive acc %",
        "loopline acc %",
        "joint acc %",
        "loopline gate",
    ):
        assert column in per_round
    steps = rows_by_first_cell(output, "step")
    assert list(steps) == ["bootstrap", "round 1", "round 2", "round 3"]
    summary = table(output, "method")[0]
    assert summary[:5] == [
        "method",
        "final acc, all intents %",
        "ACC (mean over groups) %",
        "BWT (points)",
        "gap to joint (points)",
    ]
    methods = rows_by_first_cell(output, "method")
    assert set(methods) == {"naive", "loopline", "joint"}
    for name in ("naive", "loopline"):
        float(methods[name][3])  # BWT is a number for the sequential methods
    # loopline trains on feedback plus replay, so more rows than naive from round 1 on
    assert "replay)" in steps["round 1"][4]
    rows_in, accepted, quarantined, already_stored = (int(n) for n in steps["round 1"][2].split(" / "))
    assert accepted + quarantined + already_stored <= rows_in and accepted > 0
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"

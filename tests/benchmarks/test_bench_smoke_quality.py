"""Smoke runs of the quality and continual-learning benchmarks: tiny model, synthetic rows, seconds.

They check the harness end to end (loopline's trainer, retrain path and gate are really called),
the printed tables, and that a smoke run never appends to the real benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.files import digest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO_ROOT / "benchmarks"
REAL_RESULTS = BENCHMARKS / "RESULTS.md"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _header_cells(output: str, first_cell: str) -> list[str]:
    line = next((ln for ln in output.splitlines() if ln.startswith(f"| {first_cell} |")), None)
    assert line is not None, f"no table starting with '{first_cell}' in:\n{output}"
    return [cell.strip() for cell in line.strip("|").split("|")]


def _rows(output: str, first_cells: list[str]) -> dict[str, list[str]]:
    """Cells of the first table row starting with each of ``first_cells``."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")] if line.startswith("|") else []
        if cells and cells[0] in first_cells and cells[0] not in rows:
            rows[cells[0]] = cells
    return rows


def test_quality_smoke_prints_table_and_writes_only_where_told(tmp_path: Path) -> None:
    before = digest(REAL_RESULTS)
    results = tmp_path / "RESULTS.md"
    output = _run("bench_quality.py", "--results", str(results))
    header = _header_cells(output, "run")
    assert header[:4] == ["run", "test accuracy %", "test macro-F1 %", "best epoch / run"]
    row = _rows(output, ["seed 13"])["seed 13"]
    assert 0.0 <= float(row[1]) <= 100.0 and 0.0 <= float(row[2]) <= 100.0
    assert "difference to reference loop" in output and "target ≥ 91.5" in output
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_quality" in written
    assert "| seed 13 |" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"


def test_quality_smoke_trains_seeds_in_parallel_processes() -> None:
    output = _run("bench_quality.py", "--seeds", "3", "4", "--jobs", "2", "--no-write")
    rows = _rows(output, ["seed 3", "seed 4", "**mean ± std (2 seed(s))**"])
    assert list(rows) == ["seed 3", "seed 4", "**mean ± std (2 seed(s))**"]
    accuracies = [float(rows[seed][1]) for seed in ("seed 3", "seed 4")]
    mean = float(rows["**mean ± std (2 seed(s))**"][1].split("±")[0])
    assert abs(mean - sum(accuracies) / 2) < 0.01


def test_continual_smoke_compares_three_methods_without_touching_results() -> None:
    before = digest(REAL_RESULTS)
    output = _run("bench_continual.py")
    per_round = _header_cells(output, "step")
    for column in ("intents seen", "naive acc %", "loopline acc %", "joint acc %", "loopline gate"):
        assert column in per_round
    steps = _rows(output, ["bootstrap", "round 1", "round 2", "round 3"])
    assert list(steps) == ["bootstrap", "round 1", "round 2", "round 3"]
    summary = _header_cells(output, "method")
    assert summary[:5] == [
        "method",
        "final acc, all intents %",
        "ACC (mean over groups) %",
        "BWT (points)",
        "gap to joint (points)",
    ]
    methods = _rows(output, ["naive", "loopline", "joint"])
    assert set(methods) == {"naive", "loopline", "joint"}
    for name in ("naive", "loopline"):
        float(methods[name][3])  # BWT is a number for the sequential methods
    # loopline trains on feedback plus replay, so more rows than naive from round 1 on
    assert "replay)" in steps["round 1"][4]
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"

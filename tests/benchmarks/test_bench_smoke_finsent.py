"""Smoke runs of the financial-sentiment benchmark: tiny model, a few hundred rows, seconds.

They check the harness end to end (class ids → names through loopline's reader and the example
config's label_map, loopline's trainer, the per-class table) and that a smoke run never appends to
the real benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.files import REAL_RESULTS, REPO_ROOT, digest, run_smoke

FINSENT = REPO_ROOT.parent / "shared" / "data" / "twitter_financial_news_sentiment"


def _run(*args: str) -> str:
    # No LOOPLINE_* from the caller's shell: the benchmark loads settings as `loopline train` does.
    return run_smoke("bench_finsent.py", *args, without=("LOOPLINE_",), timeout=120)


def _row(output: str, first_cell: str) -> list[str]:
    line = next((ln for ln in output.splitlines() if ln.startswith(f"| {first_cell} |")), None)
    assert line is not None, f"no table row starting with '{first_cell}' in:\n{output}"
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_finsent_smoke_maps_class_ids_to_names_and_writes_only_where_told(tmp_path: Path) -> None:
    before = digest(REAL_RESULTS)
    results = tmp_path / "RESULTS.md"
    output = _run("--results", str(results))  # synthetic rows with ids 0/1/2, as in the real files
    header = _row(output, "run")
    assert header[:6] == [
        "run",
        "accuracy %",
        "macro-F1 %",
        "recall bearish %",
        "recall bullish %",
        "recall neutral %",
    ]
    seed = _row(output, "seed 0")
    assert all(0.0 <= float(cell) <= 100.0 for cell in seed[1:6])
    assert "0 → bearish, 1 → bullish, 2 → neutral" in output
    assert "goal ≥ 88.0" in output and "finbert-tone" in output
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_finsent" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"


@pytest.mark.skipif(not FINSENT.is_dir(), reason=f"financial sentiment data not found at {FINSENT}")
def test_finsent_smoke_on_the_real_files_keeps_their_label_shares() -> None:
    before = digest(REAL_RESULTS)
    output = _run("--data", str(FINSENT), "--seeds", "3", "--no-write")
    seed = _row(output, "seed 3")
    assert 0.0 <= float(seed[1]) <= 100.0
    # a stratified slice of sent_train.csv: neutral stays the majority, every class is there
    assert "bearish 45, bullish 60, neutral 194" in output and "90 rows of sent_valid.csv scored" in output
    assert digest(REAL_RESULTS) == before

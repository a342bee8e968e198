"""Smoke run of the cost-as-work-grows benchmark (200 / 400 rows, in one process, seconds): every stage
really runs, the table has a row per stage and size with per-row ratios against the smallest size, and a
smoke run never appends to the real benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.files import BENCHMARKS, REAL_RESULTS, REPO_ROOT, digest, table

SCRIPT = BENCHMARKS / "bench_cost.py"
STAGES = ("contract", "feedback import", "feedback review", "snapshot", "monitor window read")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cost_smoke_measures_every_stage_at_both_sizes(tmp_path: Path) -> None:
    before = digest(REAL_RESULTS)
    results = tmp_path / "RESULTS.md"
    done = _run("--smoke", "--results", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert digest(REAL_RESULTS) == before, "a smoke run changed benchmarks/RESULTS.md"
    rows = {(row[0], row[1]): row for row in table(done.stdout, "stage")[1:]}  # by (stage, rows)
    for stage in (*STAGES, "monitor drift check"):
        small, large = rows[(stage, "200")], rows[(stage, "400")]
        assert small[6] == "1.00", small  # the per-row CPU ratio is against the smallest size
        # wall and CPU seconds print with 2 decimals, so a fast stage on 400 rows may show 0.00; the
        # per-row cost comes from the unrounded CPU time and must be there
        assert float(large[2]) >= 0 and float(large[3]) >= 0 and float(large[6]) >= 0, large
        assert float(large[5].replace(",", "")) > 0, large  # CPU µs/row
        assert float(large[7].replace(",", "")) > 0, large  # peak RSS
    # The stages really ran on the same rows: the contracts accept the same rows, the monitor reads them.
    accepted = rows[("contract", "400")][9].split()[0]
    assert rows[("feedback review", "400")][9].startswith(f"{accepted} accepted")
    assert rows[("monitor window read", "400")][9] == f"window {accepted}, labelled {accepted}"
    assert rows[("feedback import", "400")][9] == "400 added, 0 already stored"
    assert rows[("snapshot", "400")][9].startswith("ds-")
    assert "## bench_cost" in results.read_text()


def test_cost_refuses_sizes_too_small_for_the_contract() -> None:
    done = _run("--rows", "50", "--no-write")
    assert done.returncode == 2
    assert "--rows: at least 100 rows per size" in done.stderr and "Traceback" not in done.stderr

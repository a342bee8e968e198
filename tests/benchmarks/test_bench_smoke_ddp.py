"""Smoke run of bench_ddp.py: one in-process fit and one torchrun fit (2 gloo ranks) of a tiny model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"


def test_ddp_smoke_trains_on_one_and_two_processes_without_touching_results() -> None:
    before = hashlib.sha256(REAL_RESULTS.read_bytes()).hexdigest()
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_ddp.py"), "--smoke"],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"bench_ddp.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 1 (", "| 2 ("))]
    assert len(rows) == 2, done.stdout
    one, two = ([cell.strip() for cell in row.strip("|").split("|")] for row in rows)
    assert one[0] == "1 (in process)" and two[0] == "2 (torchrun, gloo)"
    assert one[3] == "1.00×" and float(two[3].rstrip("×")) > 0
    # same seed, data and global batch: the two runs end at nearly the same loss
    assert abs(float(one[5]) - float(two[5])) < 0.05, (one, two)
    assert hashlib.sha256(REAL_RESULTS.read_bytes()).hexdigest() == before

"""The serving benchmark's harness, end to end on a tiny model: both servers really start and answer.

Here rather than in tests/benchmarks because, like the other tests of this folder, it is processes all
the way (loopline train, loopline serve, mlflow models serve): it runs in the parallel CLI tier.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_serve_benchmark_smoke_prints_both_servers_and_writes_nothing(tmp_path: Path) -> None:
    results = BENCHMARKS / "RESULTS.md"
    before = hashlib.sha256(results.read_bytes()).hexdigest()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "LOOPLINE_"))}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_serve.py"), "--smoke"],
        cwd=tmp_path,
        env={**env, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| loopline serve (torch; logs + embeds) |" in done.stdout
    assert "| mlflow models serve |" in done.stdout
    assert "Against the anchor" in done.stdout
    assert hashlib.sha256(results.read_bytes()).hexdigest() == before
    assert list(tmp_path.iterdir()) == [] or all(p.name.startswith(".") for p in tmp_path.iterdir())

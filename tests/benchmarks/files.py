"""Shared by the benchmark smoke tests: run a benchmark's smoke mode as its own process, and check that it
left benchmarks/RESULTS.md as it was."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO_ROOT / "benchmarks"
REAL_RESULTS = BENCHMARKS / "RESULTS.md"  # what a smoke run must leave as it was


def digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None where it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_smoke(
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    without: tuple[str, ...] = (),
    timeout: int = 180,
) -> str:
    """``python benchmarks/<script> --smoke <args>`` from the repository root, offline; its stdout. ``env``
    adds variables to this process's environment; ``without`` leaves out those whose names start with
    one of these prefixes (a caller's LOOPLINE_* or PREFECT_API_URL must not steer the benchmark)."""
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith(without)}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", *args],
        cwd=REPO_ROOT,
        env={**inherited, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def table(output: str, header: str) -> list[list[str]]:
    """Cells of the first Markdown table in ``output`` whose header row starts with ``| {header} |``:
    the header row first, the separator row dropped."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {header} |")), None)
    assert start is not None, f"no table starting with '{header}' in:\n{output}"
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def rows_by_first_cell(output: str, header: str) -> dict[str, list[str]]:
    """The body rows of ``table(output, header)`` by their first cell, in order (the first row wins)."""
    rows: dict[str, list[str]] = {}
    for row in table(output, header)[1:]:
        rows.setdefault(row[0], row)
    return rows

"""What the benchmark smoke tests check on disk: a smoke run must leave benchmarks/RESULTS.md as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None where it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

"""sha256 manifests of model folders: recorded at registration, checked on every download and cache read,
so a truncated or overwritten weight file is named in a clear error instead of failing deep in torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST_TAG = "loopline.model_sha256"  # model version tag: {relative file: sha256} of the HF folder
CACHE_MARKER = ".loopline-manifest.json"  # written into a cached download once it has been checked


def file_manifest(model_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``model_dir`` (relative POSIX names), marker files excluded."""
    manifest = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != CACHE_MARKER):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        manifest[path.relative_to(model_dir).as_posix()] = digest.hexdigest()
    return manifest


def manifest_tag(model_dir: Path) -> str:
    return json.dumps(file_manifest(model_dir), sort_keys=True, separators=(",", ":"))


def parse_manifest(tag: str | None) -> dict[str, str] | None:
    if not tag:
        return None
    try:
        value = json.loads(tag)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def manifest_differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Human-readable differences: missing, changed and unexpected files."""
    problems = [f"{name} is missing" for name in sorted(set(expected) - set(actual))]
    problems += [
        f"{name} differs" for name in sorted(expected) if name in actual and actual[name] != expected[name]
    ]
    problems += [f"{name} was not registered" for name in sorted(set(actual) - set(expected))]
    return problems

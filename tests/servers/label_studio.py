"""A real Label Studio server for tests: ``label-studio start`` from its own virtual environment (``make
labelstudio``), on loopback, with its data, database and HOME in a throw-away folder.

The user and its API token come from the environment (LABEL_STUDIO_USERNAME / _PASSWORD / _USER_TOKEN),
and legacy tokens are enabled for the organization it creates (LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN: off
by default since 1.17). The database starts as a copy of the template ``make labelstudio`` migrated, so
the server is up in seconds rather than after minutes of migrations; without the template it migrates.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.processes import ServerProcess, free_port, launch, server_env

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("LOOPLINE_TEST_LABEL_STUDIO_VENV", REPO / ".venv-labelstudio"))
BINARY = VENV / "bin" / "label-studio"
TEMPLATE_DB = VENV / "template" / "label_studio.sqlite3"
START_TIMEOUT_S = 120 if TEMPLATE_DB.is_file() else 600  # a fresh database: minutes of migrations
USER, PASSWORD, TOKEN = "loopline@example.com", "loopline-test-password", "loopline-test-token-0123456789"
# Read by Label Studio with or without its LABEL_STUDIO_ prefix: a caller's PORT or HOST must not leak in.
UNPREFIXED = ("PORT", "HOST", "USERNAME", "PASSWORD", "USER_TOKEN", "DATABASE_NAME")


@dataclass(frozen=True)
class LabelStudio:
    url: str
    token: str
    process: ServerProcess


def unavailable_reason() -> str | None:
    if not BINARY.is_file():
        return f"Label Studio is not installed in {VENV} (run `make labelstudio`)"
    return None


def launch_label_studio(workdir: Path) -> LabelStudio:
    """Start the server (not waiting for it: call ``process.wait_healthy``)."""
    data, home = workdir / "data", workdir / "home"
    data.mkdir(parents=True)
    home.mkdir()
    if TEMPLATE_DB.is_file():
        shutil.copy(TEMPLATE_DB, data / "label_studio.sqlite3")
    port = free_port()
    env = server_env(
        HOME=str(home),
        LABEL_STUDIO_USERNAME=USER,
        LABEL_STUDIO_PASSWORD=PASSWORD,
        LABEL_STUDIO_USER_TOKEN=TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LATEST_VERSION_CHECK="false",  # else it asks PyPI for a newer version at start
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",  # else errors are reported to Label Studio's Sentry (its default DSN)
        FRONTEND_SENTRY_DSN="",
        SSRF_PROTECTION_ENABLED="false",  # the webhook receiver listens on loopback, a "private" address
    )
    for name in UNPREFIXED:
        env.pop(name, None)
    cmd = [str(BINARY), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    return LabelStudio(url, TOKEN, launch("label-studio", cmd, env, workdir, f"{url}/health"))

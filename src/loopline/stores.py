"""One way every entry point reaches its stores: the home, MLflow (tracking, registry, artifact root), the
feedback database.

A CLI command, a flow run, a worker or the service calls :func:`connect` once, right after resolving
``Settings`` and before anything touches a store. Nothing in the library then falls back on a library's
process-global default (MLflow's is ``./mlflow.db`` in the working directory).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from loopline.config import Settings
from loopline.errors import StoreError
from loopline.tracking import configure_mlflow, experiment_artifact_locations

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relocation:
    """What ``relocate_home`` rewrote: the old and new home as file URIs, and how many values."""

    old_root: str
    new_root: str
    values_rewritten: int


def connect(settings: Settings) -> str:
    """Create the home if needed, point MLflow at the configured stores (checked reachable), make sure
    the experiment exists and that an embedded home's artifacts are its own; returns the experiment id."""
    prepare_home(settings)
    experiment_id = configure_mlflow(settings)
    check_artifact_root(settings)
    return experiment_id


def prepare_home(settings: Settings) -> Path:
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"Cannot create the loopline home {home}: {err.strerror}.",
            where=str(home),
            hint="Pass --home with a folder you can write to.",
        ) from None
    return home


def _home_uri(settings: Settings) -> str:
    return settings.home.resolve().as_uri()


def _is_embedded(settings: Settings) -> bool:
    """The home holds MLflow's database and artifacts (no tracking URI or artifact root configured)."""
    return settings.tracking_uri is None and settings.artifact_location is None


def check_artifact_root(settings: Settings) -> None:
    """An embedded home's experiments must keep their artifacts inside it: a copied or moved home whose
    MLflow database still points at the old folder would read and write the first home's artifacts."""
    if not _is_embedded(settings):
        return
    home = _home_uri(settings)
    for name, location in experiment_artifact_locations().items():
        if location.startswith("file:") and not _within(location, home):
            old = _old_home(location)
            raise StoreError(
                f"This home's MLflow store keeps the artifacts of experiment '{name}' in another folder, "
                f"{location} (was the home copied or moved from {old}?).",
                where=settings.resolved_tracking_uri,
                hint=f"Make the home its own with `loopline relocate --home {settings.home}` (rewrites the "
                f"recorded paths from {old} to {settings.home.resolve()}), or use the original home.",
            )


def _within(location: str, root_uri: str) -> bool:
    return location.rstrip("/") == root_uri.rstrip("/") or location.startswith(root_uri.rstrip("/") + "/")


def _old_home(location: str) -> str:
    """The home that wrote ``location`` (``<home>/mlartifacts[/...]``)."""
    path = Path(unquote(urlparse(location).path))
    for parent in (path, *path.parents):
        if parent.name == "mlartifacts":
            return str(parent.parent)
    return str(path.parent)


def relocate_home(settings: Settings) -> Relocation | None:
    """Rewrite the absolute paths a copied or moved embedded home recorded (artifact roots of experiments,
    runs, logged models and model versions) to point inside it; None when it already does.

    Works on the SQLite file directly, in one transaction, on every text column: MLflow has no API to
    move an experiment's artifact root.
    """
    if not _is_embedded(settings):
        raise StoreError(
            "Only an embedded home (MLflow on SQLite inside it) can be relocated.",
            where=settings.resolved_tracking_uri,
            hint="A tracking server keeps its own artifact root; move that with the server's tools.",
        )
    db = settings.home / "mlflow.db"
    if not db.is_file():
        raise StoreError(f"No MLflow database in {settings.home}.", where=str(db))
    old_root = _recorded_home(db)
    new_root = _home_uri(settings)
    if old_root is None or old_root == new_root:
        return None
    old_path, new_path = unquote(urlparse(old_root).path), str(settings.home.resolve())
    rewritten = _rewrite_prefixes(db, {old_root + "/": new_root + "/", old_path + "/": new_path + "/"})
    logger.info("Relocated %s: %d recorded paths from %s to %s", db, rewritten, old_root, new_root)
    return Relocation(old_root, new_root, rewritten)


def _recorded_home(db: Path) -> str | None:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT artifact_location FROM experiments").fetchall()
    finally:
        conn.close()
    for (location,) in rows:
        if location and location.startswith("file:") and "/mlartifacts" in location:
            return Path(_old_home(location)).as_uri()
    return None


def _rewrite_prefixes(db: Path, prefixes: dict[str, str]) -> int:
    conn = sqlite3.connect(db)
    try:
        total = 0
        with conn:  # one transaction: all paths move, or none
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                for column in (c[1] for c in columns if "CHAR" in c[2].upper() or "TEXT" in c[2].upper()):
                    for old, new in prefixes.items():
                        cursor = conn.execute(
                            f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                            f'WHERE substr("{column}", 1, ?) = ?',
                            (new, len(old) + 1, len(old), old),
                        )
                        total += cursor.rowcount
        return total
    finally:
        conn.close()

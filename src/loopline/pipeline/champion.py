"""Find the current champion (the ``production`` alias) and fetch its weights for local evaluation."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from loopline.config import Settings
from loopline.errors import LooplineError, StoreError
from loopline.faults import crash_point
from loopline.model_files import read_labels
from loopline.processes import process_is_alive
from loopline.registry.integrity import (
    CACHE_MARKER,
    MANIFEST_TAG,
    file_manifest,
    manifest_differences,
    parse_manifest,
)
from loopline.registry.lookups import get_alias_version, get_version, model_exists
from loopline.tasks import task_of_model

logger = logging.getLogger(__name__)

PRODUCTION = "production"


@dataclass(frozen=True)
class Champion:
    version: str
    model_dir: Path
    tags: dict[str, str]

    @property
    def test_version(self) -> str:
        return test_version_of(self.tags)


def test_version_of(tags: dict[str, str]) -> str:
    """The snapshot whose frozen splits judge a version: the bootstrap data's (tagged on retrained
    versions) or, for a first model, its own training snapshot's."""
    return tags.get("loopline.test_version") or tags.get("loopline.dataset_version", "")


def load_champion(settings: Settings, alias: str = PRODUCTION) -> Champion | None:
    """The model version behind ``alias`` with a local copy of its transformers directory, or None."""
    if not model_exists(settings.model_name):
        return None  # nothing registered yet: the first model is judged on absolute floors
    version = get_alias_version(settings.model_name, alias)
    if version is None:
        return None
    return Champion(str(version.version), fetch_model_dir(settings, str(version.version)), dict(version.tags))


def require_champion(settings: Settings) -> Champion:
    champion = load_champion(settings)
    if champion is None:
        raise LooplineError(
            f"No model version of {settings.model_name} has the alias 'production'.",
            where=mlflow.get_tracking_uri(),  # the store actually read
            hint="bootstrap one with `loopline train --data FILE` (or `loopline demo`).",
        )
    return champion


def require_task(settings: Settings, champion: Champion | None) -> None:
    """Refuse to mix tasks in one model line: the settings' task must be the champion's."""
    if champion is None:
        return
    require_model_task(settings, champion.model_dir, champion.version, PRODUCTION)


def require_model_task(settings: Settings, model_dir: Path, version: str, alias: str | None = None) -> None:
    """Refuse a model folder of another task than the settings' (its data would be read as the wrong
    kind: tag strings as class names, or class names as tags)."""
    found = task_of_model(model_dir).name
    if found != settings.task:
        which = f"v{version}" + (f" ({alias})" if alias else "")
        raise LooplineError(
            f"{settings.model_name} {which} is a {found} classifier, but the task is {settings.task}.",
            where=f"{settings.model_name}@{alias}" if alias else f"models:/{settings.model_name}/{version}",
            hint=f'pass --task {found} (or task = "{found}" in loopline.toml), or use another model_name '
            f"for a {settings.task} model.",
        )


def champion_labels(settings: Settings) -> list[str]:
    """The labels the production model knows, in head order (read from its local copy's config); the
    champion must be of the settings' task (feedback is judged by the task's contract)."""
    champion = require_champion(settings)
    require_task(settings, champion)
    return read_labels(champion.model_dir)


def fetch_model_dir(settings: Settings, version: str) -> Path:
    """A checked local copy of a registered version's HF model folder, under home/models/<name>-v<version>.

    Downloads land in a temporary folder that is renamed only when whole and matching the sha256 manifest
    recorded at registration; a cached copy is checked against it on every read and fetched again when
    damaged. An unknown version raises RegistryError and leaves nothing behind.
    """
    found = get_version(settings.model_name, version)
    expected = parse_manifest((found.tags or {}).get(MANIFEST_TAG))
    target = settings.home / "models" / f"{settings.model_name}-v{found.version}"
    _remove_dead_partials(target)
    if target.exists():
        model_dir = _model_folder(target)
        if model_dir is not None and _is_intact(model_dir, expected):
            return model_dir
        logger.warning(
            "The cached copy of v%s in %s is damaged or incomplete; fetching it again", version, target
        )
        shutil.rmtree(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        _download(settings, str(found.version), partial)
        model_dir = _model_folder(partial)
        if model_dir is None:
            raise StoreError(
                f"{settings.model_name} v{found.version} holds no transformers model (no config.json).",
                where=f"models:/{settings.model_name}/{found.version}",
                hint="Register a model folder written by loopline training.",
            )
        actual = file_manifest(model_dir)
        problems = manifest_differences(expected, actual) if expected else []
        if problems:
            raise StoreError(
                f"The registry's copy of {settings.model_name} v{found.version} is damaged: "
                + ", ".join(problems[:5])
                + ".",
                where=f"models:/{settings.model_name}/{found.version} (artifact store)",
                hint="Restore the artifact store from a backup, or promote another version.",
            )
        (model_dir / CACHE_MARKER).write_text(json.dumps(actual), encoding="utf-8")
        crash_point("fetch.downloaded")
        try:
            os.replace(partial, target)
        except OSError:  # another process renamed its own complete copy into place first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    model_dir = _model_folder(target)
    assert model_dir is not None
    return model_dir


def _download(settings: Settings, version: str, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    try:
        mlflow.artifacts.download_artifacts(
            f"models:/{settings.model_name}/{version}", dst_path=str(destination)
        )
    except MlflowException as err:
        raise StoreError(
            f"Cannot download {settings.model_name} v{version}: {err.message.splitlines()[0][:300]}",
            where=mlflow.get_tracking_uri(),
            hint="Check the artifact store is reachable and holds the model's files.",
        ) from None
    except OSError as err:
        raise StoreError(
            f"Cannot download {settings.model_name} v{version}: {err}",
            where=str(destination),
            hint="Check the artifact store holds the model's files and the home has free space.",
        ) from None


def _model_folder(root: Path) -> Path | None:
    configs = sorted(root.rglob("config.json"))
    return configs[0].parent if configs else None


def _is_intact(model_dir: Path, expected: dict[str, str] | None) -> bool:
    """Matches the registered manifest, or (versions registered before manifests) the one checked at
    download time; a cached folder with neither is fetched again."""
    marker = model_dir / CACHE_MARKER
    recorded = expected
    if recorded is None and marker.is_file():
        recorded = parse_manifest(marker.read_text(encoding="utf-8"))
    return recorded is not None and file_manifest(model_dir) == recorded


def _remove_dead_partials(target: Path) -> None:
    """Partial downloads left by a killed process."""
    for partial in target.parent.glob(f"{target.name}.partial-*"):
        pid = partial.name.rpartition("-")[2]
        if pid.isdigit() and not process_is_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)

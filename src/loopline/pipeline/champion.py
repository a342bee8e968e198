"""Find the current champion (the ``production`` alias) and fetch its weights for local evaluation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow

from loopline.config import Settings
from loopline.registry.models import get_alias_version, model_exists

logger = logging.getLogger(__name__)

PRODUCTION = "production"


@dataclass(frozen=True)
class Champion:
    version: str
    model_dir: Path
    tags: dict[str, str]

    @property
    def test_version(self) -> str:
        """The snapshot whose frozen splits judge this model: the bootstrap data's (tagged on retrained
        versions) or, for a first model, its own training snapshot's."""
        return self.tags.get("loopline.test_version") or self.tags.get("loopline.dataset_version", "")


def load_champion(settings: Settings, alias: str = PRODUCTION) -> Champion | None:
    """The model version behind ``alias`` with a local copy of its transformers directory, or None."""
    if not model_exists(settings.model_name):
        return None  # nothing registered yet: the first model is judged on absolute floors
    version = get_alias_version(settings.model_name, alias)
    if version is None:
        return None
    return Champion(str(version.version), fetch_model_dir(settings, str(version.version)), dict(version.tags))


def fetch_model_dir(settings: Settings, version: str) -> Path:
    """Download a registered version once into home/models/<version> and return its HF model folder."""
    target = settings.home / "models" / f"{settings.model_name}-v{version}"
    if not target.exists():
        mlflow.artifacts.download_artifacts(f"models:/{settings.model_name}/{version}", dst_path=str(target))
    configs = sorted(target.rglob("config.json"))
    if not configs:
        raise FileNotFoundError(f"No transformers config.json under the downloaded model {target}")
    return configs[0].parent

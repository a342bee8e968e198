"""Find what the MLflow registry holds: registered models, versions, aliases, tags and run metrics.

Read-only: alias moves are in ``loopline.registry.promotion``, logging and registering in
``loopline.registry.packaging``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from loopline.errors import RegistryError
from loopline.tracking import mlflow_client

logger = logging.getLogger(__name__)

GATE_TAG = "loopline.gate"  # "passed" / "failed": the gate's verdict on a version
# Where the dataset version of a model is looked for: version tags first, then its run's tags and params.
DATA_VERSION_KEYS = ("loopline.dataset_version", "loopline.data_version", "dataset_version", "data_version")
_ALIAS = re.compile(r"^[A-Za-z][\w-]*$")  # MLflow reserves "latest" and "v<number>"


@dataclass(frozen=True)
class VersionSummary:
    """What ``loopline models list`` shows of one registered version."""

    version: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    data_version: str | None
    created: str
    run_id: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def registered_model(client: MlflowClient, name: str) -> Any:
    """The registered model ``name``; RegistryError naming the store read when there is none."""
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        known = [m.name for m in client.search_registered_models(max_results=20)]
        raise RegistryError(
            f"No registered model named '{name}'.",
            where=f"tracking URI {mlflow.get_tracking_uri()}",
            hint=f"Known models: {known or 'none'}. Train and register a model first, or check the name.",
        ) from exc


def _client_and_model(name: str) -> tuple[MlflowClient, Any]:
    client = mlflow_client()
    return client, registered_model(client, name)


def get_version(name: str, version: str | int) -> ModelVersion:
    """Version ``version`` of ``name``; RegistryError listing the existing versions when there is none."""
    client, _ = _client_and_model(name)
    version = str(version).strip()
    if not version.isdigit():
        raise RegistryError(
            f"'{version}' is not a model version number.",
            where=f"model '{name}'",
            hint="Pass a number such as 3 (`loopline models` lists them).",
        )
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise RegistryError(
            f"Model '{name}' has no version {version!r}.",
            hint=f"Existing versions: {known or 'none'}.",
        ) from exc


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias) or alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise RegistryError(
            f"'{alias}' is not a usable alias.",
            hint="Use a name of letters, digits, '_' or '-' starting with a letter, such as production, "
            "staging or candidate ('latest' and 'v<number>' are reserved by MLflow).",
        )
    return alias


def model_exists(name: str) -> bool:
    """Whether a registered model of this name exists (before the first registration it does not)."""
    return bool(mlflow_client().search_registered_models(filter_string=f"name='{name}'"))


def get_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points to, or None when the alias is not set (unknown model: RegistryError)."""
    check_alias(alias)
    client, model = _client_and_model(name)
    version = (model.aliases or {}).get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def version_aliases(name: str) -> dict[str, str]:
    """Every alias of ``name`` and the version it points to (read from the registered model: on SQLite,
    ``search_model_versions`` returns versions without their aliases)."""
    _, model = _client_and_model(name)
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def _created(timestamp_ms: int | None) -> str:
    return datetime.fromtimestamp((timestamp_ms or 0) / 1000, tz=UTC).isoformat()


def _run_details(client: MlflowClient, mv: ModelVersion) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and (params + tags) of the run that produced ``mv``; empty when it has none or it is gone."""
    if not mv.run_id:
        return {}, {}
    try:
        run = client.get_run(mv.run_id)
    except MlflowException:
        logger.warning("Run %s of version %s is gone; listing it without metrics", mv.run_id, mv.version)
        return {}, {}
    return dict(run.data.metrics), {**run.data.params, **run.data.tags}


def _data_version(*sources: dict[str, str]) -> str | None:
    return next((src[key] for src in sources for key in DATA_VERSION_KEYS if src.get(key)), None)


def list_versions(name: str) -> list[VersionSummary]:
    """All versions of ``name``, oldest first, with aliases, tags, run metrics and data version."""
    client, model = _client_and_model(name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    summaries = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        metrics, run_values = _run_details(client, mv)
        tags = dict(mv.tags or {})
        summaries.append(
            VersionSummary(
                version=str(mv.version),
                aliases=sorted(aliases.get(str(mv.version), [])),
                tags=tags,
                metrics=metrics,
                data_version=_data_version(tags, run_values),
                created=_created(mv.creation_timestamp),
                run_id=mv.run_id,
                status=str(mv.status),
            )
        )
    return summaries


def find_version_by_tag(name: str, tag: str, value: str) -> str | None:
    """The first version of ``name`` whose tag ``tag`` is ``value`` (e.g. a training key), or None."""
    for version in mlflow_client().search_model_versions(f"name='{name}'"):
        if version.tags.get(tag) == value:
            return str(version.version)
    return None

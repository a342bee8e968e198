"""Log and register models in the MLflow registry, and look versions and aliases up.

Promotion (moving aliases, with history and rollback) is in ``loopline.registry.promotion``. Every call
here uses the connected ``MlflowClient`` (never the fluent active run), so registering inside a flow's
run does not disturb it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from loopline.errors import DataError, RegistryError
from loopline.model_files import read_labels
from loopline.registry import pyfunc
from loopline.tasks import task_of_model
from loopline.tracking import mlflow_client

logger = logging.getLogger(__name__)

GATE_TAG = "loopline.gate"  # "passed" / "failed": the gate's verdict on a version
# Where the dataset version of a model is looked for: version tags first, then its run's tags and params.
DATA_VERSION_KEYS = ("loopline.dataset_version", "loopline.data_version", "dataset_version", "data_version")
REQUIREMENTS = ("torch", "transformers", "mlflow", "pandas", "safetensors")
EXAMPLE_TEXTS = ("I would like a refund for my last order.", "How do I change my password?")
READY_TIMEOUT_S = 300
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


# --- logging and registration -------------------------------------------------------------------


def pip_requirements() -> list[str]:
    """Exact pins of what loading the pyfunc needs (local version labels such as ``+cpu`` dropped)."""
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def log_model(
    model_dir: Path | str,
    artifact_path: str = "model",
    *,
    max_length: int = 64,
    batch_size: int = 64,
    input_example: list[str] | None = None,
) -> str:
    """Log a saved transformers classifier as an MLflow pyfunc model and return its ``models:/`` URI.

    Logged inside the active run if there is one (MLflow 3 links the LoggedModel to it). The pyfunc is
    logged as model code (``loopline/registry/pyfunc.py``), so loading needs no loopline install. The
    signature is inferred from a ``text`` DataFrame example and a (label, confidence) output; the pip
    requirements are explicit because MLflow's inference of them fails here (torchvision import).
    ``max_length`` should be the training one, so served predictions match ``load_classifier``'s.
    """
    model_dir = Path(model_dir)
    try:
        labels = read_labels(model_dir)
    except DataError as err:  # to the registry's caller, a folder that is not a model is its error
        raise RegistryError(err.what, where=err.where, hint=err.hint) from None
    example = pd.DataFrame({"text": list(input_example or EXAMPLE_TEXTS)})
    output = pyfunc.output_example(labels, len(example), token_task=task_of_model(model_dir).name == "token")
    settings = {"max_length": int(max_length), "batch_size": int(batch_size)}
    info = mlflow.pyfunc.log_model(
        name=artifact_path,
        python_model=pyfunc.__file__,
        artifacts={"model": str(model_dir)},
        signature=infer_signature(example, output, params=settings),
        model_config=settings,
        input_example=example,
        pip_requirements=pip_requirements(),
        metadata={"loopline_labels": labels},
    )
    logger.info("Logged model from %s as %s (%d labels)", model_dir, info.model_uri, len(labels))
    return str(info.model_uri)


def _wait_until_ready(client: MlflowClient, name: str, version: str) -> ModelVersion:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(
                f"Version {version} of model '{name}' is {mv.status}: {mv.status_message or 'no message'}.",
                hint="Check the tracking server's logs and artifact store, then register again.",
            )
        time.sleep(1.0)


def register_model(model_uri: str, name: str, tags: dict[str, str] | None = None) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``name`` (created if needed), tagged; waits for READY."""
    try:
        mv = mlflow.register_model(
            model_uri,
            name,
            await_registration_for=READY_TIMEOUT_S,
            tags={k: str(v) for k, v in (tags or {}).items()},
        )
    except MlflowException as exc:
        raise RegistryError(
            f"Could not register {model_uri} as model '{name}': {exc.message}",
            hint="Pass the URI returned by log_model (models:/m-...) and check the tracking URI.",
        ) from exc
    mv = _wait_until_ready(mlflow_client(), name, str(mv.version))
    logger.info("Registered %s as '%s' version %s", model_uri, name, mv.version)
    return mv


# --- lookups --------------------------------------------------------------------------------------


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


def set_alias(name: str, alias: str, version: str | int) -> ModelVersion:
    """Point ``alias`` at a version (no gate check, no history: use ``promote`` for that)."""
    check_alias(alias)
    mv = get_version(name, version)
    mlflow_client().set_registered_model_alias(name, alias, str(mv.version))
    return mv


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

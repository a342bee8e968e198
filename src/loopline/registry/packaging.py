"""Package a saved classifier as an MLflow model version: log it as a self-contained pyfunc (code, labels,
signature, exact requirements) and register it, waiting until the registry says READY.

The sha256 manifest a version carries is computed in ``loopline.registry.integrity``; finding versions,
aliases and tags is in ``loopline.registry.lookups``; moving aliases with history in
``loopline.registry.promotion``. Every call here uses the connected ``MlflowClient`` (never the fluent
active run), so registering inside a flow's run does not disturb it.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from loopline.errors import DataError, RegistryError
from loopline.model_files import read_labels
from loopline.registry import pyfunc
from loopline.tracking import mlflow_client

logger = logging.getLogger(__name__)

REQUIREMENTS = ("torch", "transformers", "mlflow", "pandas", "safetensors")
EXAMPLE_TEXTS = ("I would like a refund for my last order.", "How do I change my password?")
READY_TIMEOUT_S = 300


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
    from loopline.tasks import task_of_model  # torch and transformers: only where a model is logged

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

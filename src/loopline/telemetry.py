"""Turn off every library's telemetry and hub access; called by entry points, never at import."""

from __future__ import annotations

import os

# setdefault: a user who explicitly opts in keeps their choice.
_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",  # Evidently and other iterative-telemetry users
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # not telemetry: keeps logs readable
}


def disable_telemetry() -> None:
    """Set the opt-out variables of MLflow, Prefect, Evidently, Great Expectations and Hugging Face."""
    for key, value in _OFF.items():
        os.environ.setdefault(key, value)


# Not telemetry, but process defaults every entry point wants, set the same way (a user's value wins).
_ORCHESTRATION = {
    # Prefect's temporary server migrates a fresh database first: on 2 cores that takes longer than
    # Prefect's 20 s default, and the very first command on a new machine would time out.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def set_orchestration_defaults() -> None:
    for key, value in _ORCHESTRATION.items():
        os.environ.setdefault(key, value)

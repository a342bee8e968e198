"""What every flow shares: settings loading at the entry point and the retry policy of I/O tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import State

from loopline.config import Settings, load_settings
from loopline.errors import LooplineError
from loopline.stores import connect
from loopline.telemetry import disable_telemetry


def flow_settings(config_file: str | None, overrides: dict[str, Any] | None) -> Settings:
    """Settings for one flow run (file + env + overrides given as flow parameters, JSON-safe), with every
    store connected: a flow run may be the first thing a worker process does."""
    disable_telemetry()
    settings = load_settings(Path(config_file) if config_file else None, **(overrides or {}))
    connect(settings)
    return settings


def retry_unless_user_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry transient failures (I/O, a busy database); bad input fails the same way every time."""
    try:
        state.result()
    except LooplineError:
        return False
    except Exception:
        return True
    return False


def current_flow_run_id() -> str:
    return str(flow_run.get_id() or "")


def current_flow_run_name() -> str:
    """The Prefect flow run's name (``crimson-otter``), for the model card; empty outside a flow."""
    return str(flow_run.get_name() or "")

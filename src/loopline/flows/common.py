"""What every flow shares: settings loading at the entry point and the retry policy of I/O tasks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import State

from loopline.config import Settings, load_settings
from loopline.errors import ConfigError, LooplineError
from loopline.stores import connect
from loopline.telemetry import disable_telemetry


def flow_settings(config_file: str | None, overrides: dict[str, Any] | None) -> Settings:
    """Settings for one flow run (file + env + overrides given as flow parameters, JSON-safe), with every
    store connected: a flow run may be the first thing a worker process does."""
    disable_telemetry()
    settings = load_settings(Path(config_file) if config_file else None, **(overrides or {}))
    check_pool_home(settings, current_work_pool())
    connect(settings)
    return settings


def current_work_pool() -> str | None:
    """The work pool of this flow run; None outside one (a served or local run, a subflow)."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return run.work_pool_name if run is not None else None


def check_pool_home(settings: Settings, work_pool: str | None) -> None:
    """A pool's run starts in a folder of the worker's choosing (a process worker: a temporary one,
    deleted after the run), so a relative home would be a new, empty home each run that vanishes with
    it: no champion, no replay buffer, SQLite stores lost. Refuse it."""
    if work_pool is None or settings.home.is_absolute():
        return
    raise ConfigError(
        f"The loopline home {settings.home} is relative, and this run of work pool {work_pool!r} starts in "
        f"a folder of the worker's choosing ({Path.cwd()})",
        where=f"LOOPLINE_HOME={os.environ['LOOPLINE_HOME']}"
        if "LOOPLINE_HOME" in os.environ
        else "home: the default, LOOPLINE_HOME is not set",
        hint="Start the worker with LOOPLINE_HOME set to an absolute folder (with LOOPLINE_TRACKING_URI "
        "and LOOPLINE_FEEDBACK_DB_URL when the stores are servers), e.g. "
        f"`LOOPLINE_HOME=/var/lib/loopline prefect worker start --pool {work_pool}`.",
    )


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

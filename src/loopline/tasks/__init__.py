"""Task kinds behind one interface: ``sequence`` (a label per text) and ``token`` (a tag per word)."""

from __future__ import annotations

from pathlib import Path

from loopline.errors import DataError
from loopline.model_files import read_architectures
from loopline.tasks.base import Decoded, Encoded, Task, TaskName
from loopline.tasks.sequence import SequenceTask
from loopline.tasks.token import TokenTask

TASKS: dict[str, Task] = {"sequence": SequenceTask(), "token": TokenTask()}

__all__ = ["TASKS", "Decoded", "Encoded", "Task", "TaskName", "get_task", "task_of_model"]


def get_task(name: str) -> Task:
    """The task called ``name`` (``Settings.task``)."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"Unknown task {name!r}.", hint=f"Use one of {sorted(TASKS)}.") from None


def task_of_model(model_dir: str | Path) -> Task:
    """The task a saved model folder was trained for, from its config's ``architectures``."""
    architectures = read_architectures(model_dir)
    for task in TASKS.values():
        if any(arch.endswith(task.architecture_suffix) for arch in architectures):
            return task
    raise DataError(
        f"The model is not a fine-tuned sequence or token classifier (architectures={architectures}).",
        where=str(model_dir),
        hint="Pass a folder written by loopline's training.",
    )

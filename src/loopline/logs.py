"""Logging set-up of the command line: bad input is one clear message, not a stack trace in the log."""

from __future__ import annotations

import logging

from loopline.errors import LooplineError

# Prefect logs a failed task or flow with its traceback on these loggers (and sends it to the API).
ORCHESTRATION_LOGGERS = (
    "prefect.task_runs",
    "prefect.flow_runs",
    "prefect.flow_engine",
    "prefect.task_engine",
)


class DropUserErrorTracebacks(logging.Filter):
    """Keep the record, drop the traceback, when the exception is a LooplineError (bad input, a refusal):
    its message already says what, where and what to do. Other exceptions keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], LooplineError):
            record.exc_info = None
            record.exc_text = None
        return True


def configure_cli_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ORCHESTRATION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropUserErrorTracebacks) for f in logger.filters):
            logger.addFilter(DropUserErrorTracebacks())

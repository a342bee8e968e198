"""Named crash points for fault-injection tests: ``LOOPLINE_CRASH_AT=<point>`` kills the process there.

The kill is SIGKILL, as the OOM killer or a node loss would do it: no ``finally`` blocks, no atexit, no
flush. Tests run a command in a subprocess with the variable set, then check that the stores are
consistent and that the next run completes. Unset (always, outside tests), a crash point does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

CRASH_ENV = "LOOPLINE_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here if ``LOOPLINE_CRASH_AT`` names this point (a comma-separated list is allowed)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in wanted.split(","):
        logger.warning("Crash point %s reached: killing this process (SIGKILL)", name)
        os.kill(os.getpid(), signal.SIGKILL)

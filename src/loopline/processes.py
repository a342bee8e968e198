"""Whether a process that left something behind (a lock, a run, a partial download) is still alive, and
children that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import getpass
import os
import signal
import socket
import sys


def this_host() -> str:
    return socket.gethostname()


def process_is_alive(pid: int) -> bool:
    """True while a process of this id runs on this machine (or we may not signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_name(run_id: str) -> str:
    """``host:pid:run_id``: who holds a lock, readable by :func:`holder_is_dead` in another process."""
    return f"{this_host()}:{os.getpid()}:{run_id}"


def holder_is_dead(holder: str) -> bool:
    """A holder ``host:pid:...`` on this host whose process is gone (killed mid-work).

    Another machine's holder is never judged dead here: only a timeout can free it.
    """
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != this_host() or not pid.isdigit():
        return False
    return not process_is_alive(int(pid))


def current_user() -> str:
    """Who is acting, for promotion history and decisions."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "loopline"


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent() -> None:
    """``preexec_fn`` of a child process: SIGTERM it when its parent dies, even by SIGKILL (Linux;
    elsewhere a no-op). A training job left running after its caller was killed would race the rerun
    for the same run folder."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

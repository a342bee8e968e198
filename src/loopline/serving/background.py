"""Run the service in this process, on a free localhost port, for as long as a ``with`` block lasts.

The demo's served round uses it, so traffic goes through real HTTP, the real prediction log and the
real alias follower, exactly as ``loopline serve`` runs them, without a second process to manage.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loopline.config import Settings
from loopline.errors import LooplineError


@contextmanager
def serve_in_background(settings: Settings, startup_timeout_s: float = 300) -> Iterator[str]:
    """The service's base URL while the block runs; stopped (log flushed) when it ends."""
    import uvicorn

    from loopline.serving.app import build_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="loopline-serve", daemon=True)
    thread.start()  # uvicorn installs no signal handlers outside the main thread
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise LooplineError(
                f"The service did not start on 127.0.0.1:{port}.", hint="see the log lines above for why."
            )
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

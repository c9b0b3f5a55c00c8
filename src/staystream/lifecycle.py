"""How the service's child processes live and die with the one that started them."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def die_with_parent(supervisor: int) -> None:
    """In a forked child: be killed when `supervisor` dies, even by `kill -9` (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:  # it died before the line above took effect
        os._exit(1)
    # fork copied the supervisor's handler, which in a child would swallow a SIGTERM sent before
    # uvicorn or the writer installs its own: a stop right after start then waited 10 s a worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def set_process_name(name: str) -> None:
    """The name `ps -o comm` and /proc/<pid>/comm show (at most 15 bytes)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15])

"""
Processes and ports of the embedded server: free ports, liveness, exit and kill.

Hand-written on ``os`` rather than psutil, which is only a test dependency: the server
must be manageable with the runtime dependencies alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05


def pick_free_port(preferred: int | None = None) -> int:
    """
    Find a free TCP port on 127.0.0.1.

    :param preferred: Port to return if it is free (e.g. the previous one).
    :return: A port that was free a moment ago (the caller retries on a race).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like redis-server itself, so a port left in TIME_WAIT by the previous
        # server still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, preferred or 0))
        except OSError:
            sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _reap(pid: int) -> bool:
    """
    Collect the exit status of ``pid`` if it is an exited child of this process.

    :param pid: Process id.
    :return: True if the process was our child and has exited.
    """
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def pid_alive(pid: int) -> bool:
    """
    Tell whether a process is running (zombies count as dead).

    :param pid: Process id.
    :return: True if the process exists and has not exited.
    """
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An orphan that exited stays a zombie if PID 1 does not reap (containers).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def is_redis_process(pid: int, port: int) -> bool:
    """
    Guard against signalling an unrelated process that reused a stale pid.

    :param pid: Process id.
    :param port: The port the server was started on.
    :return: False only if the process is known not to be that redis-server.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # No procfs (macOS): trust the pid.
    # Both the original argv (--port N) and redis' own process title
    # ("redis-server 127.0.0.1:N") carry the port.
    return b"redis-server" in cmdline and str(port).encode() in cmdline


def wait_exit(pid: int, timeout: float) -> bool:
    """
    Poll until a process exits.

    :param pid: Process id.
    :param timeout: Seconds to wait.
    :return: True if it exited within the timeout.
    """
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait (at most 5 s) for it to go."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_exit(pid, 5.0)

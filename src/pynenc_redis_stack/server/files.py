"""
The embedded server's data directory: where it is, and the owner-only files kept in it.

Only the owner may read, write or list anything the server or we keep there: arguments and
results are pickled payloads that pynenc's default serializer decodes, and the password
file guards the server. The directory is 0700 and every file in it 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from pynenc_redis_stack.core.errors import EmbeddedServerError

HOME_ENV_VAR = "PYNENC_REDIS_STACK_HOME"
STATE_FILE = "server.json"
PID_FILE = "redis-server.pid"
LOG_FILE = "redis-server.log"
LOCK_FILE = "server.lock"
LAST_PORT_FILE = "last-port"
PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_LOG_TAIL_LINES = 40


def default_data_dir() -> Path:
    """
    Resolve the default data directory of the embedded server.

    :return: ``$PYNENC_REDIS_STACK_HOME`` if set, else
        ``$XDG_CACHE_HOME/pynenc-redis-stack``, else ``~/.cache/pynenc-redis-stack``.
    """
    if home := os.environ.get(HOME_ENV_VAR):
        return Path(home).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    # XDG says relative values must be ignored.
    if xdg_cache and Path(xdg_cache).is_absolute():
        return Path(xdg_cache) / "pynenc-redis-stack"
    return Path.home() / ".cache" / "pynenc-redis-stack"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the owner only (also when it existed before)."""
    with _open_private(path, os.O_WRONLY | os.O_TRUNC) as handle:
        handle.write(text)


def _open_private(path: Path, flags: int) -> TextIO:
    """Open ``path`` for writing as a 0600 file, created so, tightened if it existed before."""
    descriptor = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "w")


class DataDir:
    """
    The files of one embedded server: state (pid, port, URL), password, last port, lock
    and log, all owner-only.

    :param path: The data directory (created by :meth:`make_private`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state_file = path / STATE_FILE
        self.pid_file = path / PID_FILE
        self.log_file = path / LOG_FILE
        self.password_file = path / PASSWORD_FILE
        self.config_file = path / CONFIG_FILE

    def make_private(self) -> None:
        """
        Create the data dir if needed, make it 0700 and what the server and an older
        version of this package left in it owner-only too.

        :raises EmbeddedServerError: If the directory is a shared one (sticky bit,
            like /tmp): it must be a directory of its own.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if self.path.stat().st_mode & stat.S_ISVTX:
            raise EmbeddedServerError(
                f"{self.path} is a shared directory (sticky bit); give the server a directory of its own"
            )
        self.path.chmod(PRIVATE_DIR_MODE)
        for path in self.path.iterdir():
            if path.is_symlink():
                continue
            if path.is_dir():
                # appendonlydir: the append-only files of a persistent server.
                path.chmod(PRIVATE_DIR_MODE)
                for inner in path.iterdir():
                    if inner.is_file() and not inner.is_symlink():
                        inner.chmod(PRIVATE_FILE_MODE)
            elif path.is_file():
                path.chmod(PRIVATE_FILE_MODE)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise start/stop across processes sharing the data directory."""
        with _open_private(self.path / LOCK_FILE, os.O_WRONLY | os.O_APPEND) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read_state(self) -> dict[str, Any] | None:
        """
        :return: The parsed state file, or None if missing or unreadable.
        """
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or not all(isinstance(state.get(key), int) for key in ("pid", "port")):
            return None
        return state

    def write_state(self, pid: int, port: int, url: str, persistent: bool) -> None:
        """Write the state file atomically so readers never see half of it."""
        payload = {"pid": pid, "port": port, "url": url, "persistent": persistent}
        tmp = self.state_file.with_suffix(".tmp")
        write_private(tmp, json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, self.state_file)
        write_private(self.path / LAST_PORT_FILE, f"{port}\n")

    def clear_state(self) -> None:
        """Remove the state and pid files."""
        self.state_file.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)

    def password(self) -> str:
        """
        :return: The server's password: the one generated on the first start of
            this data dir, else a new one (kept 0600 for the next starts).
        """
        try:
            password = self.password_file.read_text().strip()
        except FileNotFoundError:
            password = ""
        if not password:
            # Hex: no quoting in a URL or redis.conf, and never a leading '-' on a command line.
            password = secrets.token_hex(32)
            write_private(self.password_file, password + "\n")
        return password

    def last_port(self) -> int | None:
        """
        :return: The port of the previous server of this data dir, if known.
        """
        try:
            port = int((self.path / LAST_PORT_FILE).read_text())
        except (OSError, ValueError):
            return None
        # Never reuse the well-known Redis port or an out-of-range value.
        return port if 1024 < port < 65536 and port != 6379 else None

    def log_size(self) -> int:
        """:return: The log's current size: where the next start attempt begins writing."""
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def log_tail(self, offset: int) -> str:
        """
        :param offset: Byte offset where this start attempt began writing.
        :return: The last lines written to the log since ``offset``.
        """
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        lines = text.splitlines()[-_LOG_TAIL_LINES:]
        return f"--- tail of {self.log_file} ---\n" + "\n".join(lines)

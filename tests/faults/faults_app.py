"""The app and tasks of ``tests/faults``, imported by each process a fault test starts.

Every process builds the same app from its environment alone (``PYNENC__`` settings, the URL
among them). A fault is injected in the process that suffers it: :func:`drop_connection_on`
shuts the socket down around one command, a real lost connection as the client sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.connection
from pynenc import PynencBuilder
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.trigger.trigger_builder import on_cron

from tests.faults.conftest import RUNS

app = PynencBuilder().redis_stack().thread_runner(max_threads=2).logging_level("warning").build()


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["PYNENC__REDIS_STACK_URL"], decode_responses=True)


@app.task(registration_concurrency=ConcurrencyControlType.TASK)
def record_run(tag: str) -> str:
    """Append ``tag`` to :data:`RUNS` (one entry per run) and return it."""
    _client().rpush(f"{RUNS}:{app.app_id}", tag)
    return tag


@app.task(retry_for=(ValueError,), max_retries=2)
def fail_once(tag: str) -> str:
    """Append ``tag`` to :data:`RUNS` on each run; the first run fails (pynenc retries it)."""
    client = _client()
    if client.rpush(f"{RUNS}:{app.app_id}", tag) == 1:
        raise ValueError("the first run fails")
    return tag


def submit_fail_once(tag: str) -> None:
    """A client process: route ``fail_once(tag)``; print its invocation id (no wait)."""
    print(fail_once(tag).invocation_id, flush=True)


def drop_connection_on(marker: bytes, when: str, times: int = 1) -> None:
    """Drop the connection of ``times`` commands whose packed bytes hold ``marker``: the 1st,
    3rd, 5th ... such command (the one sent after a drop, its re-send, goes through).

    ``when="before"``: the socket is shut down before the command is written (the server never
    runs it). ``when="after"``: once the server's reply has arrived, it is read away and the
    socket shut down (the server ran it; the client never sees the reply).
    Only the socket's send is wrapped; everything else is redis-py's own handling.
    """
    original: Callable[..., Any] = redis.connection.AbstractConnection.send_packed_command
    remaining = [times]
    seen = [0]

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        packed = command if isinstance(command, bytes | bytearray) else b"".join(map(bytes, command))
        if remaining[0] > 0 and marker in packed:
            seen[0] += 1
            if seen[0] % 2 == 1:
                remaining[0] -= 1
                print(f"dropping the connection {when} a command", file=sys.stderr, flush=True)
                if when == "before":
                    self._sock.shutdown(socket.SHUT_RDWR)
                    original(self, command, check_health)
                else:
                    original(self, command, check_health)
                    # the server ran it once its reply is here; that reply is then lost
                    select.select([self._sock], [], [], 10)
                    self._sock.recv(1 << 20)
                    self._sock.shutdown(socket.SHUT_RDWR)
                return
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]


def route_with_drop(tag: str, when: str, step: str = "route") -> None:
    """A client process: call ``record_run(tag)`` with the connection dropped at one ``step``
    of its registration (see :func:`_script_sha`); print ``{"routed": bool, "error": str}`` as
    JSON (no wait for the result)."""
    drop_connection_on(_script_sha(step), when)
    try:
        record_run(tag)
    except redis.ConnectionError as error:
        print(json.dumps({"routed": False, "error": str(error)}), flush=True)
        return
    print(json.dumps({"routed": True, "error": ""}), flush=True)


def run_runner() -> None:
    """A runner process: pynenc's ThreadRunner loop until killed."""
    app.runner.run()


def _script_sha(name: str) -> bytes:
    """The SHA1 (as sent in ``EVALSHA``) of one script a registration or the runner loop sends
    (``lock``: the registration lock's key, whose first command is the acquiring one)."""
    from pynenc_redis_stack.broker import RedisStackBroker
    from pynenc_redis_stack.orchestrator import scripts
    from pynenc_redis_stack.state_backend.scripts import HistoryBatch, InvocationBatch

    if name == "lock":
        return b"registration-lock"
    if name == "trigger":  # the trigger pass's read of its valid conditions (every pass)
        return b"trigger-valid-conditions"
    shas = {
        "upsert": InvocationBatch.script.sha,
        "register": scripts.register_invocations_script.sha,
        "retries": scripts.increment_retries_script.sha,
        "history": HistoryBatch.script.sha,
        "unlock": scripts.release_lock_script.sha,
        "route": RedisStackBroker.route_script.sha,
        "take": RedisStackBroker.take_script.sha,
        "expired": RedisStackBroker.expired_script.sha,
        "status": scripts.set_status_if_version_script.sha,
        "atomic-service": scripts.start_atomic_service_script.sha,
    }
    return shas[name].encode()


def submit(tag: str) -> None:
    """A client process: route ``record_run(tag)``; print its invocation id (no wait)."""
    print(record_run(tag).invocation_id, flush=True)


def run_runner_with_drops(script: str, when: str, times: int) -> None:
    """A runner process whose connection drops on its next ``times`` runs of ``script``
    (``route``, ``take``, ``expired``, ``status`` or ``atomic-service``; see :func:`drop_connection_on`)."""
    drop_connection_on(_script_sha(script), when, times)
    app.runner.run()


def run_runner_stuck_in_recovery() -> None:
    """A runner process whose copy of pynenc's ``recover_running_invocations`` pushes its pid
    to ``faults:recovering:<app>`` and then blocks until the process is killed (a runner
    SIGKILLed mid-recovery)."""
    from pynenc_redis_stack.orchestrator import RedisStackOrchestrator

    def stuck(_self: Any) -> Any:
        client = _client()
        client.rpush(f"faults:recovering:{app.app_id}", os.getpid())
        while True:
            client.blpop([f"faults:never:{app.app_id}"], timeout=1)

    RedisStackOrchestrator.get_running_invocations_for_recovery = stuck
    app.runner.run()


DEAD_RUNNER = "dead-runner"
"""The owner of what :func:`plant_dead_recovery` leaves RUNNING."""


def plant_dead_recovery(tag: str) -> None:
    """A client process: leave pynenc's ``recover_running_invocations`` task and
    ``record_run(tag)`` RUNNING, owned by a runner whose heartbeat stopped an hour ago (what a
    runner SIGKILLed while running both leaves behind); print the victim's invocation id."""
    from pynenc.core_tasks import core_tasks_registry
    from pynenc.invocation.status import InvocationStatus
    from pynenc.runner.runner_context import RunnerContext

    from pynenc_redis_stack.orchestrator import RedisStackOrchestrator

    (definition,) = [
        d for d in core_tasks_registry.definitions if d.func.__name__ == "recover_running_invocations"
    ]
    recover = app.task(definition.func, **definition.options)
    victim, planted = record_run(tag), recover()
    while app.broker.retrieve_invocation() is not None:  # the dead runner took both
        pass
    dead = RunnerContext(runner_cls="ThreadRunner", runner_id=DEAD_RUNNER, parent_ctx=None)
    app.state_backend.store_runner_context(dead)
    orchestrator = app.orchestrator
    assert isinstance(orchestrator, RedisStackOrchestrator)
    orchestrator.register_runner_heartbeats([DEAD_RUNNER])
    for invocation in (planted, victim):
        for status in (InvocationStatus.PENDING, InvocationStatus.RUNNING):
            orchestrator.set_invocation_status(invocation.invocation_id, status, dead)
    an_hour_ago = orchestrator.store.server_micros() - 3600 * 1_000_000
    heartbeat = orchestrator.store.keys.runner_heartbeat(DEAD_RUNNER)
    orchestrator.store.client.execute_command("JSON.SET", heartbeat, "$.last_heartbeat_ts", str(an_hour_ago))
    print(victim.invocation_id, flush=True)


@app.task
def hold(tag: str) -> str:
    """Push ``[pid, tag]`` to ``faults:started:<app>``, block until the test pushes to
    ``faults:release:<app>``, then record the run (:data:`RUNS`)."""
    client = _client()
    client.rpush(f"faults:started:{app.app_id}", json.dumps([os.getpid(), tag]))
    while client.blpop([f"faults:release:{app.app_id}"], timeout=1) is None:
        pass
    client.rpush(f"{RUNS}:{app.app_id}", tag)
    return tag


def submit_hold(tag: str) -> None:
    """A client process: route ``hold(tag)``; print its invocation id (no wait)."""
    print(hold(tag).invocation_id, flush=True)


def run_process_runner() -> None:
    """A runner process: pynenc's ProcessRunner (one child process per invocation) until killed."""
    from pynenc.runner import ProcessRunner

    app.runner = ProcessRunner(app)
    app.runner.run()


@app.task
def soak_work(tag: str, seconds: float) -> str:
    """A soak task: work ``seconds``, then record ``[tag, pid]`` (:data:`RUNS`)."""
    time.sleep(seconds)  # the work itself, not a synchronisation
    _client().rpush(f"{RUNS}:{app.app_id}", json.dumps([tag, os.getpid()]))
    return tag


@app.task(triggers=on_cron("* * * * *"))
def soak_tick() -> None:
    """Fires every minute (the trigger's cron); the soak counts its invocations."""


def run_soak_runner(drop_probability: float) -> None:
    """A soak runner: ThreadRunner whose connection drops, with ``drop_probability`` per
    command, on the runner loop's scripts (route, take, status write), never twice in a row
    (a transient fault: the re-send goes through); each drop is counted in
    ``faults:drops:<app>``."""
    markers = [_script_sha(name) for name in ("route", "take", "status")]
    original: Callable[..., Any] = redis.connection.AbstractConnection.send_packed_command
    counter = _client()
    chance = random.Random(os.getpid())

    just_dropped = [False]

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        packed = command if isinstance(command, bytes | bytearray) else b"".join(map(bytes, command))
        matches = any(marker in packed for marker in markers)
        # transient: the command sent right after a drop (its re-send) goes through
        drop = matches and not just_dropped[0] and chance.random() < drop_probability
        just_dropped[0] = drop or (just_dropped[0] and not matches)
        if drop:
            counter.incr(f"faults:drops:{app.app_id}")
            if chance.random() < 0.5:
                self._sock.shutdown(socket.SHUT_RDWR)
                original(self, command, check_health)
            else:
                original(self, command, check_health)
                select.select([self._sock], [], [], 10)
                self._sock.recv(1 << 20)
                self._sock.shutdown(socket.SHUT_RDWR)
            return
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    app.runner.run()


def soak_submit(count: int, seconds: float) -> None:
    """A client process: route ``count`` soak tasks evenly over ``seconds``; push their ids to
    ``faults:submitted:<app>``."""
    chance = random.Random(0)
    client = _client()
    started = time.monotonic()
    for n in range(count):
        invocation = soak_work(f"t{n:05d}", chance.uniform(0.05, 1.5))
        client.rpush(f"faults:submitted:{app.app_id}", invocation.invocation_id)
        delay = started + seconds * (n + 1) / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not a synchronisation

"""What one task invocation costs in Redis commands and round trips, end to end, per component.

A real ``ThreadRunner`` on the session's Redis Stack, every component of this package
(``redis_stack(components="all")``), pynenc's runner loop driven one iteration at a time so
that nothing depends on timing:

1. call: ``add(1, 2)`` routes the invocation (registers it, queues it);
2. run: one runner loop iteration takes it and starts its thread; the thread runs it
   (pending, running, result, success);
3. result: the caller reads the result back.

An idle loop iteration (nothing queued) is counted on its own: a runner pays it every
``runner_loop_sleep_time_sec`` whatever the tasks. Commands are the ones this process sends
(a Lua script is one ``EVALSHA``), recorded by :mod:`tests.integration.command_log`.

The expected numbers are the tables below, so that a change of any component's cost shows
here as a diff of one table (the state backend's change with its own work).
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pynenc import Pynenc, PynencBuilder, context
from pynenc.runner.thread_runner import ThreadRunner

from tests.conftest import unique_app_id
from tests.integration.command_log import CommandLog, installed

# fmt: off
TASK_COMMANDS: dict[str, dict[str, dict[str, int]]] = {
    "call": {
        "broker": {"EVALSHA": 1},                              # queue it
        "orchestrator": {"EVALSHA": 1},                        # register its status document
        "state backend": {"EVALSHA": 3, "JSON.GET": 1},        # the invocation, its history
        "trigger": {"FT.AGGREGATE": 1},                        # conditions sourced from the task
    },
    "run": {
        "broker": {"EVALSHA": 2},                              # take it; the queue is then empty
        "orchestrator": {
            "EVALSHA": 3,                                      # pending, running, success
            "FT.AGGREGATE": 1,                                 # blocking invocations (loop)
            "FT.SEARCH": 1,                                    # waiters to release (final status)
            "JSON.GET": 2,                                     # status (taken; before running)
        },
        "state backend": {"EVALSHA": 3, "JSON.GET": 4, "JSON.SET": 1},
        "trigger": {"FT.AGGREGATE": 4},
    },
    "result": {
        "orchestrator": {"JSON.GET": 1},                       # final?
        "state backend": {"JSON.GET": 1},                      # the result
    },
}
TASK_ROUND_TRIPS: dict[str, dict[str, int]] = {
    "call": {"broker": 1, "orchestrator": 1, "state backend": 4, "trigger": 1},
    "run": {"broker": 2, "orchestrator": 7, "state backend": 8, "trigger": 4},
    "result": {"orchestrator": 1, "state backend": 1},
}
IDLE_LOOP_COMMANDS: dict[str, dict[str, int]] = {
    "broker": {"EVALSHA": 1},
    "orchestrator": {"FT.AGGREGATE": 1},
}
# fmt: on


def add(x: int, y: int) -> int:
    return x + y


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Pynenc]:
    app = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .redis_stack(url=redis_url, components="all")
        .thread_runner()
        .build()
    )
    yield app
    app.purge()


@pytest.fixture
def runner(app: Pynenc) -> Iterator[ThreadRunner]:
    runner = app.runner
    assert isinstance(runner, ThreadRunner)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    context.set_current_runner(app.app_id, runner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.on_start()  # installs its signal handlers: the test process gets its own back
    for number, handler in handlers.items():
        signal.signal(number, handler)
    yield runner
    runner.on_stop()
    context.clear_current_runner(app.app_id)


def one_task(app: Pynenc, runner: ThreadRunner, log: CommandLog) -> dict[str, Any]:
    """Run one invocation through the phases; return each phase's commands and round trips."""
    task = app.task(add)
    phases: dict[str, Any] = {}

    with log.recording():
        invocation = task(1, 2)
    phases["call"] = (log.by_component(), dict(log.round_trips))

    with log.recording():
        runner.runner_loop_iteration()
        for thread_info in list(runner.threads.values()):
            thread_info.thread.join()
    phases["run"] = (log.by_component(), dict(log.round_trips))

    context.clear_current_runner(app.app_id)  # the caller is not the runner
    try:
        with log.recording():
            result = invocation.result
    finally:
        context.set_current_runner(app.app_id, runner)
    phases["result"] = (log.by_component(), dict(log.round_trips))
    assert result == 3
    return phases


def test_commands_and_round_trips_of_one_task(app: Pynenc, runner: ThreadRunner) -> None:
    with installed(CommandLog()) as log:
        for _warm_up in range(2):  # scripts loaded, indexes checked, connections open
            one_task(app, runner, log)
        phases = one_task(app, runner, log)
        with log.recording():
            runner.runner_loop_iteration()
        idle = log.by_component()

    assert {phase: commands for phase, (commands, _trips) in phases.items()} == TASK_COMMANDS
    assert {phase: trips for phase, (_commands, trips) in phases.items()} == TASK_ROUND_TRIPS
    assert idle == IDLE_LOOP_COMMANDS

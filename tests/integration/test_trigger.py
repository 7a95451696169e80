"""RedisStackTrigger on the real server: atomic claims, hostile ids, answers against truth, caps.

- claimers of one trigger run (threads, and spawned processes) and of one cron tick: exactly
  one wins; the same race run as a plain read-then-write lets every claimer win, which is
  what the claim script rules out;
- two trigger loops (two app instances, one app) processing the same event: one trigger run;
- an invocation linked to an event between pynenc's two writes of that event stays linked;
- ids and event codes with ``- . : { } | @ * ? " '``, backslashes, spaces and unicode, and
  apps whose ids differ only by such characters;
- event and trigger-run lookups (code, state, emitter, time range, paging) against a Python
  model of the same records;
- complete answers on a server whose result caps are 25 (stands for Redis Stack's 10 000);
- two runner hosts on this package's components alone: an event trigger and a status trigger
  each run once, through the trigger loop in the atomic service;
- trigger definitions and conditions: documents read back whole, lookups through the indexes
  only (the server's command statistics), and ``index migrate`` converting the earlier layout
  of hashes and sets (dry run, interrupted run, reruns);
- a trigger pass that fails, or a runner SIGKILLed mid-pass: no firing lost, none doubled but
  the documented one; a cron tick stored with its valid condition.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus
from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
from pynenc.orchestrator.atomic_service import AtomicServiceRun
from pynenc.trigger.arguments import StaticArgumentProvider, create_argument_filter
from pynenc.trigger.conditions import (
    CompositeLogic,
    CronCondition,
    EventCondition,
    EventContext,
    StatusCondition,
    StatusContext,
)
from pynenc.trigger.monitoring import EventRecord, TriggerRunParticipant, TriggerRunRecord
from pynenc.trigger.trigger_context import TriggerContext
from pynenc.trigger.trigger_definitions import TriggerDefinition
from pynenc_tests.conftest import MockPynenc

from pynenc_redis_stack import RedisStackTrigger
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.keys import encode_segment
from tests.conftest import unique_app_id

HOSTILE = [
    "a-b.c:d",
    "{x}|y",
    "@id*?",
    'say "hi" it\'s',
    "with  spaces ",
    "ünï©ødé ✓ 😀",
    "x} | @event_code:{pending",
    "a\\b",
    "back\\\\slash\\",
    "%3A:%25",
]
"""Identifiers that break unescaped tag queries, key parsing, JSON or Lua quoting."""

BASE = datetime(2026, 1, 1, tzinfo=UTC)

placeholder = MockPynenc()


@placeholder.task
def triggered_task(x: int) -> int:
    return x


def build_app(app_id: str, url: str, sqlite_path: Path, namespace: str | None = None) -> Pynenc:
    return (
        PynencBuilder()
        .app_id(app_id)
        .sqlite(sqlite_db_path=str(sqlite_path))
        .redis_stack(url=url, namespace=namespace, components=("state_backend", "trigger"))
        .build()
    )


def trigger_of(app: Pynenc) -> RedisStackTrigger:
    assert isinstance(app.trigger, RedisStackTrigger)
    return app.trigger


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Pynenc]:
    built = build_app(unique_app_id(request), redis_url, tmp_path / "pynenc.db")
    trigger_of(built).purge()
    yield built
    trigger_of(built).purge()


def event(event_id: str, code: str, at: datetime, **fields: Any) -> EventRecord:
    return EventRecord(event_id=event_id, event_code=code, timestamp=at, payload={"n": event_id}, **fields)


def trigger_run(run_id: str, at: datetime | None, **fields: Any) -> TriggerRunRecord:
    defaults: dict[str, Any] = {"trigger_id": "t", "task_id_key": "tasks.x", "logic_value": "and"}
    return TriggerRunRecord(trigger_run_id=run_id, executed_at=at, **(defaults | fields))


def race(count: int, attempt: Callable[[int], bool]) -> list[bool]:
    """Run ``attempt(n)`` for n in range(count) on ``count`` threads started together."""
    barrier = threading.Barrier(count)
    results: list[bool] = [False] * count

    def one(n: int) -> None:
        barrier.wait()
        results[n] = attempt(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- components and builder -------------------------------------------------------------------


def test_trigger_is_selected_by_builder_and_config(redis_url: str, tmp_path: Path) -> None:
    db = str(tmp_path / "pynenc.db")
    after_sqlite = (
        PynencBuilder().app_id("a").redis_stack(url=redis_url, components=("trigger",)).sqlite(db).build()
    )
    assert isinstance(after_sqlite.trigger, RedisStackTrigger)
    everything = PynencBuilder().app_id("a").sqlite(db).redis_stack(url=redis_url, components="all").build()
    assert isinstance(everything.trigger, RedisStackTrigger)
    default = PynencBuilder().app_id("a").sqlite(db).redis_stack(url=redis_url).build()
    assert not isinstance(default.trigger, RedisStackTrigger)  # the default stays the state backend alone
    by_config = Pynenc(
        config_values={"app_id": "a", "trigger_cls": "RedisStackTrigger", "redis_stack_url": redis_url}
    )
    assert isinstance(by_config.trigger, RedisStackTrigger)


# -- atomic claims ------------------------------------------------------------------------------


def test_concurrent_claimers_of_one_trigger_run_exactly_one_wins(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Eight trigger instances of one app (eight app objects, like eight runners) claim the
    same runs from eight threads at once: one winner per run."""
    app_id = unique_app_id(request)
    triggers = [trigger_of(build_app(app_id, redis_url, tmp_path / f"{n}.db")) for n in range(8)]
    triggers[0].purge()
    for round_number in range(20):
        run_id = f"run-{round_number}-{HOSTILE[round_number % len(HOSTILE)]}"
        winners = race(len(triggers), lambda n, run_id=run_id: triggers[n].claim_trigger_run(run_id))  # type: ignore[misc]
        assert winners.count(True) == 1, (run_id, winners)
    # a claim lasts: claiming again loses; a claim of 0 seconds is over at once
    assert triggers[1].claim_trigger_run("run-0-a-b.c:d") is False
    assert triggers[2].claim_trigger_run("short", expiration_seconds=0) is True
    assert triggers[3].claim_trigger_run("short", expiration_seconds=60) is True
    assert triggers[4].claim_trigger_run("short") is False
    triggers[0].purge()
    assert triggers[5].claim_trigger_run("run-0-a-b.c:d") is True  # purge releases claims


def claim_in_process(
    url: str, app_id: str, sqlite_path: str, run_ids: list[str], start: Any, out: Any
) -> None:
    """One claimer process: its own app, connection pool and interpreter."""
    trigger = trigger_of(build_app(app_id, url, Path(sqlite_path)))
    start.wait()
    out.put([run_id for run_id in run_ids if trigger.claim_trigger_run(run_id)])


def test_claimer_processes_of_the_same_runs_win_each_run_once(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Four processes (spawned: nothing shared but the server) claim the same 200 runs in the
    same order after a common start: every run has exactly one winner."""
    import multiprocessing

    app_id = unique_app_id(request)
    trigger_of(build_app(app_id, redis_url, tmp_path / "t.db")).purge()
    run_ids = [f"run-{n}-{HOSTILE[n % len(HOSTILE)]}" for n in range(200)]
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(4), context.Queue()
    processes = [
        context.Process(
            target=claim_in_process, args=(redis_url, app_id, str(tmp_path / f"{n}.db"), run_ids, start, out)
        )
        for n in range(4)
    ]
    for process in processes:
        process.start()
    won = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert sorted(run_id for batch in won for run_id in batch) == sorted(run_ids)
    trigger_of(build_app(app_id, redis_url, tmp_path / "t.db")).purge()


def test_without_the_claim_script_every_racer_wins(app: Pynenc) -> None:
    """The same race as a read followed by a write (two round trips, the check-then-set the
    script replaces): all eight claimers see the run unclaimed and all eight "win"."""
    trigger = trigger_of(app)
    key = trigger.keys.trigger_run_claims()
    read_done = threading.Barrier(8)

    def naive_claim(_n: int) -> bool:
        client = trigger.store.client
        claimed = run(client, "ZSCORE", key, "the-run") is not None
        read_done.wait()  # every claimer has read before any writes
        if claimed:
            return False
        run(client, "ZADD", key, "9999999999999", "the-run")
        return True

    assert race(8, naive_claim).count(True) == 8
    run(trigger.store.client, "DEL", key)
    assert race(8, lambda _n: trigger.claim_trigger_run("the-run")).count(True) == 1


def test_concurrent_cron_ticks_store_one_last_execution(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """Runners that all read "never executed" race to store this minute: one succeeds; then
    only a runner that read the stored time may move it."""
    app_id = unique_app_id(request)
    triggers = [trigger_of(build_app(app_id, redis_url, tmp_path / f"{n}.db")) for n in range(6)]
    triggers[0].purge()
    condition_id = HOSTILE[6]
    tick = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    stored = race(
        6, lambda n: triggers[n].store_last_cron_execution(condition_id, tick + timedelta(microseconds=n))
    )
    assert stored.count(True) == 1
    winner = stored.index(True)
    assert triggers[3].get_last_cron_execution(condition_id) == tick + timedelta(microseconds=winner)
    later = tick + timedelta(minutes=1)
    assert not triggers[1].store_last_cron_execution(
        condition_id, later, expected_last_execution=tick - timedelta(1)
    )
    assert triggers[1].store_last_cron_execution(
        condition_id, later, expected_last_execution=tick + timedelta(microseconds=winner)
    )
    assert triggers[0].get_last_cron_execution(condition_id) == later
    triggers[0].purge()


def test_two_trigger_loops_on_one_event_run_the_trigger_once(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    """An event matched once, two runners' trigger loops at the same moment: one trigger run,
    one invocation, linked to the event."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "shared.db") for _ in range(2)]
    triggers = [trigger_of(a) for a in apps]
    triggers[0].purge()
    apps[0].state_backend.purge()
    triggered_task.app = apps[0]
    condition = EventCondition(HOSTILE[1], create_argument_filter(None))
    definition = TriggerDefinition(
        task_id=triggered_task.task_id,
        condition_ids=[condition.condition_id],
        argument_provider=StaticArgumentProvider({"x": 1}),
    )
    for trigger in triggers:
        trigger.register_condition(condition)
        trigger.register_trigger(definition.to_dto(trigger.app))
    event_id = triggers[0].emit_event(HOSTILE[1], {"k": "v"})
    service_run = AtomicServiceRun(runner_id="r", atomic_service_run_id="s")

    def loop(n: int) -> bool:
        triggers[n].trigger_loop_iteration(service_run)
        return True

    race(2, loop)
    runs = triggers[1].get_trigger_runs_for_event(event_id)
    assert len(runs) == 1
    assert triggers[0].get_invocations_triggered_by_event(event_id) == [runs[0].triggered_invocation_id]
    stored = triggers[1].get_event(event_id)
    assert stored is not None and stored.matched_condition_ids == [condition.condition_id]
    assert triggers[1].count_events(triggered=True, event_code=HOSTILE[1]) == 1
    assert triggers[0].get_valid_conditions() == {}
    triggers[0].purge()
    apps[0].state_backend.purge()


# -- a pass that fails or stops part-way: no firing lost, none doubled -----------------------------


@pytest.fixture
def two_runners(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[list[Pynenc]]:
    """Two runners' apps of one app (one SQLite file for their orchestrator and broker), an
    event trigger registered on both."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "shared.db") for _ in range(2)]
    trigger_of(apps[0]).purge()
    apps[0].state_backend.purge()
    triggered_task.app = apps[0]
    condition = EventCondition("pass-faults", ANY_ARGUMENTS)
    definition = TriggerDefinition(
        task_id=triggered_task.task_id,
        condition_ids=[condition.condition_id],
        argument_provider=StaticArgumentProvider({"x": 1}),
    )
    for runner_app in apps:
        trigger_of(runner_app).register_condition(condition)
        trigger_of(runner_app).register_trigger(definition.to_dto(runner_app))
    yield apps
    trigger_of(apps[0]).purge()
    apps[0].state_backend.purge()


SERVICE_RUN = AtomicServiceRun(runner_id="r", atomic_service_run_id="s")


def expire_claims(trigger: RedisStackTrigger) -> None:
    """Move every claim's expiry into the past: what the next pass finds once a claim's
    minute is over."""
    key = trigger.keys.trigger_run_claims()
    for run_id in run(trigger.store.client, "ZRANGE", key, "0", "-1"):
        run(trigger.store.client, "ZADD", key, "1", run_id)


def test_a_pass_that_fails_after_its_claim_releases_it_and_the_next_pass_fires(
    two_runners: list[Pynenc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first runner's pass claims the run, then cannot route the task (that runner lacks
    it: pynenc raises). The other runner's pass, within the claim's minute, fires it once
    (before: its claim was refused and it cleared the condition, so it never fired)."""
    first, second = map(trigger_of, two_runners)
    event_id = first.emit_event("pass-faults", {"k": "v"})
    monkeypatch.setattr(two_runners[0], "get_task", lambda _task_id: None)
    with pytest.raises(ValueError, match="not found"):
        first.trigger_loop_iteration(SERVICE_RUN)
    assert len(first.get_valid_conditions()) == 1
    second.trigger_loop_iteration(SERVICE_RUN)
    assert len(second.get_trigger_runs_for_event(event_id)) == 1
    assert second.get_valid_conditions() == {}


def test_a_pass_that_stops_after_its_claim_leaves_the_condition_until_the_claim_expires(
    two_runners: list[Pynenc],
) -> None:
    """A pass killed right after its claim leaves the claim and the valid condition. Another
    pass within the claim's minute is refused the claim and keeps the condition (before: it
    cleared it, and the firing was lost); once the claim has expired, the next pass fires."""
    first, second = map(trigger_of, two_runners)
    event_id = first.emit_event("pass-faults", {"k": "v"})
    (valid,) = first.get_valid_conditions().values()
    (dto,) = first.get_triggers_for_condition(valid.condition.condition_id)
    context = TriggerContext(valid_conditions={valid.valid_condition_id: valid})
    (run_id,) = TriggerDefinition.from_dto(dto, two_runners[0]).generate_trigger_run_ids(context)
    assert first.claim_trigger_run(run_id)  # what the killed pass left
    second.trigger_loop_iteration(SERVICE_RUN)
    assert second.get_trigger_runs_for_event(event_id) == []
    assert list(second.get_valid_conditions()) == [valid.valid_condition_id]
    expire_claims(second)
    second.trigger_loop_iteration(SERVICE_RUN)
    assert [r.trigger_run_id for r in second.get_trigger_runs_for_event(event_id)] == [run_id]
    assert second.get_valid_conditions() == {}


def test_a_pass_that_stops_after_recording_its_run_does_not_fire_it_again(
    two_runners: list[Pynenc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass routes and records its run, then stops before clearing the condition. Long
    after (the claim expired), another pass is refused the run because its record exists,
    and clears the condition (before: it claimed the run again and fired a second time)."""
    first, second = map(trigger_of, two_runners)
    event_id = first.emit_event("pass-faults", {"k": "v"})

    def stopped(_conditions: Any) -> None:
        raise ConnectionError("the pass stops before clearing")

    monkeypatch.setattr(first, "clear_valid_conditions", stopped)
    with pytest.raises(ConnectionError):
        first.trigger_loop_iteration(SERVICE_RUN)
    fired = second.get_invocations_triggered_by_event(event_id)
    assert len(fired) == 1
    expire_claims(second)
    second.trigger_loop_iteration(SERVICE_RUN)
    assert second.get_invocations_triggered_by_event(event_id) == fired
    assert [r.triggered_invocation_id for r in second.get_trigger_runs_for_event(event_id)] == fired
    assert second.get_valid_conditions() == {}
    assert not second.claim_trigger_run(second.get_trigger_runs_for_event(event_id)[0].trigger_run_id)


KILL_POINTS = {
    "read": "claim_trigger_run",  # after reading its valid conditions, before claiming
    "claimed": "execute_task",  # after its claim, before routing the task
    "routed": "store_trigger_run",  # after routing, before recording the run
    "recorded": "clear_valid_conditions",  # after recording, before clearing the condition
}
"""Where a runner's pass is SIGKILLed: the trigger method whose call kills it."""


def pass_killed_at(url: str, app_id: str, sqlite_path: str, step: str) -> None:
    """A runner process whose trigger pass is SIGKILLed at ``step`` (nothing after it runs)."""
    import os
    import signal

    runner_app = build_app(app_id, url, Path(sqlite_path))
    triggered_task.app = runner_app
    trigger = trigger_of(runner_app)

    def killed(*_args: Any, **_kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(trigger, KILL_POINTS[step], killed)
    trigger.trigger_loop_iteration(SERVICE_RUN)


@pytest.mark.parametrize(
    ("step", "passes", "fired"),
    [
        # nothing claimed: the next pass fires
        pytest.param("read", ["pass"], 1, id="before-claim"),
        # the next pass within the claim's minute keeps the condition; the one after expiry fires
        pytest.param("claimed", ["pass", "expire", "pass"], 1, id="after-claim"),
        # the known duplicate (docs/distributed.md, Trigger): routed, never recorded
        pytest.param("routed", ["pass", "expire", "pass"], 2, id="after-route"),
        # however late the next pass comes, the recorded run is not fired again
        pytest.param("recorded", ["expire", "pass", "pass"], 1, id="after-record"),
    ],
)
def test_a_runner_killed_mid_pass_loses_no_firing(
    two_runners: list[Pynenc], redis_url: str, tmp_path: Path, step: str, passes: list[str], fired: int
) -> None:
    """A runner process is SIGKILLed inside its trigger pass; the other runner's passes then
    fire the event's trigger once (twice in the one documented window), and leave nothing
    pending."""
    import multiprocessing

    first, second = map(trigger_of, two_runners)
    first.emit_event("pass-faults", {"k": "v"})
    process = multiprocessing.get_context("spawn").Process(
        target=pass_killed_at, args=(redis_url, two_runners[0].app_id, str(tmp_path / "shared.db"), step)
    )
    process.start()
    process.join(timeout=50)
    assert process.exitcode == -9  # killed where intended
    for action in passes:
        if action == "expire":
            expire_claims(second)
        else:
            second.trigger_loop_iteration(SERVICE_RUN)
    routed = list(two_runners[1].orchestrator.get_existing_invocations(triggered_task))
    assert len(routed) == fired
    assert second.get_valid_conditions() == {}


TICK = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
"""The time both runners' cron checks see (one minute's tick, whatever the real clock)."""


@pytest.fixture
def cron_runners(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[list[Pynenc]]:
    """Two runners' apps of one app, a every-minute cron trigger registered on both."""
    app_id = unique_app_id(request)
    apps = [build_app(app_id, redis_url, tmp_path / "shared.db") for _ in range(2)]
    trigger_of(apps[0]).purge()
    apps[0].state_backend.purge()
    triggered_task.app = apps[0]
    cron = CronCondition("* * * * *")
    definition = TriggerDefinition(
        task_id=triggered_task.task_id,
        condition_ids=[cron.condition_id],
        argument_provider=StaticArgumentProvider({"x": 1}),
    )
    for runner_app in apps:
        trigger_of(runner_app).register_condition(cron)
        trigger_of(runner_app).register_trigger(definition.to_dto(runner_app))
    yield apps
    trigger_of(apps[0]).purge()
    apps[0].state_backend.purge()


def cron_pass_killed_at(url: str, app_id: str, sqlite_path: str, method: str) -> None:
    """A runner process whose trigger pass, its cron check at :data:`TICK`, is SIGKILLed when
    it calls ``method``."""
    import os
    import signal

    runner_app = build_app(app_id, url, Path(sqlite_path))
    triggered_task.app = runner_app
    trigger = trigger_of(runner_app)
    check = trigger.check_time_based_triggers

    def at_tick(current_time: datetime | None = None, *, atomic_service_run: AtomicServiceRun) -> None:
        check(TICK, atomic_service_run=atomic_service_run)

    def killed(*_args: Any, **_kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    trigger.check_time_based_triggers = at_tick  # type: ignore[method-assign]
    setattr(trigger, method, killed)
    trigger.trigger_loop_iteration(SERVICE_RUN)


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("_store_cron_execution", id="before-the-tick-is-stored"),
        pytest.param("get_valid_conditions", id="after-the-tick-is-stored"),
    ],
)
def test_a_runner_killed_around_a_cron_tick_fires_it_once(
    cron_runners: list[Pynenc],
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    """A runner process is SIGKILLed in its pass's cron check, before its compare-and-set or
    right after it (tick and valid condition stored, nothing fired). The other runner's pass,
    20 s later in the same minute, fires the tick once (pynenc's two writes: a kill between
    them moved the schedule without a valid condition, and the tick was lost)."""
    import multiprocessing

    second = trigger_of(cron_runners[1])
    process = multiprocessing.get_context("spawn").Process(
        target=cron_pass_killed_at,
        args=(redis_url, cron_runners[0].app_id, str(tmp_path / "shared.db"), method),
    )
    process.start()
    process.join(timeout=50)
    assert process.exitcode == -9  # killed where intended
    check = second.check_time_based_triggers
    later = TICK + timedelta(seconds=20)
    monkeypatch.setattr(
        second,
        "check_time_based_triggers",
        lambda current_time=None, *, atomic_service_run: check(later, atomic_service_run=atomic_service_run),
    )
    second.trigger_loop_iteration(SERVICE_RUN)
    second.trigger_loop_iteration(SERVICE_RUN)
    assert len(list(cron_runners[1].orchestrator.get_existing_invocations(triggered_task))) == 1
    assert second.get_valid_conditions() == {}


def test_a_cron_tick_is_stored_with_its_valid_condition(app: Pynenc, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tick's compare-and-set and its valid condition are one script: a pass that would
    stop between the two (pynenc makes them two calls; here the second one fails) still
    leaves the tick's valid condition, and a later check in the same minute adds none."""
    trigger = trigger_of(app)
    cron = CronCondition("* * * * *")
    trigger.register_condition(cron)
    tick = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)

    def stopped(_valid_conditions: Any) -> None:
        raise ConnectionError("the pass stops before storing the valid condition")

    monkeypatch.setattr(trigger, "record_valid_conditions", stopped)
    with contextlib.suppress(ConnectionError):
        trigger.check_time_based_triggers(tick, atomic_service_run=SERVICE_RUN)
    monkeypatch.undo()
    trigger.check_time_based_triggers(tick + timedelta(seconds=20), atomic_service_run=SERVICE_RUN)
    ticks = list(trigger.get_valid_conditions().values())
    assert [(vc.condition.condition_id, vc.context.timestamp) for vc in ticks] == [(cron.condition_id, tick)]
    assert trigger.get_last_cron_execution(cron.condition_id) == tick


def test_links_survive_a_rewrite_of_the_event_and_count_once(app: Pynenc) -> None:
    """pynenc writes an event, then again with its matched conditions; a trigger loop on
    another host may link invocations in between. The links stay (hostile ids round-trip
    through the script's JSON), each counted once."""
    trigger = trigger_of(app)
    record = event("e", "code", BASE, triggered_invocation_ids=["from-record"])
    trigger.store_event(record)
    linked = HOSTILE[3:]
    for invocation_id in linked:
        trigger.link_trigger_run_to_events(["e", "never-stored"], invocation_id, trigger_run_id="r")
    trigger.link_trigger_run_to_events(["e"], linked[0], trigger_run_id="r")
    record.matched_condition_ids = ["c1"]
    record.triggered_invocation_ids = []
    trigger.store_event(record)
    trigger.store_event(record)
    assert trigger.get_invocations_triggered_by_event("e") == ["from-record", *linked]
    stored = trigger.get_event("e")
    assert stored is not None and stored.triggered_invocation_ids == ["from-record", *linked]
    assert stored.matched_condition_ids == ["c1"]
    assert trigger.count_events(triggered=True) == 1 and trigger.count_events(matched=True) == 1
    assert run(trigger.store.client, "JSON.GET", trigger.keys.trigger_event("e"), "$.triggered") == (
        f"[{1 + len(linked)}]"
    )
    page = trigger.get_event_markers_in_timerange(BASE, BASE, state="triggered")
    assert [m.event_id for m in page.markers] == ["e"] and page.total == 1
    assert trigger.get_event("never-stored") is None
    assert trigger.get_invocations_triggered_by_event("never-stored") == []


# -- trigger definitions and conditions ---------------------------------------------------------

ANY_ARGUMENTS = create_argument_filter(None)

TASKS = [TaskId(f"mod.{text}", f"Outer.{text}") for text in HOSTILE[:4]] + [TaskId("plain.mod", "fn")]
"""Tasks whose function names hold a dot (``TaskId.from_key`` would split them elsewhere)."""


def definition(trigger_id: str, task: TaskId, condition_ids: list[str], n: int) -> TriggerDefinitionDTO:
    return TriggerDefinitionDTO(
        trigger_id=trigger_id,
        task_id=task,
        condition_ids=condition_ids,
        logic=CompositeLogic.AND if n % 2 else CompositeLogic.OR,
        argument_provider_json=None if n % 3 == 0 else json.dumps({"static": {"n": n, "id": trigger_id}}),
    )


def registered(trigger: RedisStackTrigger) -> tuple[list[Any], list[Any], list[TriggerDefinitionDTO]]:
    """Register an event condition per hostile code, a status condition per task, and a
    trigger per event condition (each also using the first one), on tasks in turn."""
    events = [EventCondition(text, ANY_ARGUMENTS) for text in HOSTILE]
    statuses = [StatusCondition(task, [InvocationStatus.SUCCESS], ANY_ARGUMENTS) for task in TASKS]
    for condition in events + statuses:
        trigger.register_condition(condition)  # the status ones record their task as source
    definitions = [
        definition(text, TASKS[n % len(TASKS)], [events[n].condition_id, events[0].condition_id], n)
        for n, text in enumerate(HOSTILE)
    ]
    for dto in definitions:
        trigger.register_trigger(dto)
    return events, statuses, definitions


def ids(conditions: list[Any]) -> list[str]:
    return [c.condition_id for c in conditions]


def test_definitions_and_conditions_read_back_through_documents_and_indexes(app: Pynenc) -> None:
    trigger = trigger_of(app)
    events, statuses, definitions = registered(trigger)
    for dto in definitions:
        assert trigger._get_trigger(dto.trigger_id) == dto  # the dotted function name included
    assert trigger._get_trigger("absent") is None
    by_id = sorted(definitions, key=lambda d: d.trigger_id)
    assert trigger.get_triggers_for_condition(events[0].condition_id) == by_id
    for n, condition in enumerate(events[1:], start=1):
        assert trigger.get_triggers_for_condition(condition.condition_id) == [definitions[n]]
    assert trigger.get_triggers_for_condition("absent") == []
    everything = events + statuses
    assert ids(trigger._get_all_conditions()) == sorted(ids(everything))
    for condition in everything:
        found = trigger.get_condition(condition.condition_id)
        assert found is not None and found.to_json(app) == condition.to_json(app)
    batch = trigger.get_conditions_batch([events[2].condition_id, "absent", statuses[1].condition_id])
    assert [None if c is None else c.condition_id for c in batch.values()] == [
        events[2].condition_id,
        None,
        statuses[1].condition_id,
    ]
    # a definition is one document holding all of it
    stored = json.loads(run(trigger.store.client, "JSON.GET", trigger.keys.trigger_definition(HOSTILE[1])))
    assert stored == {
        "app_id": app.app_id,
        "trigger_id": HOSTILE[1],
        "task_id_key": TASKS[1].key,
        "task_module": TASKS[1].module,
        "task_func": TASKS[1].func_name,
        "condition_ids": [events[1].condition_id, events[0].condition_id],
        "logic": "and",
        "argument_provider_json": definitions[1].argument_provider_json,
    }
    # cleaning a task's definitions leaves the others
    trigger.clean_task_trigger_definitions(TASKS[0])
    kept = [d for d in by_id if d.task_id != TASKS[0]]
    assert trigger.get_triggers_for_condition(events[0].condition_id) == kept
    assert trigger._get_trigger(definitions[0].trigger_id) is None


def test_conditions_sourced_from_a_task_are_recorded_once_and_found_by_task(app: Pynenc) -> None:
    trigger = trigger_of(app)
    events, statuses, _definitions = registered(trigger)
    for n, task in enumerate(TASKS):
        assert ids(trigger.get_conditions_sourced_from_task(task)) == [statuses[n].condition_id]
    # a second source task of an event condition, recorded twice (and by a second trigger object)
    trigger._register_source_task_condition(TASKS[0], events[3].condition_id)
    trigger._register_source_task_condition(TASKS[0], events[3].condition_id)
    trigger._register_source_task_condition(TASKS[1], events[3].condition_id)
    sources = run(
        trigger.store.client, "JSON.GET", trigger.keys.trigger_condition(events[3].condition_id), "$"
    )
    assert json.loads(sources)[0]["source_task_keys"] == [TASKS[0].key, TASKS[1].key]
    assert ids(trigger.get_conditions_sourced_from_task(TASKS[0])) == sorted(
        [statuses[0].condition_id, events[3].condition_id]
    )
    assert ids(trigger.get_conditions_sourced_from_task(TASKS[0], StatusContext)) == [
        statuses[0].condition_id
    ]
    assert ids(trigger.get_conditions_sourced_from_task(TASKS[0], EventContext)) == [events[3].condition_id]
    # a source task recorded before its condition: the condition reads as absent until registered
    late = EventCondition("registered late", ANY_ARGUMENTS)
    trigger._register_source_task_condition(TASKS[4], late.condition_id)
    assert ids(trigger.get_conditions_sourced_from_task(TASKS[4])) == [statuses[4].condition_id]
    assert trigger.get_condition(late.condition_id) is None
    assert late.condition_id not in ids(trigger._get_all_conditions())
    trigger._register_condition(late)
    assert ids(trigger.get_conditions_sourced_from_task(TASKS[4])) == sorted(
        [statuses[4].condition_id, late.condition_id]
    )
    trigger._register_condition(late)  # registering again keeps its source tasks
    assert late.condition_id in ids(trigger.get_conditions_sourced_from_task(TASKS[4]))
    assert trigger.get_conditions_sourced_from_task(TaskId("absent", "task")) == []


def test_trigger_lookups_query_the_indexes_and_read_no_set_or_hash(low_cap_url: str, tmp_path: Path) -> None:
    """On a server of its own (nothing else sends it commands): the lookups by condition, by
    source task and of all conditions send FT.SEARCH / FT.AGGREGATE, and read documents with
    JSON.GET / JSON.MGET only (INFO commandstats after CONFIG RESETSTAT)."""
    trigger = trigger_of(build_app("lookups", low_cap_url, tmp_path / "t.db"))
    events, statuses, definitions = registered(trigger)

    def lookups() -> list[Any]:
        return [
            trigger.get_triggers_for_condition(events[0].condition_id),
            trigger.get_conditions_sourced_from_task(TASKS[0]),
            trigger.get_conditions_sourced_from_task(TASKS[0], StatusContext),
            trigger._get_all_conditions(),
            trigger.get_conditions_batch([events[1].condition_id]),
            trigger.get_condition(events[1].condition_id),
            trigger._get_trigger(definitions[1].trigger_id),
        ]

    lookups()  # the first use checks the server and its indexes
    server = redis.Redis.from_url(low_cap_url, decode_responses=True)
    server.config_resetstat()
    answers = lookups()
    stats = {
        name.lower().removeprefix("cmdstat_"): value["calls"]
        for name, value in server.info("commandstats").items()
    }
    server.close()
    stats.pop("config|resetstat", None)
    assert len(answers[0]) == len(HOSTILE) and len(answers[3]) == len(events) + len(statuses)
    assert {"ft.search", "ft.aggregate"} & set(stats), stats
    assert all(name.startswith(("ft.", "json.get", "json.mget")) for name in stats), stats
    forbidden = {
        "smembers",
        "sinter",
        "sscan",
        "hget",
        "hmget",
        "hvals",
        "hgetall",
        "hscan",
        "zrange",
        "lrange",
        "get",
    }
    assert not forbidden & set(stats), stats


# -- index migrate: the earlier layout (hashes and lookup sets) becomes documents ------------------


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace no other test uses; its indexes and keys are removed afterwards."""
    name = f"t-trig-{uuid.uuid4().hex[:10]}"
    yield name
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{name}:"):
            run(redis_client, "FT.DROPINDEX", index)
    for key in list(redis_client.scan_iter(match=f"{name}:*", count=10_000)):
        redis_client.unlink(key)


def write_earlier_layout(
    client: redis.Redis,
    namespace: str,
    app_id: str,
    conditions: list[Any],
    definitions: list[TriggerDefinitionDTO],
    sources: dict[str, list[str]],
    app: Pynenc,
) -> None:
    """Write what the earlier trigger wrote, command for command: conditions and definitions
    in two hashes, the triggers of each condition and the conditions of each source task in
    sets, and the names of those sets in a set."""

    def key(entity: str, *ids: str) -> str:
        return ":".join([namespace, entity, encode_segment(app_id), *map(encode_segment, ids)])

    for condition in conditions:  # _register_condition
        client.execute_command(
            "HSET", key("trigger-conditions"), condition.condition_id, condition.to_json(app)
        )
    for dto in definitions:  # register_trigger
        text = json.dumps(
            {
                "task_id_key": dto.task_id.key,
                "condition_ids": list(dto.condition_ids),
                "logic": dto.logic.value,
                "argument_provider_json": dto.argument_provider_json,
            }
        )
        pipe = client.pipeline(transaction=True)
        pipe.execute_command("HSET", key("trigger-definitions"), dto.trigger_id, text)
        sets = [key("trigger-condition-triggers", c) for c in dto.condition_ids]
        for condition_set in sets:
            pipe.execute_command("SADD", condition_set, dto.trigger_id)
        pipe.execute_command("SADD", key("trigger-sets"), *sets)
        pipe.execute()
    for task_key, condition_ids in sources.items():  # _register_source_task_condition
        for condition_id in condition_ids:
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("SADD", key("trigger-source-task", task_key), condition_id)
            pipe.execute_command("SADD", key("trigger-sets"), key("trigger-source-task", task_key))
            pipe.execute()
    # the queue and schedule keys keep their layout
    client.execute_command("HSET", key("trigger-cron"), conditions[0].condition_id, "1767225600000000")


def earlier_keys(client: redis.Redis, namespace: str) -> list[str]:
    entities = [
        "trigger-conditions",
        "trigger-definitions",
        "trigger-condition-triggers",
        "trigger-source-task",
    ]
    return sorted(
        str(key)
        for entity in [*entities, "trigger-sets"]
        for key in client.scan_iter(match=f"{namespace}:{entity}:*", count=10_000)
    )


def test_index_migrate_turns_the_earlier_layout_into_documents_that_read_back_equal(
    redis_url: str, redis_client: redis.Redis, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two apps (one with a hostile id) written in the earlier layout. A dry run lists the
    work and changes nothing; a run interrupted part-way and a second run convert everything:
    every lookup reads back what was written, no earlier key is left, and a third run has
    nothing to do."""
    from pynenc_redis_stack import admin
    from pynenc_redis_stack.cli.index_commands import format_migration
    from pynenc_redis_stack.trigger import migration

    apps = {
        app_id: build_app(app_id, redis_url, tmp_path / "t.db", namespace) for app_id in ("a:b{c}*?", "plain")
    }
    events = [EventCondition(text, ANY_ARGUMENTS) for text in HOSTILE[:5]]
    statuses = [StatusCondition(task, [InvocationStatus.SUCCESS], ANY_ARGUMENTS) for task in TASKS[:3]]
    conditions = events + statuses
    # definitions of tasks whose function has no dot: the earlier layout kept only the task key
    tasks = [TaskId(f"mod.{text}", "fn") for text in HOSTILE[:3]]
    definitions = [
        definition(text, tasks[n % 3], [events[n % 5].condition_id, events[0].condition_id], n)
        for n, text in enumerate(HOSTILE)
    ]
    sources = {
        task.key: [statuses[n].condition_id, events[n].condition_id] for n, task in enumerate(TASKS[:3])
    }
    for app_id, app in apps.items():
        write_earlier_layout(redis_client, namespace, app_id, conditions, definitions, sources, app)
    written = earlier_keys(redis_client, namespace)
    # per app: the two hashes, the set of set names, 5 condition sets, 3 source-task sets
    assert len(written) == 2 * 11

    conf = admin.load_config(url=redis_url, namespace=namespace)
    dry = admin.index_migrate(conf, dry_run=True, out=io.StringIO())
    assert dry.trigger_layout is not None and sorted(dry.trigger_layout.per_app) == sorted(apps)
    for planned in dry.trigger_layout.per_app.values():
        assert (planned.conditions, planned.definitions, planned.source_links) == (8, len(HOSTILE), 6)
    assert sorted(k for p in dry.trigger_layout.per_app.values() for k in p.deleted) == written
    assert earlier_keys(redis_client, namespace) == written  # a dry run changes nothing
    printed = format_migration(dry)
    assert all(f"would delete {key}" in "\n".join(printed) for key in written)
    assert not list(redis_client.scan_iter(match=f"{namespace}:trigger-condition:*"))

    calls = 0
    real_add = migration.add_source_task  # type: ignore[attr-defined]  # patched where migration looks it up

    def interrupted(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise ConnectionError("the run is killed here")
        real_add(*args)

    monkeypatch.setattr(migration, "add_source_task", interrupted)
    with pytest.raises(ConnectionError):
        admin.index_migrate(conf)
    monkeypatch.setattr(migration, "add_source_task", real_add)
    assert earlier_keys(redis_client, namespace)  # part of the work is left for the next run
    report = admin.index_migrate(conf)
    assert report.trigger_layout is not None and sorted(report.trigger_layout.per_app) == sorted(apps)
    assert earlier_keys(redis_client, namespace) == []

    for app in apps.values():
        trigger = trigger_of(app)
        assert ids(trigger._get_all_conditions()) == sorted(ids(conditions))
        for condition in conditions:
            found = trigger.get_condition(condition.condition_id)
            assert found is not None and found.to_json(app) == condition.to_json(app)
            using = sorted(
                (d for d in definitions if condition.condition_id in d.condition_ids),
                key=lambda d: d.trigger_id,
            )
            assert trigger.get_triggers_for_condition(condition.condition_id) == using
        for dto in definitions:
            assert trigger._get_trigger(dto.trigger_id) == dto
        for task_key, condition_ids in sources.items():
            sourced = trigger.get_conditions_sourced_from_task(TaskId.from_key(task_key))
            assert ids(sourced) == sorted(condition_ids)
        assert trigger.get_last_cron_execution(conditions[0].condition_id) == datetime(2026, 1, 1, tzinfo=UTC)
        trigger.clean_task_trigger_definitions(tasks[0])
        assert all(d.task_id != tasks[0] for d in trigger.get_triggers_for_condition(events[0].condition_id))

    again = admin.index_migrate(conf)
    assert again.trigger_layout is not None and again.trigger_layout.per_app == {}
    assert again.nothing_to_do


# -- hostile input --------------------------------------------------------------------------------


def test_hostile_ids_and_event_codes_are_matched_literally(app: Pynenc) -> None:
    trigger = trigger_of(app)
    for n, text in enumerate(HOSTILE):
        trigger.store_event(
            event(
                text,
                text,
                BASE + timedelta(seconds=n),
                emitted_by_invocation_id=text,
                emitted_by_task_id=text,
                emitted_by_runner_context_id=text,
            )
        )
        trigger.store_trigger_run(
            trigger_run(
                text,
                BASE + timedelta(seconds=n),
                trigger_id=text,
                task_id_key=text,
                event_ids=[text],
                source_invocation_ids=[text],
                triggered_invocation_id=text,
                atomic_service_run_id=text,
                participants=[TriggerRunParticipant(context_type="EventContext", valid_condition_id=text)],
            )
        )
    assert trigger.list_event_codes() == sorted(HOSTILE)
    for text in HOSTILE:
        assert [e.event_id for e in trigger.get_events(event_code=text)] == [text]
        assert trigger.count_events(emitted_by_invocation_id=text) == 1
        assert [e.event_id for e in trigger.get_events(emitted_by_task_id=text)] == [text]
        fetched = trigger.get_event(text)
        assert (
            fetched is not None
            and fetched.payload == {"n": text}
            and fetched.emitted_by_runner_context_id == text
        )
        for lookup in (
            trigger.get_trigger_runs_for_event,
            trigger.get_trigger_runs_for_invocation,
            trigger.get_trigger_runs_sourced_by_invocation,
            trigger.get_trigger_runs_for_valid_condition,
        ):
            assert [r.trigger_run_id for r in lookup(text)] == [text]
        in_range = trigger.get_trigger_runs_in_timerange(BASE, BASE + timedelta(hours=1), event_code=text)
        assert [r.trigger_run_id for r in in_range] == [text]
        by_task = trigger.get_trigger_runs_in_timerange(
            BASE, BASE + timedelta(hours=1), task_id_key=text, limit=5
        )
        assert [r.trigger_run_id for r in by_task] == [text]
        trigger.link_trigger_run_to_events([text], text + "!", trigger_run_id=text)
        assert trigger.get_invocations_triggered_by_event(text) == [text + "!"]
        assert not trigger.claim_trigger_run(text)  # its record is stored: it ran
        unrecorded = f"next {text}"
        assert trigger.claim_trigger_run(unrecorded) and not trigger.claim_trigger_run(unrecorded)
    assert trigger.get_referenced_atomic_service_run_ids() == set(HOSTILE)
    assert trigger.count_events(event_code="*") == 0 and trigger.get_trigger_runs_for_event("*") == []


def test_apps_whose_ids_differ_by_special_characters_stay_apart(redis_url: str, tmp_path: Path) -> None:
    apps = ["a?c", "abc", "a*c", "a\\c", "a:c", "a%3Ac"]
    triggers = [trigger_of(build_app(app_id, redis_url, tmp_path / "t.db")) for app_id in apps]
    for trigger in triggers:
        trigger.purge()
    for trigger in triggers:
        trigger.store_event(event("same-id", "same-code", BASE))
        trigger.store_trigger_run(trigger_run("same-run", BASE, event_ids=["same-id"]))
        trigger.record_valid_conditions([])
        assert trigger.claim_trigger_run("same-claim")
    triggers[0].purge()
    assert triggers[0].count_events() == 0 and triggers[0].get_trigger_run("same-run") is None
    for trigger in triggers[1:]:
        assert trigger.count_events() == 1 and trigger.list_event_codes() == ["same-code"]
        assert [r.trigger_run_id for r in trigger.get_trigger_runs_for_event("same-id")] == ["same-run"]
        assert not trigger.claim_trigger_run("same-claim")
        trigger.purge()


def test_values_redis_search_cannot_index_are_refused_with_a_message(app: Pynenc) -> None:
    from pynenc_redis_stack.core.errors import InvalidDocumentError

    trigger = trigger_of(app)
    with pytest.raises(InvalidDocumentError, match="event_code"):
        trigger.store_event(event("e", "", BASE))
    with pytest.raises(InvalidDocumentError, match="NUL"):
        trigger.store_trigger_run(trigger_run("r", BASE, event_ids=["a\x00b"]))
    assert trigger.count_events() == 0


# -- answers against a model -------------------------------------------------------------------------


def stored_model(
    trigger: RedisStackTrigger, seed: int, count: int
) -> tuple[list[EventRecord], list[TriggerRunRecord]]:
    """Store ``count`` events and runs with random times, codes, states and links."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        record = event(
            f"e{n}",
            rng.choice(["a", "b", HOSTILE[1], HOSTILE[5]]),
            BASE + timedelta(microseconds=rng.randrange(10**9)),
            matched_condition_ids=["c"] if rng.random() < 0.4 else [],
            triggered_invocation_ids=[f"i{n}"] if rng.random() < 0.3 else [],
            emitted_by_invocation_id=rng.choice([None, "inv-1", "inv-2"]),
        )
        trigger.store_event(record)
        events.append(record)
    runs = []
    for n in range(count):
        at = None if rng.random() < 0.1 else BASE + timedelta(microseconds=rng.randrange(10**9))
        record = trigger_run(
            f"r{n}",
            at,
            task_id_key=rng.choice(["t1", "t2"]),
            event_ids=rng.sample([e.event_id for e in events], rng.randrange(3)),
        )
        trigger.store_trigger_run(record)
        runs.append(record)
    return events, runs


def test_event_and_run_lookups_agree_with_a_model(app: Pynenc) -> None:
    trigger = trigger_of(app)
    events, runs = stored_model(trigger, seed=7, count=300)
    codes = {e.event_id: e.event_code for e in events}
    rng = random.Random(8)
    for _ in range(25):
        low = BASE + timedelta(microseconds=rng.randrange(10**9))
        high = low + timedelta(microseconds=rng.randrange(5 * 10**8))
        code = rng.choice([None, "a", HOSTILE[1], HOSTILE[5], "absent"])
        matched = rng.choice([None, True, False])
        triggered = rng.choice([None, True, False])
        emitter = rng.choice([None, "inv-1"])
        truth = sorted(
            (
                e
                for e in events
                if low <= e.timestamp <= high
                and (code is None or e.event_code == code)
                and (matched is None or bool(e.matched_condition_ids) == matched)
                and (triggered is None or bool(e.triggered_invocation_ids) == triggered)
                and (emitter is None or e.emitted_by_invocation_id == emitter)
            ),
            key=lambda e: e.timestamp,
        )
        filters: dict[str, Any] = {
            "event_code": code,
            "start_time": low,
            "end_time": high,
            "matched": matched,
            "triggered": triggered,
            "emitted_by_invocation_id": emitter,
        }
        assert trigger.count_events(**filters) == len(truth)
        newest_first = [e.event_id for e in reversed(truth)]
        assert [e.event_id for e in trigger.get_events(**filters, limit=1000)] == newest_first
        assert [e.event_id for e in trigger.get_events(**filters, limit=7, offset=5)] == newest_first[5:12]
        state = rng.choice(["all", "matched", "unmatched", "triggered", "untriggered"])
        only_window = [
            e.event_id
            for e in sorted(events, key=lambda e: e.timestamp)
            if low <= e.timestamp <= high
            and (code is None or e.event_code == code)
            and {
                "all": True,
                "matched": bool(e.matched_condition_ids),
                "unmatched": not e.matched_condition_ids,
                "triggered": bool(e.triggered_invocation_ids),
                "untriggered": not e.triggered_invocation_ids,
            }[state]
        ]
        page = trigger.get_event_markers_in_timerange(
            low, high, event_code=code, state=state, limit=10, offset=3
        )
        assert [m.event_id for m in page.markers] == only_window[3:13]
        assert page.total == len(only_window) and page.truncated == (13 < len(only_window))
        task = rng.choice([None, "t1"])
        limit = rng.choice([None, 5])
        runs_truth = [
            r.trigger_run_id
            for r in sorted(
                (r for r in runs if r.executed_at is not None and low <= r.executed_at <= high),
                key=lambda r: r.executed_at or BASE,
            )
            if (task is None or r.task_id_key == task)
            and (code is None or any(codes[i] == code for i in r.event_ids))
        ][:limit]
        found = trigger.get_trigger_runs_in_timerange(
            low, high, event_code=code, task_id_key=task, limit=limit
        )
        assert [r.trigger_run_id for r in found] == runs_truth
    assert trigger.list_event_codes() == sorted(set(codes.values()))
    for event_id in ("e0", "e1", "e2"):
        expected = sorted(
            (r for r in runs if event_id in r.event_ids),
            key=lambda r: r.executed_at or datetime.min.replace(tzinfo=UTC),
        )
        assert [r.trigger_run_id for r in trigger.get_trigger_runs_for_event(event_id)] == [
            r.trigger_run_id for r in expected
        ]


def test_retention_agrees_with_a_model(app: Pynenc) -> None:
    trigger = trigger_of(app)
    events, runs = stored_model(trigger, seed=11, count=120)
    threshold = BASE + timedelta(microseconds=5 * 10**8)
    old = {e.event_id for e in events if e.timestamp < threshold}
    assert sorted(trigger._age_purge_events(threshold)) == sorted(old)
    old_runs = {r.trigger_run_id for r in runs if r.executed_at is not None and r.executed_at < threshold}
    assert trigger._age_purge_trigger_runs(threshold) == len(old_runs)
    cascaded = {
        r.trigger_run_id
        for r in runs
        if r.trigger_run_id not in old_runs and any(i in old for i in r.event_ids)
    }
    assert trigger._cascade_delete_runs_for_events(sorted(old)) == len(cascaded)
    kept_runs = [r for r in runs if r.trigger_run_id not in old_runs | cascaded]
    assert {
        r.trigger_run_id for r in trigger.get_trigger_runs_in_timerange(BASE, BASE + timedelta(days=1))
    } == {r.trigger_run_id for r in kept_runs if r.executed_at is not None}
    trigger.conf.event_max_records = 10
    newest = sorted((e for e in events if e.event_id not in old), key=lambda e: e.timestamp)
    assert sorted(trigger._cap_purge_events()) == sorted(e.event_id for e in newest[:-10])
    assert {e.event_id for e in trigger.get_events(limit=100)} == {e.event_id for e in newest[-10:]}
    trigger.conf.trigger_run_max_records = 3
    ordered = sorted(kept_runs, key=lambda r: r.executed_at or datetime.min.replace(tzinfo=UTC))
    assert trigger._cap_purge_trigger_runs() == len(kept_runs) - 3
    assert {
        r.trigger_run_id
        for r in trigger.get_trigger_runs_batch([r.trigger_run_id for r in ordered]).values()
        if r
    } == {r.trigger_run_id for r in ordered[-3:]}


# -- beyond the server's result caps ------------------------------------------------------------------


def test_answers_are_complete_past_the_servers_result_cap(low_cap_url: str, tmp_path: Path) -> None:
    """Caps of 25 stand for Redis Stack's 10 000: 120 events of 40 codes, 120 runs of one event."""
    trigger = trigger_of(build_app("capped", low_cap_url, tmp_path / "t.db"))
    trigger.purge()
    events = [event(f"e{n:03}", f"code-{n % 40:02}", BASE + timedelta(seconds=n)) for n in range(120)]
    for record in events:
        trigger.store_event(record)
    for n in range(120):
        trigger.store_trigger_run(trigger_run(f"r{n:03}", BASE + timedelta(seconds=n), event_ids=["e000"]))
    assert trigger.count_events() == 120
    assert trigger.list_event_codes() == [f"code-{n:02}" for n in range(40)]
    assert [e.event_id for e in trigger.get_events(limit=200)] == [f"e{n:03}" for n in reversed(range(120))]
    assert [e.event_id for e in trigger.get_events(limit=10, offset=100)] == [
        f"e{n:03}" for n in range(19, 9, -1)
    ]
    page = trigger.get_event_markers_in_timerange(BASE, BASE + timedelta(hours=1), limit=30, offset=60)
    assert [m.event_id for m in page.markers] == [f"e{n:03}" for n in range(60, 90)]
    assert page.total == 120 and page.truncated
    assert len(trigger.get_trigger_runs_for_event("e000")) == 120
    everything = trigger.get_trigger_runs_in_timerange(BASE, BASE + timedelta(hours=1))
    assert [r.trigger_run_id for r in everything] == [f"r{n:03}" for n in range(120)]
    limited = trigger.get_trigger_runs_in_timerange(BASE, BASE + timedelta(hours=1), limit=50)
    assert [r.trigger_run_id for r in limited] == [f"r{n:03}" for n in range(50)]
    assert (
        len(trigger.get_trigger_runs_in_timerange(BASE, BASE + timedelta(hours=1), event_code="code-00"))
        == 120
    )
    assert sorted(trigger._age_purge_events(BASE + timedelta(seconds=100))) == [
        f"e{n:03}" for n in range(100)
    ]
    assert trigger._cascade_delete_runs_for_events([f"e{n:03}" for n in range(100)]) == 120
    trigger.purge()
    assert trigger.count_events() == 0 and trigger.list_event_codes() == []


# -- end to end: runners of an app built only of this package's components ------------------------


def e2e_source(label: str) -> str:
    """Emits the event the ``on_event`` trigger listens to; its success fires ``on_status``."""
    from pynenc import context

    invocation = context.get_dist_invocation_context(E2E_APP_ID)
    assert invocation is not None
    invocation.app.trigger.emit_event(HOSTILE[6], {"label": label})
    return label


def e2e_from_event(label: str) -> str:
    return f"event:{label}"


def e2e_from_status(label: str) -> str:
    return f"status:{label}"


def e2e_event_args(context: Any) -> dict[str, str]:
    return {"label": str(context.payload["label"])}


def e2e_status_args(context: Any) -> dict[str, str]:
    return {"label": str(context.arguments.kwargs["label"])}


E2E_APP_ID = "e2e-trigger {x}|y"


def e2e_app(url: str) -> tuple[Pynenc, Any]:
    """One runner host's app: every component from this package, tasks registered on it."""
    from pynenc.trigger.trigger_builder import on_event, on_status

    built = (
        PynencBuilder()
        .app_id(E2E_APP_ID)
        .redis_stack(url=url, components="all")
        .runner_tuning(runner_loop_sleep_time_sec=0.01, invocation_wait_results_sleep_time_sec=0.01)
        .build()
    )
    built.conf.atomic_service_interval_minutes = 0.01
    built.conf.atomic_service_check_interval_minutes = 0.005
    built.conf.atomic_service_spread_margin_minutes = 0.0
    built.conf.atomic_service_max_start_slot_fraction = 1.0
    source = built.task(e2e_source)
    built.task(e2e_from_event, triggers=on_event(HOSTILE[6]).with_args_from_event(e2e_event_args))
    built.task(e2e_from_status, triggers=on_status(source).with_args_from_status(e2e_status_args))
    return built, source


def e2e_runs(trigger: RedisStackTrigger) -> list[TriggerRunRecord]:
    """The runs of this test's triggers (pynenc's own cron tasks, e.g. recovery, run too)."""
    window_end = datetime.now(UTC) + timedelta(minutes=1)
    return [r for r in trigger.get_trigger_runs_in_timerange(BASE, window_end) if ".e2e_" in r.task_id_key]


def test_runners_on_this_packages_components_alone_fire_each_trigger_once(redis_url: str) -> None:
    """Two runner hosts (two app objects, two ThreadRunners) sharing only the server: a task
    emits an event and succeeds; the event trigger and the status trigger each run once, and
    their invocations succeed with the arguments taken from the event and the status."""
    import time

    from pynenc.runner.thread_runner import ThreadRunner

    hosts = [e2e_app(redis_url) for _ in range(2)]
    first, source = hosts[0]
    first.purge()
    for app_of_host, _source in hosts:
        app_of_host.register_deferred_triggers()
    runners = [ThreadRunner(app_of_host) for app_of_host, _source in hosts]
    threads = [threading.Thread(target=runner.run, daemon=True) for runner in runners]
    for thread in threads:
        thread.start()
    try:
        invocation = source("go")
        assert invocation.result == "go"
        trigger = trigger_of(first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the trigger loop runs in the atomic service
            runs = e2e_runs(trigger)
            if len(runs) >= 2:
                break
            time.sleep(0.05)
        by_task = {run.task_id_key.rsplit(".", 1)[-1]: run for run in runs}
        assert sorted(by_task) == ["e2e_from_event", "e2e_from_status"], runs
        results = {
            name: first.state_backend.get_invocation(run.triggered_invocation_id).result
            for name, run in by_task.items()
        }
        assert results == {"e2e_from_event": "event:go", "e2e_from_status": "status:go"}
        (event_record,) = trigger.get_events(event_code=HOSTILE[6])
        assert event_record.emitted_by_invocation_id == invocation.invocation_id
        assert event_record.triggered_invocation_ids == [by_task["e2e_from_event"].triggered_invocation_id]
        assert [
            r.trigger_run_id for r in trigger.get_trigger_runs_sourced_by_invocation(invocation.invocation_id)
        ] == [by_task["e2e_from_status"].trigger_run_id]
        assert len(e2e_runs(trigger)) == 2
    finally:
        for runner in runners:
            runner.stop_runner_loop()
        for thread in threads:
            thread.join(timeout=10)
        first.purge()

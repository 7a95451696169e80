"""RedisStackTrigger: pynenc 0.4's trigger component on Redis Stack.

Trigger definitions and conditions (:mod:`.registry`), events and trigger runs
(:mod:`.records`) are RedisJSON documents found through RediSearch. Valid conditions waiting
for the trigger loop (a queue), cron last executions (a schedule) and trigger-run claims
(leases) are a hash, a hash and a sorted set per app (:mod:`pynenc_redis_stack.core.keys`).

Every runner sharing the server's URL and namespace sees one trigger state, so a trigger
fires once across hosts: ``claim_trigger_run`` is one script (check and claim in one step,
expiry on the server's clock, a recorded run never claimed again), and a cron condition's
last execution moves only by a compare-and-set script that also stores the tick's valid
condition. How a pass that fails part-way keeps its firings: docs/distributed.md (Trigger).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis
from pynenc.conf.validation_trigger import validate_trigger_config
from pynenc.exceptions import PynencError
from pynenc.trigger.base_trigger import BaseTrigger
from pynenc.trigger.conditions import CronCondition, CronContext, TriggerCondition, ValidCondition
from pynenc.trigger.log_messages import TriggerLogMsg, join_tokens, ref

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import Document, dumps, from_micros, to_micros
from pynenc_redis_stack.core.conf import ConfigTriggerRedisStack
from pynenc_redis_stack.core.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.core.schema import TriggerSchemas, load_schema_set
from pynenc_redis_stack.core.store import DocumentStore, unlink
from pynenc_redis_stack.trigger.records import EventFilters, TriggerRecords
from pynenc_redis_stack.trigger.registry import (
    add_source_task,
    condition_text,
    definition_document,
    definition_of,
    store_condition,
)
from pynenc_redis_stack.trigger.scripts import claim_run_script, store_cron_execution_script

if TYPE_CHECKING:
    from pynenc.app import Pynenc
    from pynenc.identifiers.task_id import TaskId
    from pynenc.invocation.base_invocation import BaseInvocation
    from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
    from pynenc.orchestrator.atomic_service import AtomicServiceRun
    from pynenc.trigger.conditions import ConditionContext
    from pynenc.trigger.monitoring import EventMarkerPage, EventRecord, TriggerRunRecord
    from pynenc.trigger.trigger_context import TriggerContext
    from pynenc.trigger.trigger_definitions import TriggerDefinition
    from pynenc.trigger.types import ConditionId

    from pynenc_redis_stack.core.keys import AppKeys


@dataclass
class _Pass:
    """What one pass of the trigger loop has done so far (see RedisStackTrigger's pass)."""

    run_conditions: dict[str, set[str]] = field(default_factory=dict)
    """The valid conditions of each run the pass considered."""
    claimed: list[str] = field(default_factory=list)
    """Runs this pass claimed, in order."""
    routed: set[str] = field(default_factory=set)
    """Claimed runs whose task this pass routed."""
    held_elsewhere: set[str] = field(default_factory=set)
    """Runs claimed by another pass that has not recorded them."""


class TriggerPassInterruptedError(PynencError):
    """A trigger pass lost its connection to the server; the next pass does its work."""


def _checked(what: str, value: str) -> str:
    """Refuse a string Redis cannot carry (a lone surrogate has no UTF-8 form)."""
    position = lone_surrogate(value)
    if position is not None:
        raise InvalidDocumentError(lone_surrogate_message(what, value, position))
    return value


class RedisStackTrigger(BaseTrigger):
    """pynenc trigger on Redis Stack, shared by every runner on the same server and namespace.

    Select it with ``trigger_cls = "RedisStackTrigger"`` or
    ``PynencBuilder().redis_stack(url=..., components="all")``.
    """

    def __init__(self, app: Pynenc) -> None:
        super().__init__(app)
        self.schemas = load_schema_set(TriggerSchemas)

    @cached_property
    def conf(self) -> ConfigTriggerRedisStack:
        config = ConfigTriggerRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )
        validate_trigger_config(config)
        return config

    @cached_property
    def store(self) -> DocumentStore[TriggerSchemas]:
        return DocumentStore(self.conf, self.app.app_id, self.schemas)

    @cached_property
    def records(self) -> TriggerRecords:
        return TriggerRecords(self.store, self.app, self.schemas)

    @property
    def keys(self) -> AppKeys:
        return self.store.keys

    # -- conditions and trigger definitions ------------------------------------------------
    # One document per definition and per condition (:mod:`.registry`); every lookup is a
    # query of their indexes, every read by id a JSON.GET / JSON.MGET of the documents.
    # A condition's source tasks live in its own document (an array, one tag value each)
    # rather than in a link document per (task, condition): get_conditions_sourced_from_task
    # is then one query that returns the conditions themselves, and recording a source task
    # is one script on one key (atomic, and idempotent: the task is appended once).

    def _register_condition(self, condition: TriggerCondition) -> None:
        condition_id = _checked("condition id", condition.condition_id)
        store_condition(self.store.client, self.keys, condition_id, condition.to_json(self.app))

    def _condition_of(self, document: Document | None) -> TriggerCondition | None:
        text = condition_text(document)
        return None if text is None else TriggerCondition.from_json(text, self.app)

    def get_condition(self, condition_id: str) -> TriggerCondition | None:
        return self._condition_of(
            self.store.read(self.keys.trigger_condition(_checked("condition id", condition_id)))
        )

    def get_conditions_batch(self, condition_ids: Sequence[str]) -> dict[str, TriggerCondition | None]:
        """The conditions of ``condition_ids`` in one ``JSON.MGET`` per batch (None where there is none)."""
        keys = [self.keys.trigger_condition(_checked("condition id", i)) for i in condition_ids]
        documents = self.store.read_many(keys)
        return {i: self._condition_of(d) for i, d in zip(condition_ids, documents, strict=True)}

    def _conditions_where(self, request_filter: query.Filter) -> list[TriggerCondition]:
        """The conditions of the documents matching ``request_filter``, by condition id."""
        documents = sorted(
            self.store.documents(self.schemas.conditions, request_filter), key=lambda d: d["condition_id"]
        )
        return [c for c in map(self._condition_of, documents) if c is not None]

    def _get_all_conditions(self) -> list[TriggerCondition]:
        return self._conditions_where(self.store.where(self.schemas.conditions))

    def register_trigger(self, trigger: TriggerDefinitionDTO) -> None:
        """Store the definition (one ``JSON.SET`` of its document)."""
        key = self.keys.trigger_definition(_checked("trigger id", trigger.trigger_id))
        document = definition_document(self.schemas, self.app.app_id, trigger)
        run(self.store.client, "JSON.SET", key, "$", dumps(document))

    def _get_trigger(self, trigger_id: str) -> TriggerDefinitionDTO | None:
        document = self.store.read(self.keys.trigger_definition(_checked("trigger id", trigger_id)))
        return None if document is None else definition_of(document)

    def get_triggers_for_condition(self, condition_id: str) -> list[TriggerDefinitionDTO]:
        """The definitions using ``condition_id``, by trigger id (one query)."""
        spec = self.schemas.definitions
        documents = self.store.documents(spec, self.store.where(spec, condition_id=condition_id))
        return [definition_of(d) for d in sorted(documents, key=lambda d: d["trigger_id"])]

    def clean_task_trigger_definitions(self, task_id: TaskId) -> None:
        """Delete the task's trigger definitions (found through the index, one ``UNLINK``).

        A definition registered while this runs is registered after the clean, and stays.
        """
        spec = self.schemas.definitions
        self.store.unlink(self.store.matching_keys(spec, self.store.where(spec, task_id_key=task_id.key)))

    def _register_source_task_condition(self, task_id: TaskId, condition_id: ConditionId) -> None:
        add_source_task(self.store.client, self.keys, _checked("condition id", condition_id), task_id.key)

    def get_conditions_sourced_from_task(
        self, task_id: TaskId, context_type: type[ConditionContext] | None = None
    ) -> list[TriggerCondition]:
        """The conditions sourced from the task, by condition id (one query); with
        ``context_type``, those of that context (compared on the class, as pynenc does)."""
        spec = self.schemas.conditions
        conditions = self._conditions_where(self.store.where(spec, source_task_key=task_id.key))
        if context_type is not None:
            conditions = [c for c in conditions if c.context_type == context_type]
        return conditions

    # -- valid conditions ---------------------------------------------------------------------

    def record_valid_condition(self, valid_condition: ValidCondition) -> None:
        self.record_valid_conditions([valid_condition])

    def record_valid_conditions(self, valid_conditions: list[ValidCondition]) -> None:
        """Store the valid conditions in one ``HSET`` (a valid condition stored twice is one)."""
        if not valid_conditions:
            return
        fields: list[str] = []
        for valid_condition in valid_conditions:
            fields.extend(
                (
                    _checked("valid condition id", valid_condition.valid_condition_id),
                    valid_condition.to_json(self.app),
                )
            )
        run(self.store.client, "HSET", self.keys.trigger_valid_conditions(), *fields)

    def get_valid_conditions(self) -> dict[str, ValidCondition]:
        stored: dict[str, str] = run(self.store.client, "HGETALL", self.keys.trigger_valid_conditions())
        return {vc_id: ValidCondition.from_json(text, self.app) for vc_id, text in stored.items()}

    # -- cron and claims ------------------------------------------------------------------------

    def get_last_cron_execution(self, condition_id: ConditionId) -> datetime | None:
        micros = run(
            self.store.client, "HGET", self.keys.trigger_cron(), _checked("condition id", condition_id)
        )
        return None if micros is None else from_micros(int(micros))

    def store_last_cron_execution(
        self,
        condition_id: ConditionId,
        execution_time: datetime,
        expected_last_execution: datetime | None = None,
    ) -> bool:
        """Store ``execution_time`` if the stored last execution is still ``expected_last_execution``.

        ``None`` expects that the condition never ran: of two runners that both read "never",
        only one stores (pynenc's SQLite trigger lets both).
        """
        return self._store_cron_execution(condition_id, execution_time, expected_last_execution, None)

    def _store_cron_execution(
        self,
        condition_id: ConditionId,
        execution_time: datetime,
        expected_last_execution: datetime | None,
        tick: ValidCondition | None,
    ) -> bool:
        """The compare-and-set of a cron execution; with ``tick``, that valid condition is
        stored in the same script (no tick is stored without it)."""
        expected = "" if expected_last_execution is None else str(to_micros(expected_last_execution))
        keys = [self.keys.trigger_cron()]
        args = [_checked("condition id", condition_id), str(to_micros(execution_time)), expected]
        if tick is not None:
            keys.append(self.keys.trigger_valid_conditions())
            args.extend((_checked("valid condition id", tick.valid_condition_id), tick.to_json(self.app)))
        stored = store_cron_execution_script.run_in(
            self.store.client.pipeline(transaction=False), keys, args
        )[-1]
        return bool(stored)

    def check_time_based_triggers(
        self, current_time: datetime | None = None, *, atomic_service_run: AtomicServiceRun
    ) -> None:
        """pynenc's cron check, with each tick's compare-and-set and its valid condition in
        one script: a pass that stops between the two (pynenc makes them two calls) would
        have moved the schedule without firing, losing the tick."""
        if not self.conf.enable_scheduler:
            return
        now = current_time or datetime.now(UTC)
        for condition in self._get_all_conditions():
            if isinstance(condition, CronCondition):
                self._tick_cron_condition(condition, now, atomic_service_run)

    def _tick_cron_condition(
        self, condition: CronCondition, now: datetime, atomic_service_run: AtomicServiceRun
    ) -> None:
        """pynenc's ``_should_trigger_cron_condition`` (same checks, cache and logs), storing
        the valid condition with the compare-and-set."""
        condition_id = condition.condition_id
        context = CronContext(timestamp=now)
        cached = self._last_cron_execution_cache.get(condition_id)
        if cached:
            context = CronContext(timestamp=now, last_execution=cached)
            if not condition.is_satisfied_by(context):
                return
        stored = self.get_last_cron_execution(condition_id)
        if stored:
            self._last_cron_execution_cache[condition_id] = stored
            context = CronContext(timestamp=now, last_execution=stored)
            if not condition.is_satisfied_by(context):
                return
        service_run = ref("atomic-service-run", atomic_service_run.atomic_service_run_id)
        if self._store_cron_execution(condition_id, now, stored, ValidCondition(condition, context)):
            self._last_cron_execution_cache[condition_id] = now
            self.app.logger.info(
                join_tokens(
                    TriggerLogMsg.CRON_CLAIMED,
                    service_run,
                    ref("condition", condition_id),
                    f"timestamp:{now.isoformat()}",
                )
            )
            return
        self.app.logger.info(
            join_tokens(
                TriggerLogMsg.CRON_SKIPPED,
                service_run,
                ref("condition", condition_id),
                "reason:already-claimed",
            )
        )
        fresh = self.get_last_cron_execution(condition_id)
        if fresh:
            self._last_cron_execution_cache[condition_id] = fresh

    def claim_trigger_run(self, trigger_run_id: str, expiration_seconds: int = 60) -> bool:
        """Claim ``trigger_run_id`` for ``expiration_seconds`` (server clock); exactly one
        caller wins, across processes and hosts, and a run whose record is stored (it ran)
        is never claimed again."""
        run_id = _checked("trigger run id", trigger_run_id)
        outcome = -1  # recorded: it ran, never claimed again
        if not run(self.store.client, "EXISTS", self.keys.trigger_run(run_id)):
            outcome = claim_run_script.run_in(
                self.store.client.pipeline(transaction=False),
                [self.keys.trigger_run_claims()],
                [run_id, str(max(0, expiration_seconds))],
            )[-1]
        current = self._pass
        if current is not None:
            if outcome == 1:
                current.claimed.append(trigger_run_id)
            elif outcome == 0:
                current.held_elsewhere.add(trigger_run_id)
        return outcome == 1

    # -- one pass of the trigger loop ----------------------------------------------------------
    # pynenc's pass claims each run, routes its task, records the run, and at the end clears
    # every valid condition none of whose triggers is still pending, counting a run whose
    # claim was refused as done. Here a pass also keeps what it learns (_Pass): a pass that
    # fails releases the claims it has not routed, and a valid condition stays while one of
    # its runs is claimed by a pass that has not recorded it (refused claims of recorded runs
    # count as done), so a pass that stops after its claim cannot make another pass drop the
    # firing; the claim expires and the next pass runs it.

    @property
    def _pass(self) -> _Pass | None:
        current: _Pass | None = getattr(self._pass_state, "current", None)
        return current

    @cached_property
    def _pass_state(self) -> threading.local:
        return threading.local()

    def trigger_loop_iteration(self, atomic_service_run: AtomicServiceRun) -> None:
        """pynenc's pass; a lost connection ends it as :class:`TriggerPassInterruptedError`.

        pynenc's runner ends its loop on any error of the pass that is not a ``PynencError``:
        one dropped connection (a claim's lost reply, a read on a broken socket) would stop
        the runner for good. As a ``PynencError`` it is logged, the atomic-service run is
        ABANDONED, and the next pass, an interval later, does the work: nothing of it is
        lost (claims it did not route are released or expire, conditions stay until their
        runs are recorded).
        """
        try:
            super().trigger_loop_iteration(atomic_service_run)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise TriggerPassInterruptedError(
                f"trigger pass {atomic_service_run.atomic_service_run_id} lost its connection to the server "
                f"({error}); the next pass retries it"
            ) from error

    def _process_loop_iteration(self, atomic_service_run: AtomicServiceRun) -> None:
        current = self._pass_state.current = _Pass()
        try:
            super()._process_loop_iteration(atomic_service_run)
        except BaseException:
            unrouted = [run_id for run_id in current.claimed if run_id not in current.routed]
            if unrouted:
                run(self.store.client, "ZREM", self.keys.trigger_run_claims(), *unrouted)
            raise
        finally:
            self._pass_state.current = None

    def _execution_contexts_for_trigger(
        self, trigger: TriggerDefinition, context: TriggerContext
    ) -> list[TriggerContext]:
        contexts: list[TriggerContext] = super()._execution_contexts_for_trigger(trigger, context)
        current = self._pass
        if current is not None:
            for execution_context in contexts:
                for run_id in trigger.generate_trigger_run_ids(execution_context):
                    current.run_conditions[run_id] = set(execution_context.valid_conditions)
        return contexts

    def execute_task(
        self, task_id: TaskId, arguments: dict[str, Any] | None = None, *, parent_event_id: str | None = None
    ) -> BaseInvocation:
        invocation = super().execute_task(task_id, arguments, parent_event_id=parent_event_id)
        current = self._pass
        if current is not None and current.claimed:
            current.routed.add(current.claimed[-1])  # pynenc routes right after each claim
        return invocation

    def clear_valid_conditions(self, conditions: Iterable[ValidCondition]) -> None:
        current = self._pass
        kept: set[str] = set()
        if current is not None:
            kept = {
                vc_id for run_id in current.held_elsewhere for vc_id in current.run_conditions.get(run_id, ())
            }
        ids = list(
            dict.fromkeys(c.valid_condition_id for c in conditions if c.valid_condition_id not in kept)
        )
        if ids:
            run(self.store.client, "HDEL", self.keys.trigger_valid_conditions(), *ids)

    # -- purge -------------------------------------------------------------------------------

    def _purge(self) -> None:
        """Delete every trigger document of the app (found through the indexes) and its
        valid conditions, cron executions and run claims."""
        for spec in self.schemas.all():
            self.store.unlink(self.store.matching_keys(spec, self.store.where(spec)))
        purge_trigger_keys(self.store.client, self.keys)

    # -- monitoring ------------------------------------------------------------------------

    def store_event(self, event: EventRecord) -> None:
        self.records.store_event(event)

    def get_event(self, event_id: str) -> EventRecord | None:
        return self.records.get_events_batch([event_id])[event_id]

    def get_events_batch(self, event_ids: Sequence[str]) -> dict[str, EventRecord | None]:
        return self.records.get_events_batch(event_ids)

    def get_events(
        self,
        *,
        event_code: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        matched: bool | None = None,
        triggered: bool | None = None,
        emitted_by_invocation_id: str | None = None,
        emitted_by_task_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[EventRecord]:
        filters = EventFilters(
            event_code, start_time, end_time, matched, triggered, emitted_by_invocation_id, emitted_by_task_id
        )
        return self.records.get_events(filters, limit, offset)

    def count_events(
        self,
        *,
        event_code: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        matched: bool | None = None,
        triggered: bool | None = None,
        emitted_by_invocation_id: str | None = None,
        emitted_by_task_id: str | None = None,
    ) -> int:
        filters = EventFilters(
            event_code, start_time, end_time, matched, triggered, emitted_by_invocation_id, emitted_by_task_id
        )
        return self.records.count_events(filters)

    def get_event_markers_in_timerange(
        self,
        start_time: datetime,
        end_time: datetime,
        *,
        event_code: str | None = None,
        state: str = "all",
        limit: int = 1000,
        offset: int = 0,
    ) -> EventMarkerPage:
        return self.records.event_markers(start_time, end_time, event_code, state, limit, offset)

    def link_trigger_run_to_events(
        self, event_ids: list[str], invocation_id: str, *, trigger_run_id: str
    ) -> None:
        self.records.link(event_ids, invocation_id)

    def get_invocations_triggered_by_event(self, event_id: str) -> list[str]:
        return self.records.invocations_triggered_by(event_id)

    def list_event_codes(self) -> list[str]:
        return self.records.event_codes()

    def store_trigger_run(self, run: TriggerRunRecord) -> None:
        self.records.store_run(run)

    def get_trigger_run(self, trigger_run_id: str) -> TriggerRunRecord | None:
        return self.records.get_runs_batch([trigger_run_id])[trigger_run_id]

    def get_trigger_runs_batch(self, run_ids: Sequence[str]) -> dict[str, TriggerRunRecord | None]:
        return self.records.get_runs_batch(run_ids)

    def get_trigger_runs_for_event(self, event_id: str) -> list[TriggerRunRecord]:
        return self.records.runs_where(event_id=event_id)

    def get_trigger_runs_for_invocation(self, invocation_id: str) -> list[TriggerRunRecord]:
        return self.records.runs_where(triggered_invocation_id=invocation_id)

    def get_trigger_runs_sourced_by_invocation(self, invocation_id: str) -> list[TriggerRunRecord]:
        return self.records.runs_where(source_invocation_id=invocation_id)

    def get_trigger_runs_for_valid_condition(self, valid_condition_id: str) -> list[TriggerRunRecord]:
        return self.records.runs_where(valid_condition_id=valid_condition_id)

    def get_trigger_runs_in_timerange(
        self,
        start_time: datetime,
        end_time: datetime,
        *,
        event_code: str | None = None,
        task_id_key: str | None = None,
        limit: int | None = None,
    ) -> list[TriggerRunRecord]:
        return self.records.runs_in_timerange(
            start_time, end_time, event_code=event_code, task_id_key=task_id_key, limit=limit
        )

    def get_referenced_atomic_service_run_ids(self) -> set[str]:
        return self.records.referenced_atomic_service_run_ids()

    # -- retention ---------------------------------------------------------------------------

    def _age_purge_events(self, threshold: datetime) -> list[str]:
        return self.records.age_purge_events(threshold)

    def _age_purge_trigger_runs(self, threshold: datetime) -> int:
        return self.records.age_purge_runs(threshold)

    def _cap_purge_events(self) -> list[str]:
        return self.records.cap_purge_events(int(self.conf.event_max_records))

    def _cascade_delete_runs_for_events(self, event_ids: list[str]) -> int:
        return self.records.delete_runs_of_events(event_ids)

    def _cap_purge_trigger_runs(self) -> int:
        return self.records.cap_purge_runs(int(self.conf.trigger_run_max_records))


def purge_trigger_keys(client: redis.Redis, keys: AppKeys) -> None:
    """Delete the trigger keys of one app that are not documents: its valid conditions (the
    trigger loop's queue), cron executions (the schedule) and run claims (leases)."""
    unlink(client, [keys.trigger_valid_conditions(), keys.trigger_cron(), keys.trigger_run_claims()])

"""RedisStackTrigger: pynenc 0.4's trigger component on Redis Stack.

Definitions (conditions, triggers, which conditions each task is the source of), valid
conditions waiting for the trigger loop, cron last executions and trigger-run claims are
hashes, sets and a sorted set per app (:mod:`pynenc_redis_stack.keys`); events and trigger
runs are RedisJSON documents queried through RediSearch (:mod:`.records`).

Every runner sharing the server's URL and namespace sees one trigger state, so a trigger
fires once across hosts: ``claim_trigger_run`` is one script (check and claim in one step,
expiry on the server's clock), and a cron condition's last execution moves only by a
compare-and-set script.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

import orjson
import redis
from pynenc.conf.validation_trigger import validate_trigger_config
from pynenc.identifiers.task_id import TaskId
from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
from pynenc.trigger.base_trigger import BaseTrigger
from pynenc.trigger.conditions import CompositeLogic, TriggerCondition, ValidCondition

from pynenc_redis_stack.client import run
from pynenc_redis_stack.conf import ConfigTriggerRedisStack
from pynenc_redis_stack.documents import from_micros, to_micros
from pynenc_redis_stack.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.orchestrator.store import DocumentStore
from pynenc_redis_stack.schema import TriggerSchemas, load_schema_set
from pynenc_redis_stack.trigger.records import EventFilters, TriggerRecords
from pynenc_redis_stack.trigger.scripts import CLAIM_RUN, STORE_CRON_EXECUTION

if TYPE_CHECKING:
    from pynenc.app import Pynenc
    from pynenc.trigger.conditions import ConditionContext
    from pynenc.trigger.monitoring import EventMarkerPage, EventRecord, TriggerRunRecord
    from pynenc.trigger.types import ConditionId

    from pynenc_redis_stack.keys import AppKeys


def _definition_text(trigger: TriggerDefinitionDTO) -> str:
    return orjson.dumps(
        {
            "task_id_key": trigger.task_id.key,
            "condition_ids": list(trigger.condition_ids),
            "logic": trigger.logic.value,
            "argument_provider_json": trigger.argument_provider_json,
        }
    ).decode()


def _definition_of(trigger_id: str, text: str) -> TriggerDefinitionDTO:
    data = orjson.loads(text)
    return TriggerDefinitionDTO(
        trigger_id=trigger_id,
        task_id=TaskId.from_key(data["task_id_key"]),
        condition_ids=list(data["condition_ids"]),
        logic=CompositeLogic(data["logic"]),
        argument_provider_json=data["argument_provider_json"],
    )


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

    def _register_condition(self, condition: TriggerCondition) -> None:
        run(
            self.store.client,
            "HSET",
            self.keys.trigger_conditions(),
            _checked("condition id", condition.condition_id),
            condition.to_json(self.app),
        )

    def get_condition(self, condition_id: str) -> TriggerCondition | None:
        text = run(
            self.store.client, "HGET", self.keys.trigger_conditions(), _checked("condition id", condition_id)
        )
        return None if text is None else TriggerCondition.from_json(text, self.app)

    def get_conditions_batch(self, condition_ids: Sequence[str]) -> dict[str, TriggerCondition | None]:
        """The conditions of ``condition_ids`` in one ``HMGET`` (None where there is none)."""
        return dict(zip(condition_ids, self._conditions(condition_ids), strict=True))

    def _conditions(self, condition_ids: Sequence[str]) -> list[TriggerCondition | None]:
        if not condition_ids:
            return []
        ids = [_checked("condition id", i) for i in condition_ids]
        texts = run(self.store.client, "HMGET", self.keys.trigger_conditions(), *ids)
        return [None if text is None else TriggerCondition.from_json(text, self.app) for text in texts]

    def _get_all_conditions(self) -> list[TriggerCondition]:
        texts = run(self.store.client, "HVALS", self.keys.trigger_conditions())
        return [TriggerCondition.from_json(text, self.app) for text in texts]

    def register_trigger(self, trigger: TriggerDefinitionDTO) -> None:
        """Store the definition and add it to the triggers of each of its conditions (one MULTI/EXEC)."""
        pipe = self.store.client.pipeline(transaction=True)
        run(
            pipe,
            "HSET",
            self.keys.trigger_definitions(),
            _checked("trigger id", trigger.trigger_id),
            _definition_text(trigger),
        )
        sets = [self.keys.trigger_condition_triggers(c) for c in trigger.condition_ids]
        for condition_set in sets:
            run(pipe, "SADD", condition_set, trigger.trigger_id)
        if sets:
            run(pipe, "SADD", self.keys.trigger_sets(), *sets)
        pipe.execute()

    def _get_trigger(self, trigger_id: str) -> TriggerDefinitionDTO | None:
        text = run(
            self.store.client, "HGET", self.keys.trigger_definitions(), _checked("trigger id", trigger_id)
        )
        return None if text is None else _definition_of(trigger_id, text)

    def get_triggers_for_condition(self, condition_id: str) -> list[TriggerDefinitionDTO]:
        trigger_ids = sorted(
            run(self.store.client, "SMEMBERS", self.keys.trigger_condition_triggers(condition_id))
        )
        if not trigger_ids:
            return []
        texts = run(self.store.client, "HMGET", self.keys.trigger_definitions(), *trigger_ids)
        return [
            _definition_of(trigger_id, text)
            for trigger_id, text in zip(trigger_ids, texts, strict=True)
            if text is not None
        ]

    def clean_task_trigger_definitions(self, task_id: TaskId) -> None:
        """Remove the task's trigger definitions and their places in the condition sets.

        ``WATCH`` on the definitions: a definition registered between reading and deleting
        makes the transaction run again (redis-py's ``transaction``).
        """
        definitions_key = self.keys.trigger_definitions()

        def remove_task_definitions(pipe: redis.client.Pipeline) -> None:
            stored: dict[str, str] = run(pipe, "HGETALL", definitions_key)  # immediate: the pipe watches
            definitions = (_definition_of(trigger_id, text) for trigger_id, text in stored.items())
            mine = {d.trigger_id: d for d in definitions if d.task_id.key == task_id.key}
            pipe.multi()
            if not mine:
                return
            run(pipe, "HDEL", definitions_key, *mine)
            for trigger_id, definition in mine.items():
                for condition_id in definition.condition_ids:
                    run(pipe, "SREM", self.keys.trigger_condition_triggers(condition_id), trigger_id)

        self.store.client.transaction(remove_task_definitions, definitions_key)

    def _register_source_task_condition(self, task_id: TaskId, condition_id: ConditionId) -> None:
        source_set = self.keys.trigger_source_task(task_id.key)
        pipe = self.store.client.pipeline(transaction=True)
        run(pipe, "SADD", source_set, _checked("condition id", condition_id))
        run(pipe, "SADD", self.keys.trigger_sets(), source_set)
        pipe.execute()

    def get_conditions_sourced_from_task(
        self, task_id: TaskId, context_type: type[ConditionContext] | None = None
    ) -> list[TriggerCondition]:
        condition_ids = sorted(run(self.store.client, "SMEMBERS", self.keys.trigger_source_task(task_id.key)))
        conditions = [c for c in self._conditions(condition_ids) if c is not None]
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

    def clear_valid_conditions(self, conditions: Iterable[ValidCondition]) -> None:
        ids = list(dict.fromkeys(c.valid_condition_id for c in conditions))
        if ids:
            run(self.store.client, "HDEL", self.keys.trigger_valid_conditions(), *ids)

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
        expected = "" if expected_last_execution is None else str(to_micros(expected_last_execution))
        stored = STORE_CRON_EXECUTION.run_in(
            self.store.client.pipeline(transaction=False),
            [self.keys.trigger_cron()],
            [_checked("condition id", condition_id), str(to_micros(execution_time)), expected],
        )[-1]
        return bool(stored)

    def claim_trigger_run(self, trigger_run_id: str, expiration_seconds: int = 60) -> bool:
        """Claim ``trigger_run_id`` for ``expiration_seconds`` (server clock); exactly one
        caller wins, across processes and hosts."""
        won = CLAIM_RUN.run_in(
            self.store.client.pipeline(transaction=False),
            [self.keys.trigger_run_claims()],
            [_checked("trigger run id", trigger_run_id), str(max(0, expiration_seconds))],
        )[-1]
        return bool(won)

    # -- purge -------------------------------------------------------------------------------

    def _purge(self) -> None:
        """Delete every trigger key and document of the app."""
        self.records.purge()
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
    """Delete every trigger key of one app but its event and run documents: conditions,
    definitions, valid conditions, cron executions, run claims and the per-condition sets.

    ``WATCH`` on the set of set names: a condition or trigger registered between reading it
    and deleting makes the transaction run again (redis-py's ``transaction``).
    """
    sets_key = keys.trigger_sets()
    fixed = [
        sets_key,
        keys.trigger_conditions(),
        keys.trigger_definitions(),
        keys.trigger_valid_conditions(),
        keys.trigger_cron(),
        keys.trigger_run_claims(),
    ]

    def delete_everything(pipe: redis.client.Pipeline) -> None:
        set_names: set[str] = run(pipe, "SMEMBERS", sets_key)  # immediate: the pipe watches
        pipe.multi()
        run(pipe, "UNLINK", *fixed, *sorted(set_names))

    client.transaction(delete_everything, sets_key)

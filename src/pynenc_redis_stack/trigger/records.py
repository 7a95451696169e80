"""Trigger events and trigger runs: one RedisJSON document each, found through RediSearch.

Events (``schemas/trigger_events.yaml``) are indexed by code, time, emitter and the counts of
matched conditions and triggered invocations; runs (``schemas/trigger_runs.yaml``) by trigger,
task, triggered invocation, time, and every event, source invocation and valid condition
they involve. Each document also holds pynenc's own JSON of the record, read back as is.

Answers are complete past the server's 10 000-row caps: counts are the server's exact totals,
unordered answers stream through a cursor and ordered pages beyond the cap are sorted here
(:class:`~pynenc_redis_stack.core.store.DocumentStore`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from pynenc.trigger.monitoring import EventMarker, EventMarkerPage, EventRecord, TriggerRunRecord

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import Document, dumps, from_micros, loads, to_micros, validated
from pynenc_redis_stack.core.errors import InvalidDocumentError
from pynenc_redis_stack.core.schema import IndexSpec, TriggerSchemas
from pynenc_redis_stack.core.scripts import SlotCalls
from pynenc_redis_stack.core.store import json_mget
from pynenc_redis_stack.trigger.scripts import link_events_script, store_event_script

if TYPE_CHECKING:
    from pynenc.app import Pynenc

    from pynenc_redis_stack.core.store import DocumentStore

CASCADE_BATCH = 200
"""Event ids per query when deleting the runs that reference purged events."""

MARKER_STATES = {
    "all": (None, None),
    "matched": ("matched", True),
    "unmatched": ("matched", False),
    "triggered": ("triggered", True),
    "untriggered": ("triggered", False),
}
"""``get_event_markers_in_timerange`` states: the count field they test and its sign."""


@dataclass(frozen=True)
class EventFilters:
    """The filters of ``get_events`` / ``count_events`` (None: not filtered)."""

    event_code: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    matched: bool | None = None
    triggered: bool | None = None
    emitted_by_invocation_id: str | None = None
    emitted_by_task_id: str | None = None


def _ids(what: str, values: Iterable[str | None]) -> list[str]:
    """Return ``values`` without repeats, None and empty strings (which no lookup can ask for).

    :raises InvalidDocumentError: If a value holds NUL (RediSearch would cut the tag there, so
        a lookup of the whole id would find another's).
    """
    kept: list[str] = []
    for value in dict.fromkeys(values):
        if not value:
            continue
        if "\x00" in value:
            raise InvalidDocumentError(f"{what} {value!r} holds NUL, which RediSearch cannot index")
        kept.append(value)
    return kept


def _count_clause(request_filter: query.Filter, field: str, positive: bool) -> None:
    if positive:
        request_filter.at_least(field, 1)
    else:
        request_filter.between(field, 0, 0)


class TriggerRecords:
    """One app's trigger events and trigger runs.

    :param store: The documents' store (connection, indexes, complete reads).
    :param app: The app, whose client data store (de)serializes event payloads.
    :param schemas: The events and runs indexes.
    """

    def __init__(self, store: DocumentStore[TriggerSchemas], app: Pynenc, schemas: TriggerSchemas) -> None:
        self.store = store
        self.app = app
        self.events = schemas.events
        self.runs = schemas.runs

    # -- events ----------------------------------------------------------------------------

    def event_document(self, event: EventRecord) -> Document:
        """Return the document of ``event`` (its triggered invocations are the record's)."""
        triggered = _ids("triggered invocation id", event.triggered_invocation_ids)
        document: Document = {
            "app_id": self.app.app_id,
            "event_id": event.event_id,
            "event_code": event.event_code,
            "ts": to_micros(event.timestamp),
            "matched": len(event.matched_condition_ids),
            "triggered": len(triggered),
            "triggered_invocation_ids": triggered,
            "emitted_by_runner_context_id": event.emitted_by_runner_context_id,
            "record": event.to_json(self.app),
        }
        # absent, not "": the empty string cannot be indexed as a lookup value
        if event.emitted_by_invocation_id:
            document["emitted_by_invocation_id"] = event.emitted_by_invocation_id
        if event.emitted_by_task_id:
            document["emitted_by_task_id"] = event.emitted_by_task_id
        return validated(self.events, document)

    def store_event(self, event: EventRecord) -> None:
        """Store or replace ``event``, keeping the invocations already linked to it."""
        key = self.store.keys.trigger_event(event.event_id)
        document = dumps(self.event_document(event))
        store_event_script.run_in(self.store.client.pipeline(transaction=False), [key], [document])

    def _event_of(self, document: Document) -> EventRecord:
        record = EventRecord.from_json(document["record"], self.app)
        record.triggered_invocation_ids = list(document.get("triggered_invocation_ids") or [])
        return record

    def get_events_batch(self, event_ids: Sequence[str]) -> dict[str, EventRecord | None]:
        """The events of ``event_ids`` (None where there is none), read in one ``JSON.MGET`` per batch."""
        documents = self.store.read_many([self.store.keys.trigger_event(i) for i in event_ids])
        return {
            event_id: None if document is None else self._event_of(document)
            for event_id, document in zip(event_ids, documents, strict=True)
        }

    def _event_filter(self, filters: EventFilters) -> query.Filter:
        request_filter = self.store.where(self.events)
        if filters.event_code is not None:
            request_filter.tag("event_code", filters.event_code)
        if filters.start_time is not None:
            request_filter.at_least("ts", to_micros(filters.start_time))
        if filters.end_time is not None:
            request_filter.at_most("ts", to_micros(filters.end_time))
        if filters.matched is not None:
            _count_clause(request_filter, "matched", filters.matched)
        if filters.triggered is not None:
            _count_clause(request_filter, "triggered", filters.triggered)
        if filters.emitted_by_invocation_id is not None:
            request_filter.tag("emitted_by_invocation_id", filters.emitted_by_invocation_id)
        if filters.emitted_by_task_id is not None:
            request_filter.tag("emitted_by_task_id", filters.emitted_by_task_id)
        return request_filter

    def get_events(self, filters: EventFilters, limit: int, offset: int) -> list[EventRecord]:
        """Events matching ``filters``, newest first, ``limit`` after ``offset``."""
        keys = self.store.sorted_keys(
            self.events,
            self._event_filter(filters),
            "ts",
            descending=True,
            offset=max(offset, 0),
            limit=limit,
        )
        return [self._event_of(d) for d in self.store.read_many(keys) if d is not None]

    def count_events(self, filters: EventFilters) -> int:
        """The number of events matching ``filters`` (the server's exact total)."""
        return self.store.count(self.events, self._event_filter(filters))

    def event_markers(
        self,
        start_time: datetime,
        end_time: datetime,
        event_code: str | None,
        state: str,
        limit: int,
        offset: int,
    ) -> EventMarkerPage:
        """Markers of the events in ``[start_time, end_time]``, oldest first, with the total.

        :raises ValueError: If ``state`` is not one of :data:`MARKER_STATES`.
        """
        if state not in MARKER_STATES:
            raise ValueError(f"event marker state {state!r}: use one of {', '.join(MARKER_STATES)}")
        field, positive = MARKER_STATES[state]
        filters = EventFilters(
            event_code=event_code,
            start_time=start_time,
            end_time=end_time,
            matched=positive if field == "matched" else None,
            triggered=positive if field == "triggered" else None,
        )
        request_filter = self._event_filter(filters)
        total = self.store.count(self.events, request_filter)
        keys = self.store.sorted_keys(
            self.events, request_filter, "ts", descending=False, offset=max(offset, 0), limit=limit
        )
        markers = [
            EventMarker(
                event_id=document["event_id"],
                event_code=document["event_code"],
                timestamp=from_micros(int(document["ts"])),
                matched=int(document["matched"]) > 0,
                triggered=int(document["triggered"]) > 0,
                emitted_by_invocation_id=document.get("emitted_by_invocation_id"),
                emitted_by_runner_context_id=document.get("emitted_by_runner_context_id"),
            )
            for document in self.store.read_many(keys)
            if document is not None
        ]
        return EventMarkerPage(markers=markers, total=total, truncated=max(offset, 0) + len(markers) < total)

    def link(self, event_ids: list[str], invocation_id: str) -> None:
        """Record that ``invocation_id`` was triggered by each of ``event_ids`` (one script call
        per hash slot, in one pipeline: each event's link is atomic)."""
        if not event_ids:
            return
        calls = SlotCalls(link_events_script, [orjson.dumps(invocation_id).decode()])
        for event_id in dict.fromkeys(event_ids):
            calls.add([self.store.keys.trigger_event(event_id)], [])
        calls.run_in(self.store.client.pipeline(transaction=False))

    def invocations_triggered_by(self, event_id: str) -> list[str]:
        """The invocations ``event_id`` triggered, in the order they were linked."""
        raw = run(
            self.store.client,
            "JSON.GET",
            self.store.keys.trigger_event(event_id),
            "$.triggered_invocation_ids",
        )
        if raw is None:
            return []
        found = loads(raw)
        return list(found[0]) if found else []

    def event_codes(self) -> list[str]:
        """The distinct event codes of the app's events, sorted."""
        rows = self.store.rows(self.events, self.store.where(self.events), *query.group_by("event_code"))
        return sorted({row["event_code"] for row in rows})

    # -- trigger runs ----------------------------------------------------------------------

    def run_document(self, trigger_run: TriggerRunRecord) -> Document:
        """Return the document of ``trigger_run``."""
        moment = trigger_run.executed_at or trigger_run.claimed_at
        participants = trigger_run.participants or []
        document: Document = {
            "app_id": self.app.app_id,
            "trigger_run_id": trigger_run.trigger_run_id,
            "trigger_id": trigger_run.trigger_id,
            "task_id_key": trigger_run.task_id_key,
            "event_ids": _ids("event id", trigger_run.event_ids),
            "source_invocation_ids": _ids("source invocation id", trigger_run.source_invocation_ids),
            "valid_condition_ids": _ids(
                "valid condition id",
                [*trigger_run.valid_condition_ids, *(p.valid_condition_id for p in participants)],
            ),
            "order_ts": 0 if moment is None else to_micros(moment),
            "record": trigger_run.to_json(),
        }
        if moment is not None:
            document["ts"] = to_micros(moment)
        if trigger_run.triggered_invocation_id:
            document["triggered_invocation_id"] = trigger_run.triggered_invocation_id
        if trigger_run.atomic_service_run_id:
            document["atomic_service_run_id"] = trigger_run.atomic_service_run_id
        return validated(self.runs, document)

    def store_run(self, trigger_run: TriggerRunRecord) -> None:
        """Store or replace ``trigger_run``."""
        key = self.store.keys.trigger_run(trigger_run.trigger_run_id)
        run(self.store.client, "JSON.SET", key, "$", dumps(self.run_document(trigger_run)))

    def get_runs_batch(self, run_ids: Sequence[str]) -> dict[str, TriggerRunRecord | None]:
        """The runs of ``run_ids`` (None where there is none)."""
        documents = self.store.read_many([self.store.keys.trigger_run(i) for i in run_ids])
        return {
            run_id: None if document is None else TriggerRunRecord.from_json(document["record"])
            for run_id, document in zip(run_ids, documents, strict=True)
        }

    def runs_where(self, **tags: str) -> list[TriggerRunRecord]:
        """Every run whose ``tags`` match, in execution order (runs without a time first)."""
        documents = self.store.documents(self.runs, self.store.where(self.runs, **tags))
        ordered = sorted(documents, key=lambda d: (int(d["order_ts"]), d["trigger_run_id"]))
        return [TriggerRunRecord.from_json(d["record"]) for d in ordered]

    def runs_in_timerange(
        self,
        start_time: datetime,
        end_time: datetime,
        *,
        event_code: str | None,
        task_id_key: str | None,
        limit: int | None,
    ) -> list[TriggerRunRecord]:
        """Runs executed (else claimed) in ``[start_time, end_time]``, in that order, at most ``limit``.

        With ``event_code``: only runs one of whose events has that code (read from the
        events, so a run stored before its events is still found by their code).
        """
        request_filter = self.store.where(self.runs).between("ts", to_micros(start_time), to_micros(end_time))
        if task_id_key is not None:
            request_filter.tag("task_id_key", task_id_key)
        if limit is not None and limit <= 0:
            return []
        if event_code is None and limit is not None:
            keys = self.store.sorted_keys(
                self.runs, request_filter, "ts", descending=False, offset=0, limit=limit
            )
            documents = [d for d in self.store.read_many(keys) if d is not None]
        else:
            documents = sorted(
                self.store.documents(self.runs, request_filter),
                key=lambda d: (int(d["ts"]), d["trigger_run_id"]),
            )
            if event_code is not None:
                codes = self._event_codes_of({i for d in documents for i in d.get("event_ids", ())})
                documents = [
                    d for d in documents if any(codes.get(i) == event_code for i in d.get("event_ids", ()))
                ]
            if limit is not None:
                documents = documents[:limit]
        return [TriggerRunRecord.from_json(d["record"]) for d in documents]

    def _event_codes_of(self, event_ids: set[str]) -> dict[str, str]:
        """The code of each stored event of ``event_ids``."""
        codes: dict[str, str] = {}
        for batch in itertools.batched(sorted(event_ids), self.store.batch_size):
            keys = [self.store.keys.trigger_event(event_id) for event_id in batch]
            for event_id, raw in zip(batch, json_mget(self.store.client, keys, "$.event_code"), strict=True):
                if raw is not None:
                    found = loads(raw)
                    if found:
                        codes[event_id] = found[0]
        return codes

    def referenced_atomic_service_run_ids(self) -> set[str]:
        """The atomic-service runs some trigger run of the app names (one aggregation)."""
        rows = self.store.rows(
            self.runs,
            self.store.where(self.runs),
            *query.has_value(self.runs, "atomic_service_run_id"),
            *query.group_by("atomic_service_run_id"),
        )
        return {row["atomic_service_run_id"] for row in rows if row.get("atomic_service_run_id")}

    # -- retention ------------------------------------------------------------------------

    def age_purge_events(self, threshold: datetime) -> list[str]:
        """Delete the events older than ``threshold``; return their ids."""
        keys = self.store.matching_keys(
            self.events, self.store.where(self.events).before("ts", to_micros(threshold))
        )
        self.store.unlink(keys)
        return self.store.keys.trigger_event_ids_of(keys)

    def age_purge_runs(self, threshold: datetime) -> int:
        """Delete the runs executed (else claimed) before ``threshold``; runs without a time stay."""
        keys = self.store.matching_keys(
            self.runs, self.store.where(self.runs).before("ts", to_micros(threshold))
        )
        self.store.unlink(keys)
        return len(keys)

    def cap_purge_events(self, max_records: int) -> list[str]:
        """Delete the oldest events beyond the newest ``max_records`` (0: no cap); return their ids."""
        keys = self._oldest_beyond(self.events, "ts", max_records)
        self.store.unlink(keys)
        return self.store.keys.trigger_event_ids_of(keys)

    def cap_purge_runs(self, max_records: int) -> int:
        """Delete the oldest runs beyond the newest ``max_records`` (0: no cap); return how many."""
        keys = self._oldest_beyond(self.runs, "order_ts", max_records)
        self.store.unlink(keys)
        return len(keys)

    def _oldest_beyond(self, spec: IndexSpec, order: str, max_records: int) -> list[str]:
        if max_records <= 0:
            return []
        everything = self.store.where(spec)
        excess = self.store.count(spec, everything) - max_records
        if excess <= 0:
            return []
        return self.store.sorted_keys(spec, everything, order, descending=False, offset=0, limit=excess)

    def delete_runs_of_events(self, event_ids: list[str]) -> int:
        """Delete every run that references one of ``event_ids``; return how many."""
        keys: set[str] = set()
        for batch in itertools.batched(_ids("event id", event_ids), CASCADE_BATCH):
            keys.update(
                self.store.matching_keys(self.runs, self.store.where(self.runs).tag_in("event_id", batch))
            )
        self.store.unlink(sorted(keys))
        return len(keys)

"""Atomic-service executions: one document per attempt; at most one RUNNING per app, enforced
by the script that admits it under the app's lease (the check and the write run as one)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from pynenc.orchestrator.atomic_service import (
    AtomicServiceExecution,
    AtomicServiceExecutionStatus,
    AtomicServiceRun,
)

from pynenc_redis_stack.core.codec import dumps, from_micros, to_micros, validated
from pynenc_redis_stack.core.scripts import json_text
from pynenc_redis_stack.orchestrator import scripts

if TYPE_CHECKING:
    from pynenc.app import Pynenc

    from pynenc_redis_stack.core.codec import Document
    from pynenc_redis_stack.orchestrator.store import OrchestratorStore

RUNNING = str(AtomicServiceExecutionStatus.RUNNING)


def execution_of(document: Document) -> AtomicServiceExecution:
    """Return the execution stored in an ``atomic-service-execution`` document."""
    end = document.get("end_ts")
    return AtomicServiceExecution.from_raw(
        runner_id=document["runner_id"],
        atomic_service_run_id=document["run_id"],
        start_time=from_micros(int(document["start_ts"])),
        end_time=None if end is None else from_micros(int(end)),
        status=AtomicServiceExecutionStatus(document["status"]),
        reason=document.get("reason", ""),
    )


class AtomicServiceExecutions:
    """One app's atomic-service execution records."""

    def __init__(self, store: OrchestratorStore, app: Pynenc) -> None:
        self.store = store
        self.app = app
        self.spec = store.schemas.executions

    def _identity(self, run: AtomicServiceRun) -> tuple[str, str]:
        identity = {
            "app_id": self.app.app_id,
            "run_id": run.atomic_service_id.atomic_service_run_id,
            "runner_id": run.atomic_service_id.runner_id,
        }
        return (
            self.store.keys.atomic_service_execution(identity["run_id"]),
            dumps(validated(self.spec, identity)),
        )

    def record_start(
        self,
        run: AtomicServiceRun,
        started_at: datetime | None,
        status: AtomicServiceExecutionStatus,
        reason: str,
    ) -> bool:
        """Store the attempt; RUNNING only if no other execution of the app is RUNNING (one
        whose runner's heartbeat is older than ``runner_considered_dead_after_minutes`` is
        ABANDONED first: its runner died mid-run and will never finalize it).

        :return: Whether the run may do its work (RUNNING admitted, or a non-blocked status).
        """
        key, identity = self._identity(run)
        args = [
            identity,
            str(status),
            "" if started_at is None else str(to_micros(started_at)),
            json_text(reason),
            self.store.keys.runner_heartbeat_prefix(),
            str(int(float(self.app.conf.runner_considered_dead_after_minutes) * 60 * 1_000_000)),
        ]
        declared = [key, self.store.keys.atomic_service_lease()]
        while True:
            # the script reads the running execution and its runner's heartbeat only once they
            # are declared: a first call names them (another run may take the lease meanwhile)
            admitted, *reply = scripts.start_atomic_service_script.run(self.store.client, declared, args)
            if admitted != -1:
                break
            declared = [key, self.store.keys.atomic_service_lease(), *reply]
        (start,) = reply
        run.started_at = from_micros(int(start))
        if status != AtomicServiceExecutionStatus.RUNNING or not admitted:
            self.purge()
        return bool(admitted)

    def finalize(
        self, run: AtomicServiceRun, end_time: datetime, status: AtomicServiceExecutionStatus, reason: str
    ) -> None:
        """Move a RUNNING execution to ``status`` (the first terminal status wins); store a
        zero-width one if its start was never stored."""
        key, identity = self._identity(run)
        scripts.finalize_atomic_service_script.run(
            self.store.client,
            [key, self.store.keys.atomic_service_lease()],
            [identity, str(status), str(to_micros(end_time)), json_text(reason)],
        )
        self.purge()

    def active(self) -> list[AtomicServiceExecution]:
        """RUNNING executions, most recently started first."""
        documents = self.store.documents(self.spec, self.store.where(self.spec, status=RUNNING))
        return sorted((execution_of(d) for d in documents), key=lambda e: e.start_time, reverse=True)

    def in_timerange(
        self,
        start_time: datetime,
        end_time: datetime,
        limit: int,
        *,
        runner_id: str | None,
        min_duration_seconds: float,
    ) -> list[AtomicServiceExecution]:
        """Executions overlapping ``[start_time, end_time]`` (a RUNNING one if it started in
        the window), most recently started first, at most ``limit``."""
        start, end = to_micros(start_time), to_micros(end_time)
        request_filter = (
            self.store.where(self.spec)
            .at_most("start_ts", end)
            .either(
                lambda ended: ended.at_least("end_ts", start),
                lambda running: running.tag("status", RUNNING).at_least("start_ts", start),
            )
        )
        if runner_id is not None:
            request_filter.tag("runner_id", runner_id)
        if min_duration_seconds > 0.0:
            request_filter.at_least("duration_us", math.ceil(min_duration_seconds * 1_000_000))
        keys = self.store.sorted_keys(
            self.spec, request_filter, "start_ts", descending=True, offset=0, limit=max(limit, 0)
        )
        return [execution_of(d) for d in self.store.read_many(keys) if d is not None]

    def purge(self) -> int:
        """Delete finished executions older than the retention, then the oldest beyond the
        maximum count; RUNNING ones and those a trigger run references are kept.

        :return: The number of records deleted.
        """
        retention_minutes = float(self.app.conf.atomic_service_execution_retention_minutes)
        max_records = int(self.app.conf.atomic_service_execution_max_records)
        protected = list(self.app.trigger.get_referenced_atomic_service_run_ids())
        removed = 0
        if retention_minutes > 0:
            cutoff = self.store.server_micros() - int(retention_minutes * 60 * 1_000_000)
            expired = self.store.where(self.spec).before("end_ts", cutoff)
            if protected:
                expired.excluding(lambda kept: kept.tag_in("run_id", protected))
            keys = self.store.matching_keys(self.spec, expired)
            self.store.unlink(keys)
            removed += len(keys)
        if max_records > 0:
            finished = self.store.where(self.spec).excluding(lambda kept: kept.tag("status", RUNNING))
            excess = self.store.count(self.spec, finished) - max_records
            if excess > 0:
                if protected:
                    finished.excluding(lambda kept: kept.tag_in("run_id", protected))
                keys = self.store.sorted_keys(
                    self.spec, finished, "start_ts", descending=False, offset=0, limit=excess
                )
                self.store.unlink(keys)
                removed += len(keys)
        return removed

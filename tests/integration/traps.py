"""Shared by the RediSearch trap tests (``test_traps_*.py``): apps on the session's server,
pynenc records with chosen timestamps, and the backend's own writes called directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.client import run

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

CALL_ID = CallId(TaskId("tests.tasks", "work"), "args")
T0 = datetime(2024, 7, 1, 8, 0, 0, 1, tzinfo=UTC)


def make_app(app_id: str, redis_url: str, **config: object) -> Pynenc:
    builder = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url)
    builder._config.update(config)
    return builder.build()


def backend_of(app: Pynenc) -> RedisStackStateBackend:
    return cast("RedisStackStateBackend", app.state_backend)


def runner_context(runner_id: str, runner_cls: Any = "TestRunner", hostname: Any = "host") -> RunnerContext:
    return RunnerContext(
        runner_cls=runner_cls,
        runner_id=runner_id,
        pid=1,
        hostname=hostname,
        thread_id=1,
    )


def history_entry(
    invocation_id: str,
    moment: datetime,
    status: InvocationStatus = InvocationStatus.RUNNING,
    runner_context_id: Any = "rc",
) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=InvocationId(invocation_id),
        status_record=InvocationStatusRecord(status, runner_id="runner", timestamp=moment),
        runner_context_id=runner_context_id,
    )
    history._timestamp = moment
    return history


def upsert(
    backend: RedisStackStateBackend,
    invocation_id: str,
    parent: str | None = None,
    event: str | None = None,
    workflow: WorkflowIdentity | None = None,
) -> None:
    backend._upsert_invocations(
        [
            (
                InvocationDTO(
                    InvocationId(invocation_id),
                    CALL_ID,
                    workflow,
                    InvocationId(parent) if parent else None,
                    event,
                ),
                CallDTO(CALL_ID, {}),
            ),
        ]
    )


def runner_ids(backend: RedisStackStateBackend, partial: str) -> list[str]:
    return [c.runner_id for c in backend.get_matching_runner_contexts(partial)]


def ft_info(client: redis.Redis, index: str) -> dict[str, Any]:
    raw = run(client, "FT.INFO", index)
    return dict(zip(raw[::2], raw[1::2], strict=False))

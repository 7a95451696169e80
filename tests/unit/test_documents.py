"""History entry documents: the flat layout round-trips exactly; the nested layout of
earlier versions is still read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack.core import codec
from pynenc_redis_stack.state_backend import documents as docs

MOMENT = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)


def _history(record_time: datetime, runner_id: str | None, registered_by: str | None) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=InvocationId("inv"),
        status_record=InvocationStatusRecord(
            InvocationStatus.RUNNING, runner_id=runner_id, timestamp=record_time
        ),
        runner_context_id="ctx",
        registered_by_inv_id=registered_by,
    )
    history._timestamp = MOMENT
    return history


@pytest.mark.parametrize(
    ("record_time", "runner_id", "registered_by"),
    [
        (MOMENT, None, None),
        (MOMENT, "ctx", None),
        (MOMENT - timedelta(seconds=3), "runner", "parent"),
        (MOMENT.astimezone(timezone(timedelta(hours=5, minutes=30))), "r", None),
        (MOMENT.astimezone(timezone(timedelta(hours=-3, microseconds=7))), None, "p"),
    ],
)
def test_flat_layout_round_trips_exactly(
    record_time: datetime, runner_id: str | None, registered_by: str | None
) -> None:
    history = _history(record_time, runner_id, registered_by)
    document = docs.history_document("app", history)

    assert "status_record" not in document
    assert ("runner_id" in document) is (runner_id != "ctx") and ("record_ts" in document) is (
        record_time != MOMENT
    )
    back = docs.history_from_document(codec.loads(codec.dumps(document)))
    assert back.status_record.to_json() == history.status_record.to_json()
    assert (back.timestamp, back.runner_context_id, back.registered_by_inv_id) == (
        MOMENT,
        "ctx",
        registered_by,
    )
    # rebuilt without pynenc's constructor (docs._history): equal to the constructed entry in
    # every field, and as usable (to_json, comparisons)
    assert back == history and type(back) is InvocationHistory
    assert back.to_json() == history.to_json()


def test_nested_layout_of_earlier_versions_is_read() -> None:
    document = {
        "app_id": "app",
        "invocation_id": "inv",
        "ts": codec.to_micros(MOMENT),
        "status": "running",
        "runner_context_id": "ctx",
        "registered_by_inv_id": None,
        "status_record": {
            "status": "running",
            "runner_id": "r",
            "timestamp": "2024-03-01T05:29:59.999999+05:30",
        },
        "seq": 7,
    }

    history = docs.history_from_document(document)

    assert history.status_record.to_json() == document["status_record"]
    assert history.timestamp == MOMENT and history.registered_by_inv_id is None

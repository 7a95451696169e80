"""What an orchestrator invocation document holds besides pynenc's own values: the tags that
stand for argument pairs and concurrency slots (digests: fixed width, no escaping anywhere),
and the status record read back from a document."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord

from pynenc_redis_stack.core.codec import from_micros

if TYPE_CHECKING:
    from pynenc.invocation.dist_invocation import DistributedInvocation

    from pynenc_redis_stack.core.codec import Document


def argument_pair_tag(name: str, serialized_value: str) -> str:
    """Return the tag that stands for one (argument name, serialized value) pair.

    A digest, not the value: serialized arguments may be megabytes long, and a fixed-width
    hexadecimal tag needs no escaping anywhere.
    """
    return hashlib.sha256(orjson.dumps([name, serialized_value])).hexdigest()


def concurrency_digest(key_arguments: dict[str, str] | None) -> str:
    """The digest naming one concurrency slot of a task: its key arguments (none: the task)."""
    return hashlib.sha256(orjson.dumps(sorted((key_arguments or {}).items()))).hexdigest()


def running_slot_of(invocation: DistributedInvocation[Any, Any]) -> dict[str, str]:
    """``{"running_slot": digest}`` for a task with running concurrency, else nothing."""
    concurrency = invocation.task.conf.running_concurrency
    if concurrency == ConcurrencyControlType.DISABLED:
        return {}
    return {
        "running_slot": concurrency_digest(
            invocation.call.serialized_args_for_concurrency_control(concurrency)
        )
    }


def status_record_of(document: Document) -> InvocationStatusRecord:
    """Return the status record stored in an orchestrator invocation document."""
    return InvocationStatusRecord(
        status=InvocationStatus(document["status"]),
        runner_id=document.get("runner_id"),
        timestamp=from_micros(int(document["status_ts"])),
    )

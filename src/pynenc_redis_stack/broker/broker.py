"""RedisStackBroker: pynenc 0.4's broker on Redis sorted sets, with taken entries leased.

One sorted set per queue (negated priority, then arrival), taken by one script into the app's
*taken* set scored by a lease deadline; an expired take goes back to its queue unless the
orchestrator shows it was recorded. Keys in :mod:`pynenc_redis_stack.core.keys`; the order,
the lease and recovery rule, and why sorted sets: docs/distributed.md, "Broker".
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import redis
from pynenc.broker.base_broker import BaseBroker
from pynenc.identifiers.invocation_id import InvocationId

from pynenc_redis_stack.core.client import Client, command_retry, no_cleanup, run
from pynenc_redis_stack.core.conf import ConfigBrokerRedisStack
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.contracts import StrandedSweeper
from pynenc_redis_stack.core.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.core.keys import AppKeys, Namespace
from pynenc_redis_stack.core.scripts import Script

if TYPE_CHECKING:
    from pynenc.app import Pynenc

logger = logging.getLogger(__name__)

ROUTE_BATCH = 1000
"""Invocation ids per route script call (each call numbers its ids in one step)."""

RECOVERY_BATCH = 500
"""Expired taken entries read per recovery step."""

ROUTE = """
-- KEYS[1]: the queue, KEYS[2]: the app's entry counter, KEYS[3]: the app's set of queue names.
-- ARGV[1]: score (the negated priority), ARGV[2]: queue name, ARGV[3..]: invocation ids.
-- Members are '<19-digit seq>:<id>': equal scores sort by member, so first routed, first out.
local count = #ARGV - 2
local last = redis.call('INCRBY', KEYS[2], count)
redis.call('SADD', KEYS[3], ARGV[2])
for i = 1, count do
  redis.call('ZADD', KEYS[1], ARGV[1], string.format('%019d', last - count + i) .. ':' .. ARGV[2 + i])
end
return count
"""

TAKE = """
-- KEYS[1]: the queue, KEYS[2]: the app's taken set, KEYS[3]: the app's take replies (hash).
-- ARGV[1]: this consumer's previous taken entry, acknowledged here ('' for none);
-- ARGV[2]: '<consumer>:<queue>:' (prefix of the taken entry); ARGV[3]: lease in ms;
-- ARGV[4]: this attempt's token; ARGV[5]: the consumer. The popped entry is in the taken set,
-- scored by its lease deadline, before the reply leaves. The reply is kept in the consumer's
-- field as '<deadline>|<token>|<reply>' so that the same attempt sent again after a lost
-- reply gets the same answer and pops nothing more; the consumer's next take replaces it, and
-- the sweep drops fields whose deadline passed (consumers that stopped).
local prior = redis.call('HGET', KEYS[3], ARGV[5])
if prior then
  local token, reply = string.match(prior, '^%d+|([^|]*)|(.*)$')
  if token == ARGV[4] then
    if reply == '' then return false end
    return reply
  end
end
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
local popped = redis.call('ZPOPMIN', KEYS[1])
local taken = ''
if popped[1] ~= nil then
  taken = ARGV[2] .. popped[2] .. ':' .. popped[1]
  redis.call('ZADD', KEYS[2], deadline, taken)
end
redis.call('HSET', KEYS[3], ARGV[5], string.format('%d', deadline) .. '|' .. ARGV[4] .. '|' .. taken)
if taken == '' then return false end
return taken
"""

FORGET_REPLIES = """
-- KEYS[1]: the app's take replies. Drop the fields whose deadline (ms) has passed: their
-- consumer took nothing again within a lease (it stopped). Returns how many went.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local gone = 0
for i = 1, #fields, 2 do
  if tonumber(string.match(fields[i + 1], '^(%d+)|')) < now then
    redis.call('HDEL', KEYS[1], fields[i])
    gone = gone + 1
  end
end
return gone
"""

EXPIRED = """#!lua flags=no-writes
-- KEYS[1]: the app's taken set; ARGV[1]: most entries to return.
-- Taken entries whose lease deadline (server time, ms) has passed, oldest deadline first.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGE', KEYS[1], '-inf', now_ms, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
"""

REQUEUE = """
-- KEYS[1]: the app's taken set, KEYS[2]: the entry's queue, KEYS[3]: the app's set of queue names.
-- ARGV[1]: the taken entry, ARGV[2]: its score, ARGV[3]: its queue member, ARGV[4]: queue name.
-- Only the one who removes the taken entry puts it back: concurrent recoveries requeue it once.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


def queue_member_invocation_id(member: str) -> InvocationId:
    """Return the invocation id of a queue member (``<seq>:<invocation id>``)."""
    return InvocationId(member.split(":", 1)[1])


@dataclass(frozen=True)
class TakenEntry:
    """One entry of the taken set: ``<consumer>:<queue>:<score>:<seq>:<invocation id>``."""

    raw: str
    consumer: str
    queue_name: str
    score: str
    queue_member: str

    @property
    def invocation_id(self) -> InvocationId:
        return queue_member_invocation_id(self.queue_member)

    @classmethod
    def parse(cls, raw: str) -> TakenEntry:
        # consumer (hex), queue ([A-Za-z0-9_.-]) and score (a number) hold no ':'; the
        # invocation id, last, may hold anything.
        consumer, queue_name, score, queue_member = raw.split(":", 3)
        return cls(raw, consumer, queue_name, score, queue_member)


@dataclass(frozen=True)
class RecoveryReport:
    """What one :meth:`RedisStackBroker.recover_expired_takes` call did."""

    requeued: tuple[InvocationId, ...]
    """Taken but never recorded (the taker died): back in their queues."""
    acknowledged: tuple[InvocationId, ...]
    """Recorded by their taker (their status moved on): removed from the taken set."""


class RedisStackBroker(BaseBroker):
    """pynenc broker on Redis Stack: per-queue priority order, FIFO within a priority, and no
    invocation lost when a taker dies before recording what it took (see the module docstring).

    Select it with ``broker_cls = "RedisStackBroker"`` or
    ``PynencBuilder().redis_stack(url=..., components="all")``.
    """

    # Sent again after a lost reply: a second run only adds a duplicate queue entry, which the
    # runner skips (the first taker records PENDING; the other's compare-and-set then fails).
    route_script = Script(ROUTE, repeatable=True)
    # Sent again after a lost reply: the attempt token returns the first run's answer.
    take_script = Script(TAKE, repeatable=True)
    forget_replies_script = Script(FORGET_REPLIES, repeatable=True)
    expired_script = Script(EXPIRED, repeatable=True)
    requeue_script = Script(REQUEUE, repeatable=True)

    def __init__(self, app: Pynenc) -> None:
        super().__init__(app)
        self._client: Client | None = None
        # One consumer per process and thread: each takes one invocation at a time, and a
        # forked child (new pid) never acknowledges its parent's takes.
        self._consumers: dict[tuple[int, int], str] = {}
        self._last_taken: dict[tuple[int, int], str] = {}
        self._next_recovery = 0.0

    @cached_property
    def conf(self) -> ConfigBrokerRedisStack:
        return ConfigBrokerRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )

    @cached_property
    def keys(self) -> AppKeys:
        return Namespace(self.conf.redis_stack_namespace).for_app(self.app.app_id)

    @property
    def client(self) -> Client:
        """The Redis client; the first access checks the server."""
        if self._client is None:
            self._client = get_client(self.conf)
        return self._client

    @property
    def lease_ms(self) -> int:
        return max(1, round(float(self.conf.redis_stack_broker_lease_sec) * 1000))

    # -- routing -------------------------------------------------------------------------

    def _route_invocation(self, invocation_id: InvocationId, queue_name: str, priority: float) -> None:
        self._route_invocations([invocation_id], queue_name, priority)

    def _route_invocations(
        self, invocation_ids: Sequence[InvocationId], queue_name: str, priority: float
    ) -> None:
        """Queue the ids in one round trip; each batch of :data:`ROUTE_BATCH` is one script
        (atomic, consecutive sequence numbers), so the ids leave in the order given."""
        if not invocation_ids:
            return
        ids = [_checked_id(invocation_id) for invocation_id in invocation_ids]
        keys = [self.keys.broker_queue(queue_name), self.keys.broker_seq(), self.keys.broker_queues()]
        score = repr(0.0 - float(priority))  # 0.0 - 0.0 is 0.0: no '-0.0' score
        pipe = self.client.pipeline(transaction=False)
        batches = list(itertools.batched(ids, ROUTE_BATCH))
        for batch in batches[:-1]:
            run(pipe, *self.route_script.command(keys, [score, queue_name, *batch]))
        self.route_script.run_in(pipe, keys, [score, queue_name, *batches[-1]])

    # -- taking --------------------------------------------------------------------------

    def _consumer(self) -> tuple[tuple[int, int], str]:
        slot = (os.getpid(), threading.get_ident())
        consumer = self._consumers.get(slot)
        if consumer is None:
            consumer = self._consumers[slot] = uuid.uuid4().hex
        return slot, consumer

    def retrieve_invocation(self, queue_name: str | None = None) -> InvocationId | None:
        """Take the queue's next invocation (highest priority, then first routed), or None.

        The take also acknowledges this consumer's previous one; every
        ``redis_stack_broker_recovery_interval_sec`` it first runs a recovery pass.
        Never blocks (``queue_timeout_sec`` is unused): pynenc's runners poll.
        """
        queue = self.conf.queues[0] if queue_name is None else queue_name
        self._validate_queue_names((queue,))
        if time.monotonic() >= self._next_recovery:
            self._next_recovery = time.monotonic() + self.recovery_interval_sec
            self._recover()
        slot, consumer = self._consumer()
        keys = [self.keys.broker_queue(queue), self.keys.broker_taken(), self.keys.broker_take_replies()]
        attempt = uuid.uuid4().hex
        previous = self._last_taken.get(slot, "")
        args = [previous, f"{consumer}:{queue}:", str(self.lease_ms), attempt, consumer]
        try:
            taken = self.take_script.run_in(self.client.pipeline(transaction=False), keys, args)[-1]
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # Retries exhausted. Whatever the script popped waits in the taken set for its
            # lease to expire and goes back to its queue: nothing is lost by giving up here,
            # and the runner loop (which ends on any error) goes on.
            logger.warning(
                "broker of app %r: take from queue %r failed (%s: %s); the runner takes again",
                self.app.app_id,
                queue,
                type(error).__name__,
                error,
            )
            return None
        if taken is None:
            self._last_taken.pop(slot, None)
            return None
        self._last_taken[slot] = taken
        return TakenEntry.parse(taken).invocation_id

    @property
    def recovery_interval_sec(self) -> float:
        return float(self.conf.redis_stack_broker_recovery_interval_sec)

    def _recover(self) -> None:
        """One recovery pass of the runner loop: expired takes, then (for one broker per
        interval across all hosts) the stranded-invocation sweep. A connection error is logged
        and the pass runs again at the next interval: it never ends the runner's loop."""
        try:
            self.recover_expired_takes()
            self._sweep_if_claimed()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            logger.warning(
                "broker of app %r: recovery pass failed (%s: %s); it runs again in %.1f s",
                self.app.app_id,
                type(error).__name__,
                error,
                self.recovery_interval_sec,
            )
        except Exception:  # a recovery bug must not stop every runner's loop: loud, then on
            logger.exception(
                "broker of app %r: recovery pass failed; it runs again in %.1f s",
                self.app.app_id,
                self.recovery_interval_sec,
            )

    def _sweep_if_claimed(self) -> None:
        """Run the orchestrator's stranded-invocation sweep if this broker wins this interval's
        claim (``SET NX PX``: one sweep per interval across every runner and host)."""
        orchestrator = self.app.orchestrator
        if not isinstance(orchestrator, StrandedSweeper):
            return
        _slot, consumer = self._consumer()
        interval_ms = max(1, round(self.recovery_interval_sec * 1000))
        if run(self.client, "SET", self.keys.broker_sweep_claim(), consumer, "NX", "PX", str(interval_ms)):
            self.forget_replies_script.run_in(
                self.client.pipeline(transaction=False), [self.keys.broker_take_replies()], []
            )
            orchestrator.reroute_stranded_invocations(grace_seconds=self.lease_ms / 1000)

    def queued_and_taken_ids(self) -> set[str]:
        """Every invocation id with an entry in one of the app's queues or in its taken set
        (see :func:`queued_and_taken_ids`)."""
        return queued_and_taken_ids(self.client, self.keys)

    def acknowledge_taken(self) -> None:
        """Acknowledge what this thread took last, for callers that take invocations outside
        pynenc's runner loop (which acknowledges by taking again)."""
        slot, _consumer = self._consumer()
        taken = self._last_taken.pop(slot, None)
        if taken is not None:
            run(self.client, "ZREM", self.keys.broker_taken(), taken)

    def count_taken(self) -> int:
        """Taken entries not yet acknowledged (not counted by :meth:`count_invocations`)."""
        return int(run(self.client, "ZCARD", self.keys.broker_taken()))

    def recover_expired_takes(self) -> RecoveryReport:
        """Apply the recovery rule to every taken entry whose lease has expired.

        :return: What went back to a queue and what was acknowledged.
        """
        requeued: list[InvocationId] = []
        acknowledged: list[InvocationId] = []
        taken_key = self.keys.broker_taken()
        while True:
            pipe = self.client.pipeline(transaction=False)
            expired = self.expired_script.run_in(pipe, [taken_key], [str(RECOVERY_BATCH)])[-1]
            if not expired:
                break
            pipe = self.client.pipeline(transaction=False)
            to_requeue: list[TakenEntry] = []
            for entry in map(TakenEntry.parse, expired):
                if self._take_was_recorded(entry.invocation_id):
                    run(pipe, "ZREM", taken_key, entry.raw)
                    acknowledged.append(entry.invocation_id)
                else:
                    to_requeue.append(entry)
            if not to_requeue:
                pipe.execute()
                continue
            for entry in to_requeue[:-1]:
                run(pipe, *self.requeue_script.command(*self._requeue_call(entry)))
            # last, so that run_in loads the script if the server lacks it
            replies = self.requeue_script.run_in(pipe, *self._requeue_call(to_requeue[-1]))
            moved = replies[len(replies) - len(to_requeue) :]
            # 0: a concurrent recovery (or the taker's late acknowledgement) got there first
            requeued.extend(
                entry.invocation_id for entry, done in zip(to_requeue, moved, strict=True) if done
            )
            if len(expired) < RECOVERY_BATCH:
                break
        if requeued:
            logger.warning(
                "broker of app %r: %d invocation(s) taken but never recorded (their taker died) "
                "went back to their queues: %s",
                self.app.app_id,
                len(requeued),
                ", ".join(requeued[:10]) + (" ..." if len(requeued) > 10 else ""),
            )
        return RecoveryReport(tuple(requeued), tuple(acknowledged))

    def _requeue_call(self, entry: TakenEntry) -> tuple[list[str], list[str]]:
        taken_key = self.keys.broker_taken()
        keys = [taken_key, self.keys.broker_queue(entry.queue_name), self.keys.broker_queues()]
        return keys, [entry.raw, entry.score, entry.queue_member, entry.queue_name]

    def _take_was_recorded(self, invocation_id: InvocationId) -> bool:
        """True unless the orchestrator still has the invocation available for run."""
        try:
            status = self.app.orchestrator.get_invocation_status(invocation_id)
        except KeyError:
            # The orchestrator has no such invocation (purged): no runner could run it, and
            # pynenc's runner loop fails on an id it cannot look up. Dropped, loudly.
            logger.warning(
                "broker of app %r: taken invocation %r is unknown to the orchestrator; dropped",
                self.app.app_id,
                invocation_id,
            )
            return True
        return not status.is_available_for_run()

    # -- counting and purging ------------------------------------------------------------

    def count_invocations(self, queue_names: Sequence[str] | None = None) -> int:
        """Invocations waiting in ``queue_names`` (default: the configured queues), counted
        in one MULTI/EXEC; taken ones are not waiting (see :meth:`count_taken`)."""
        queues = self.conf.queues if queue_names is None else tuple(queue_names)
        self._validate_queue_names(queues)
        if not queues:
            return 0
        pipe = self.client.pipeline(transaction=True)
        for queue in queues:
            run(pipe, "ZCARD", self.keys.broker_queue(queue))
        return sum(int(count) for count in pipe.execute())

    def purge(self) -> None:
        """Delete every queue of this app, its taken entries and its counter (see
        :func:`purge_broker_keys`)."""
        purge_broker_keys(self.client, self.keys)
        self._last_taken.clear()


def purge_broker_keys(client: redis.Redis, keys: AppKeys) -> None:
    """Delete every broker key of one app: its queues, taken entries, counter, queue names,
    take replies and sweep claim.

    ``WATCH`` on the set of queue names: a route to a queue new to the app between reading the
    set and deleting makes the transaction run again (redis-py's ``transaction``), and so does
    a lost connection, from the ``WATCH`` on (the client's retry policy).
    """
    queues_key = keys.broker_queues()

    def delete_everything(pipe: redis.client.Pipeline) -> None:
        queue_names: set[str] = run(pipe, "SMEMBERS", queues_key)  # immediate: the pipe watches
        pipe.multi()
        queue_keys = [keys.broker_queue(name) for name in queue_names]
        run(
            pipe,
            "UNLINK",
            queues_key,
            keys.broker_seq(),
            keys.broker_taken(),
            keys.broker_take_replies(),
            keys.broker_sweep_claim(),
            *queue_keys,
        )

    command_retry(client).call_with_retry(
        lambda: client.transaction(delete_everything, queues_key), no_cleanup
    )


def queued_and_taken_ids(client: redis.Redis, keys: AppKeys) -> set[str]:
    """Every invocation id with an entry in one of the app's queues or in its taken set, read
    in one MULTI/EXEC (an entry moving from a queue to the taken set is seen once)."""
    queue_names = sorted(run(client, "SMEMBERS", keys.broker_queues()))
    pipe = client.pipeline(transaction=True)
    for queue_name in queue_names:
        run(pipe, "ZRANGE", keys.broker_queue(queue_name), "0", "-1")
    run(pipe, "ZRANGE", keys.broker_taken(), "0", "-1")
    *queues, taken = pipe.execute()
    ids = {member.split(":", 1)[1] for members in queues for member in members}
    ids.update(TakenEntry.parse(raw).invocation_id for raw in taken)
    return ids


def _checked_id(invocation_id: str) -> str:
    position = lone_surrogate(invocation_id)
    if position is not None:
        raise InvalidDocumentError(lone_surrogate_message("invocation id", invocation_id, position))
    return str(invocation_id)

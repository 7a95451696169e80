"""The app and tasks of ``test_distributed.py``, imported by each process it starts.

Every process builds the same app from its environment alone: ``PYNENC__APP_ID``,
``PYNENC__REDIS_STACK_URL`` and the tuning the test sets. ``redis_stack()`` without
``components`` selects every component this package provides, so the processes share
nothing but the Redis Stack server. The tasks that block wait on Redis keys the test
controls (``BLPOP``), never on a sleep.
"""

from __future__ import annotations

import json
import os
import time

import redis
from pynenc import PynencBuilder, context

RUNNER_THREADS = 2
"""Invocations one runner process runs at once: three ``meet`` invocations cannot all run in
one process, so they meet only if two runner processes take work."""

WAIT_SECONDS = 120.0
"""How long a blocked task waits for the test before failing (never reached when it passes)."""

app = PynencBuilder().redis_stack().thread_runner(max_threads=RUNNER_THREADS).logging_level("warning").build()


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["PYNENC__REDIS_STACK_URL"], decode_responses=True)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def sum_of_doubles(n: int) -> int:
    """A parent that waits on its ``n`` children."""
    children = add.parallelize([(i, i) for i in range(n)])
    return sum(child.result for child in children.invocations)


@app.task
def meet(rendezvous: str, parties: int, index: int) -> int:
    """Join the set ``rendezvous`` with this process's pid; return the pid once ``parties``
    distinct processes have joined (polling the set, with a deadline)."""
    del index  # only makes each call distinct
    client = _client()
    client.sadd(rendezvous, os.getpid())
    deadline = time.monotonic() + WAIT_SECONDS
    while client.scard(rendezvous) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rendezvous}: fewer than {parties} processes joined")
        time.sleep(0.05)
    return os.getpid()


@app.task
def hold_until_released(name: str) -> int:
    """Push this process's pid and the invocation's id to ``<name>:started`` (JSON), then block
    until the test pushes to ``<name>:release``; return the pid that finished."""
    client = _client()
    invocation = context.get_dist_invocation_context(app.app_id)
    assert invocation is not None  # set by pynenc while an invocation runs
    client.rpush(f"{name}:started", json.dumps([os.getpid(), invocation.invocation_id]))
    deadline = time.monotonic() + WAIT_SECONDS
    while client.blpop([f"{name}:release"], timeout=1) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: never released")
    return os.getpid()


def run_runner() -> None:
    """A runner process: pynenc's ThreadRunner loop until killed."""
    app.runner.run()


def submit_batch(adds: int, children: int, meets: int, rendezvous: str) -> None:
    """A client process: submit every kind of task, wait for every result, print them as JSON
    ``{task name: [[invocation id, result], ...]}``."""
    submitted = {
        "add": [add(i, 1000) for i in range(adds)],
        "sum_of_doubles": [sum_of_doubles(children)],
        "meet": [meet(rendezvous, 2, i) for i in range(meets)],
    }
    answers = {
        name: [[invocation.invocation_id, invocation.result] for invocation in invocations]
        for name, invocations in submitted.items()
    }
    print(json.dumps(answers), flush=True)


def submit_held(name: str) -> None:
    """A client process: submit ``hold_until_released(name)``, print its id and result as JSON."""
    invocation = hold_until_released(name)
    print(json.dumps({"invocation_id": invocation.invocation_id, "result": invocation.result}), flush=True)

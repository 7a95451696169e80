"""pynmon (pynenc's monitor, ``pynenc[monitor]``) pages served over each backend's data.

The FastAPI app in ``pynmon.app`` serves whichever Pynenc app is its active instance; the
benchmark requests each page in-process through Starlette's ``TestClient`` (no socket), with
the active app switched between backends on every repetition. Both pages are chosen so the
state backend does the work:

- invocations list filtered by one workflow run (``get_invocation_ids_by_workflow``, then
  ``get_invocation`` and ``get_history`` per member, and ``get_history`` again to sort them);
  the page's status column comes from the orchestrator, so that run's invocations are
  registered in each app's SQLite orchestrator first (the same cost for every backend);
- the timeline over 1 % of the dataset's time range (``iter_history_in_timerange``,
  ``get_runner_contexts``, ``get_history`` of the visible invocations).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from benchmarks.backends import Subject, invocation
from benchmarks.dataset import CHUNK, Dataset

TARGET = 1.1
"""The highest ratio to pynenc-redis each page may take."""

PAGE_NAMES = ("pynmon invocations list (workflow filter)", "pynmon timeline (1% of range)")


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    params: dict[str, str]
    expect_any: frozenset[str]  # the page shows at least one of these ids when it read the data
    register: tuple[int, ...] = ()  # dataset rows the orchestrator must know for the page


def pages(data: Dataset, rng: random.Random) -> list[Page]:
    workflow_index = rng.randrange(len(data.workflows))
    workflow = data.workflows[workflow_index]
    start, end = data.window(rng, 0.01)
    visible = data.history_between(start, end)
    return [
        Page(
            PAGE_NAMES[0],
            "/invocations/",
            {"workflow_id": workflow.workflow_id},
            # not the workflow's own id: the page repeats that one in its filter form
            frozenset(data.by_workflow[workflow.workflow_id] - {str(workflow.workflow_id)}),
            tuple(range(workflow_index * CHUNK, (workflow_index + 1) * CHUNK)),
        ),
        Page(
            PAGE_NAMES[1],
            "/invocations/timeline",
            {"time_range": "custom", "start_date": _iso(start), "end_date": _iso(end)},
            frozenset(entry.invocation_id for entry in visible),
        ),
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@contextmanager
def monitor(subjects: list[Subject]) -> Iterator[tuple[Any, Any]]:
    """pynmon's FastAPI app with its routes, and a TestClient on it."""
    from fastapi.testclient import TestClient
    from pynmon import app as pynmon_app

    if not any(getattr(route, "path", None) == "/invocations/timeline" for route in pynmon_app.app.routes):
        pynmon_app.setup_routes()
    pynmon_app.all_pynenc_instances = {subject.app.app_id: subject.app for subject in subjects[:1]}
    with TestClient(pynmon_app.app) as client:
        yield pynmon_app, client


def request(pynmon_app: Any, client: Any, subject: Subject, page: Page) -> tuple[int, str | None]:
    """Serve ``page`` for ``subject``: (elapsed ns, problem or None)."""
    pynmon_app.pynenc_instance = subject.app
    pynmon_app.all_pynenc_instances = {subject.app.app_id: subject.app}
    started = time.perf_counter_ns()
    response = client.get(page.path, params=page.params)
    elapsed = time.perf_counter_ns() - started
    if response.status_code != 200:
        return elapsed, f"HTTP {response.status_code}: {response.text[:200]}"
    if not any(invocation_id in response.text for invocation_id in page.expect_any):
        return elapsed, f"the page shows none of the {len(page.expect_any)} expected invocation ids"
    return elapsed, None


def register(subject: Subject, data: Dataset, page: Page) -> None:
    """Give the page's invocations a status in the app's SQLite orchestrator.

    ``_register_new_invocations`` is the orchestrator half of pynenc's
    ``register_new_invocations``; the public method would also write history to the state
    backend (changing the data under test) and route the invocations to the broker.
    """
    if page.register:
        subject.app.orchestrator._register_new_invocations(
            [invocation(subject.app, data.pairs[i]) for i in page.register]
        )

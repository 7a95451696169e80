"""pynmon (pynenc's monitor, ``pynenc[monitor]``) pages served over each backend's data.

The FastAPI app in ``pynmon.app`` serves whichever Pynenc app is its active instance; the
benchmark requests each page in-process through Starlette's ``TestClient`` (no socket), with
the active app switched between backends on every repetition. Both pages are chosen so the
state backend does the work:

- invocations list filtered by one workflow run (``get_invocation_ids_by_workflow``, then
  ``get_invocation`` and ``get_history`` per member; the SQLite orchestrator holds no status
  for the benchmark's invocations, so pynmon lists no rows after those reads);
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

from benchmarks.backends import Subject
from benchmarks.dataset import Dataset


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    params: dict[str, str]
    expect_in_body: str  # the page names this id when it read the data


def pages(data: Dataset, rng: random.Random) -> list[Page]:
    workflow = data.workflows[rng.randrange(len(data.workflows))]
    span = data.end - data.start
    start = data.start + (span - span * 0.01) * rng.random()
    end = start + span * 0.01
    visible = data.history_between(start, end)
    return [
        Page(
            "pynmon invocations list (workflow filter)",
            "/invocations/",
            {"workflow_id": workflow.workflow_id},
            workflow.workflow_id,
        ),
        Page(
            "pynmon timeline (1% of range)",
            "/invocations/timeline",
            {"time_range": "custom", "start_date": _iso(start), "end_date": _iso(end)},
            visible[0].invocation_id if visible else "",
        ),
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@contextmanager
def monitor(subjects: list[Subject]) -> Iterator[tuple[Any, Any]]:
    """pynmon's FastAPI app with its routes, and a TestClient on it."""
    from fastapi.testclient import TestClient
    from pynmon import app as pynmon_app

    if not any(route.path == "/invocations/timeline" for route in pynmon_app.app.routes):
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
    if page.expect_in_body and page.expect_in_body not in response.text:
        return elapsed, f"the page does not show {page.expect_in_body}"
    return elapsed, None

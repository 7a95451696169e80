"""``pynenc-redis-stack query`` against real data: the demo's app (a workflow whose parent fans
out children, a failed task, a runner), and an app of 12 000 invocations in one workflow.

Every filter is checked against what the state backend itself answers; ``--json`` lines parse;
each ``--explain`` is replayed through ``pynenc-redis-stack cli`` and gives the same rows; an
answer above the server's 10 000-row caps is complete, with its progress on stderr.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pynenc import PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.codec import from_micros
from pynenc_redis_stack.core.command_line import split_redis_cli_line
from tests.conftest import unique_app_id
from tests.integration.test_demo_and_cookbook import demo_state

__all__ = ["demo_state"]  # the fixture, shared with the cookbook tests

SERVER_CAP = 10_000


class Cli:
    """Runs ``pynenc-redis-stack`` in this process against the session's server."""

    def __init__(
        self, redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.redis_url = redis_url
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*args, "--url", self.redis_url])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json_rows(self, *args: str) -> list[dict[str, Any]]:
        code, out, err = self("query", *args, "--json")
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def cli(redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(redis_url, capsys, monkeypatch)


def _iso(micros: str) -> str:
    return from_micros(int(micros)).isoformat()


def test_invocations_by_parent(cli: Cli, demo_state: dict[str, str]) -> None:
    rows = cli.json_rows("invocations", "--app-id", demo_state["app"], "--parent", demo_state["invocation"])
    assert len(rows) == 5
    assert {row["parent_invocation_id"] for row in rows} == {demo_state["invocation"]}
    assert {row["status"] for row in rows} == {"success"}


def test_invocations_by_workflow(cli: Cli, demo_state: dict[str, str]) -> None:
    rows = cli.json_rows("invocations", "--app-id", demo_state["app"], "--workflow", demo_state["workflow"])
    assert len(rows) == 6 and demo_state["invocation"] in {row["invocation_id"] for row in rows}
    assert {row["workflow_id"] for row in rows} == {demo_state["workflow"]}


def test_invocations_by_task_and_status(cli: Cli, demo_state: dict[str, str]) -> None:
    app = ("--app-id", demo_state["app"])
    (failed,) = cli.json_rows("invocations", *app, "--task", demo_state["task"])
    assert failed["status"] == "failed" and failed["task_id_key"] == demo_state["task"]
    assert [row["invocation_id"] for row in cli.json_rows("invocations", *app, "--status", "FAILED")] == [
        failed["invocation_id"]
    ]
    both = cli.json_rows("invocations", *app, "--status", "failed", "--status", "success")
    everything = cli.json_rows("invocations", *app)
    assert sorted(row["invocation_id"] for row in both) == sorted(
        row["invocation_id"] for row in everything if row["status"] in ("failed", "success")
    )
    assert Counter(row["status"] for row in both)["success"] >= 6
    assert cli.json_rows("invocations", *app, "--task", demo_state["task"], "--status", "success") == []


def test_invocations_by_time(cli: Cli, demo_state: dict[str, str]) -> None:
    app = ("--app-id", demo_state["app"])
    everything = cli.json_rows("invocations", *app)
    assert len(everything) >= 7  # the workflow, the failed task, and pynenc's own
    assert len(cli.json_rows("invocations", *app, "--since", "1h")) == len(everything)
    # --between: both bounds included, on the time of the latest status
    times = sorted(datetime.fromisoformat(row["status_ts"]) for row in everything)
    low, high = times[1], times[-2]
    between = cli.json_rows("invocations", *app, "--between", low.isoformat(), high.isoformat())
    assert sorted(datetime.fromisoformat(row["status_ts"]) for row in between) == times[1:-1]
    # a time without an offset is UTC
    naive = low.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert len(cli.json_rows("invocations", *app, "--between", naive, high.isoformat())) == len(between)


def test_history_of_an_invocation_and_in_a_time_range(cli: Cli, demo_state: dict[str, str]) -> None:
    from pynenc_redis_stack.demo.tasks import app

    app_id = ("--app-id", demo_state["app"])
    rows = cli.json_rows("history", *app_id, "--invocation", demo_state["invocation"])
    expected = app.state_backend.get_history(InvocationId(demo_state["invocation"]))
    assert [(row["ts"], row["status"]) for row in rows] == [
        (entry.timestamp.isoformat(), entry.status_record.status.value) for entry in expected
    ]  # in the backend's order: time, then arrival
    start, end = _iso(demo_state["from-us"]), _iso(demo_state["to-us"])
    in_range = cli.json_rows("history", *app_id, "--between", start, end)
    entries = [
        e
        for b in app.state_backend.iter_history_in_timerange(
            from_micros(int(demo_state["from-us"])), from_micros(int(demo_state["to-us"]))
        )
        for e in b
    ]
    assert len(in_range) == len(entries) > len(rows)
    assert all(start <= row["ts"] <= end for row in in_range)


def test_a_long_history_comes_whole_and_in_order(
    cli: Cli, request: pytest.FixtureRequest, redis_url: str
) -> None:
    """More entries than FT.AGGREGATE's SORTBY keeps by default (10), written out of order,
    two on the same timestamp (arrival order breaks the tie)."""
    app_id = unique_app_id(request)
    backend = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build().state_backend
    base = datetime(2026, 1, 1, tzinfo=UTC)
    seconds = [17, 3, 25, 9, 9, 1, 30, 12, 5, 21, 14, 2, 28, 7, 19, 11, 24, 6, 15, 27]
    for n, second in enumerate(seconds):
        entry = InvocationHistory(
            invocation_id=InvocationId("long"),
            status_record=InvocationStatusRecord(InvocationStatus.RUNNING, runner_id=f"r{n}"),
            runner_context_id=f"runner-{n}",
        )
        entry._timestamp = base + timedelta(seconds=second)
        backend._add_histories([InvocationId("long")], entry)
    rows = cli.json_rows("history", "--app-id", app_id, "--invocation", "long")
    expected = sorted(range(len(seconds)), key=lambda n: seconds[n])  # stable: arrival on ties
    assert [row["runner_context_id"] for row in rows] == [f"runner-{n}" for n in expected]


def test_runners_by_partial_id(cli: Cli, demo_state: dict[str, str]) -> None:
    rows = cli.json_rows("runners", "--app-id", demo_state["app"], demo_state["partial"])
    assert demo_state["runner"] in {row["runner_id"] for row in rows}
    assert all(demo_state["partial"] in row["runner_id"] for row in rows)
    assert cli.json_rows("runners", "--app-id", demo_state["app"], "no-runner-id-has-this") == []


def test_counts_by_status_task_and_runner(cli: Cli, demo_state: dict[str, str]) -> None:
    app = ("--app-id", demo_state["app"])
    invocations = cli.json_rows("invocations", *app)
    by_status = cli.json_rows("count", *app, "--by", "status")
    assert {row["status"]: row["invocations"] for row in by_status} == Counter(
        row["status"] for row in invocations
    )
    by_task = cli.json_rows("count", *app, "--by", "task")
    assert {row["task_id_key"]: row["invocations"] for row in by_task} == Counter(
        row["task_id_key"] for row in invocations
    )
    by_runner = {
        row["runner_context_id"]: row["invocations"] for row in cli.json_rows("count", *app, "--by", "runner")
    }
    assert by_runner[demo_state["runner"]] >= 1
    code, _out, err = cli("query", "count", *app, "--by", "runner", "--status", "failed")
    assert code == 1 and "--since or --between only" in err


def test_table_output(cli: Cli, demo_state: dict[str, str]) -> None:
    code, out, _err = cli(
        "query", "invocations", "--app-id", demo_state["app"], "--parent", demo_state["invocation"]
    )
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "INVOCATION_ID",
        "TASK_ID_KEY",
        "STATUS",
        "STATUS_TS",
        "WORKFLOW_ID",
        "PARENT_INVOCATION_ID",
    ]
    assert len(rows) == 5 and all(demo_state["invocation"] in row for row in rows)
    code, out, _err = cli("query", "count", "--app-id", demo_state["app"], "--by", "status")
    assert out.splitlines()[0].split() == ["STATUS", "INVOCATIONS"]
    code, out, err = cli("query", "runners", "--app-id", demo_state["app"], "no-runner-id-has-this")
    assert code == 0 and out == "" and err == "no rows match\n"


@pytest.mark.parametrize(
    "args",
    [
        ("invocations", "--parent", "{invocation}"),
        ("invocations", "--workflow", "{workflow}", "--status", "success"),
        ("invocations", "--task", "{task}", "--since", "1h"),
        ("history", "--invocation", "{invocation}"),
        ("runners", "{partial}"),
        ("count", "--by", "status"),
    ],
    ids=lambda args: "-".join(a.strip("-{}") for a in args),
)
def test_explain_replayed_through_cli_gives_the_same_rows(
    cli: Cli, demo_state: dict[str, str], args: tuple[str, ...]
) -> None:
    filled = [arg.format(**demo_state) for arg in args]
    app = ("--app-id", demo_state["app"])
    code, explained, _err = cli("query", *filled, *app, "--explain")
    assert code == 0
    (line,) = explained.splitlines()
    command = split_redis_cli_line(line)
    assert command[0] == "FT.AGGREGATE" and command[-2:] == ["DIALECT", "2"] and "PARAMS" in command
    assert demo_state["app"] not in command[2]  # values travel as PARAMS, never in the query string

    code, replayed, _err = cli("cli", stdin=explained)
    assert code == 0
    rows = cli.json_rows(*filled, *app)
    assert rows
    first_column = next(iter(rows[0]))
    assert replayed.count(f'"{first_column}"\n') == len(rows)  # one row per row, none more
    for row in rows:
        for value in row.values():
            if value is not None and not isinstance(value, int) and not re.match(r"\d{4}-", str(value)):
                assert f'"{value}"' in replayed


def test_bad_filter_values_are_refused_naming_them(cli: Cli) -> None:
    code, _out, err = cli("query", "invocations", "--status", "done")
    assert code == 2 and "unknown status 'done'" in err and "success" in err
    code, _out, err = cli("query", "history", "--between", "2026-12-07T15:00", "2026-12-07T14:00")
    assert code == 1 and "FROM is after TO" in err
    code, _out, err = cli("query", "history", "--between", "yesterday", "2026-12-07T14:00")
    assert code == 2 and "not a date and time: 'yesterday'" in err


# -- more than the server caps ---------------------------------------------------------------

MEMBERS = 12_000
WORKFLOW = WorkflowIdentity(
    workflow_id=InvocationId("big-workflow"), workflow_type=TaskId("tests.flows", "big")
)


@pytest.fixture(scope="module")
def big_app(request: pytest.FixtureRequest, redis_url: str) -> str:
    app_id = unique_app_id(request, "-12k")
    app = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build()
    backend = app.state_backend
    call_id = CallId(TaskId("tests.flows", "member"), "args")
    parent = InvocationId("big-parent")
    for start in range(0, MEMBERS, 1000):
        backend._upsert_invocations(
            [
                (
                    InvocationDTO(InvocationId(f"member-{n:05d}"), call_id, WORKFLOW, parent, None),
                    CallDTO(call_id, {}),
                )
                for n in range(start, start + 1000)
            ]
        )
    return app_id


def test_an_answer_beyond_the_server_caps_is_complete_with_its_progress(cli: Cli, big_app: str) -> None:
    code, out, err = cli("query", "invocations", "--app-id", big_app, "--workflow", "big-workflow", "--json")
    assert code == 0
    ids = [json.loads(line)["invocation_id"] for line in out.splitlines()]
    assert len(ids) == len(set(ids)) == MEMBERS > SERVER_CAP
    assert set(ids) == {f"member-{n:05d}" for n in range(MEMBERS)}
    progress = err.splitlines()
    assert (
        progress and progress[-1].startswith("query [") and progress[-1].endswith(f"100% {MEMBERS}/{MEMBERS}")
    )

    code, out, err = cli("query", "invocations", "--app-id", big_app, "--limit", "25")
    assert code == 0 and len(out.splitlines()) == 1 + 25

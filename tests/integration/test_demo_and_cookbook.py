"""The demo runs a real pynenc app; every README cookbook command runs against its state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.builder import COMPONENTS
from pynenc_redis_stack.core.codec import to_micros
from pynenc_redis_stack.core.command_line import split_redis_cli_line
from pynenc_redis_stack.demo.__main__ import PYNENC_COMPONENTS
from tests.conftest import RedisCli

README = Path(__file__).resolve().parents[2] / "README.md"


def cookbook_commands() -> list[tuple[str, str]]:
    """Return (title, command) for each line of the README's redis-cli cookbook block."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- cookbook:start -->\s*```[a-z-]*\n(.*?)```\s*<!-- cookbook:end -->", text, re.S)
    assert block, "README has no cookbook block"
    commands, title = [], ""
    for line in block.group(1).splitlines():
        if line.startswith("#"):
            title = line.lstrip("# ").strip()
        elif line.strip():
            commands.append((title, line.strip()))
    return commands


@pytest.fixture(scope="module")
def demo_state(redis_url: str) -> dict[str, str]:
    """Run the demo once on the session server and collect values for the placeholders."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PYNENC__REDIS_STACK_URL", redis_url)
    try:
        from pynenc_redis_stack.demo.__main__ import main
        from pynenc_redis_stack.demo.tasks import app, check_positive, sum_of_squares

        assert main(["--url", redis_url, "--children", "5"]) == 0
        backend = app.state_backend
        now = datetime.now(UTC)
        history = [
            e for batch in backend.iter_history_in_timerange(now - timedelta(minutes=5), now) for e in batch
        ]
        parent_id = next(
            e.invocation_id
            for e in history
            if backend.get_invocation(e.invocation_id).call.task is sum_of_squares
        )
        workflow_id = backend.get_invocation(parent_id).workflow.workflow_id
        runner_id = history[-1].runner_context_id
        return {
            "app": app.app_id,
            "invocation": parent_id,
            "workflow": workflow_id,
            "task": check_positive.task_id.key,
            "partial": runner_id[2:7],
            "runner": runner_id,
            "since-us": str(to_micros(now - timedelta(hours=1))),
            "from-us": str(to_micros(history[0].timestamp)),
            "to-us": str(to_micros(history[-1].timestamp)),
        }
    finally:
        monkeypatch.undo()


def _cli_repr(text: str) -> str:
    """A string as redis-cli prints it (hiredis ``sdscatrepr``): quoted, with ``\\``, ``\\"``,
    control-character and ``\\xHH`` escapes for every byte that is not printable ASCII."""
    named = {0x5C: "\\\\", 0x22: '\\"', 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x07: "\\a", 0x08: "\\b"}
    out = (named.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in text.encode())
    return '"' + "".join(out) + '"'


def run_demo(redis_url: str, children: int, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the demo in a process of its own on ``redis_url``, with only the given pynenc
    settings from the environment (``PYNENC__<NAME>``)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC__")}
    environment.update({f"PYNENC__{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "pynenc_redis_stack.demo", "--url", redis_url, "--children", str(children)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


def test_demo_prints_its_expected_failure_in_one_line(redis_url: str) -> None:
    """check_positive(-1) fails on purpose: one line says so, no traceback (pynenc's log of
    the exception and the runner thread's re-raise are both kept quiet for that error only)."""
    demo = run_demo(redis_url, 3)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Traceback" not in output and "Running in a secondary thread" not in output
    assert [line for line in output.splitlines() if "is negative" in line] == [
        "check_positive(-1) failed as expected: -1 is negative"
    ]
    assert "-> 3 children" in demo.stdout


def test_demo_runs_on_this_packages_components(redis_url: str) -> None:
    """The demo prints each component's class: every one this package provides is its own,
    none is SQLite, and its state is on the server alone (no SQLite path is configured)."""
    demo = run_demo(redis_url, 2)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    listed = re.search(r"^Components:\n((?:  .*\n)+)", demo.stdout, re.M)
    assert listed, demo.stdout
    classes = dict(line.split()[:2] for line in listed.group(1).splitlines())
    assert sorted(classes) == sorted(PYNENC_COMPONENTS)
    for name, (_key, class_name) in COMPONENTS.items():
        assert classes[name].startswith("pynenc_redis_stack.") and classes[name].endswith(f".{class_name}")
    assert not [c for c in classes.values() if "sqlite" in c.lower()]


def _leaves(reply: object) -> list[str]:
    if isinstance(reply, list):
        return [leaf for item in reply for leaf in _leaves(item)]
    return [str(reply)]


def test_cookbook_lists_the_operator_questions() -> None:
    titles = [title for title, _ in cookbook_commands()]
    assert len(titles) >= 8
    for question in ("children", "workflow", "FAILED", "runner", "between"):
        assert any(question in title for title in titles), question


@pytest.mark.parametrize(("title", "command"), cookbook_commands(), ids=[t for t, _ in cookbook_commands()])
def test_cookbook_command_answers(
    title: str, command: str, demo_state: dict[str, str], redis_url: str, redis_cli: RedisCli
) -> None:
    filled = re.sub(r"<([a-z-]+)>", lambda m: demo_state[m.group(1)], command)
    # As pasted into the real redis-cli...
    pasted = redis_cli(filled)
    # ...and the same arguments through redis-py, for structured checks.
    client = redis.Redis.from_url(redis_url, protocol=2, decode_responses=True)
    reply = client.execute_command(*split_redis_cli_line(filled))
    if not command.startswith("FT.INFO"):  # FT.INFO counters move with every query
        for leaf in _leaves(reply):
            assert leaf in pasted or _cli_repr(leaf) in pasted, (
                f"{title}: redis-cli answered differently ({leaf!r} missing)"
            )
    else:
        assert "num_docs" in pasted and "hash_indexing_failures" in pasted
    flat = str(reply)
    assert reply, f"{title}: empty reply"
    if "children" in title:
        assert len(reply) - 1 == 5  # FT.AGGREGATE: one row per child after the header
    elif "workflow" in title:
        assert len(reply) - 1 == 6 and demo_state["invocation"] in flat
    elif "FAILED" in title:
        assert reply[0] == 1 and "status_ts" in flat  # FT.SEARCH: total first
    elif "runner" in title:
        assert demo_state["runner"] in flat
    elif "between" in title:
        assert demo_state["from-us"] in flat and demo_state["to-us"] in flat
    elif "per status" in title:
        assert InvocationStatus.SUCCESS.value in flat and InvocationStatus.FAILED.value in flat
    elif "apps" in title:
        assert demo_state["app"] in flat
    else:
        assert "num_docs" in flat

"""Run the demo: ``python -m pynenc_redis_stack.demo`` (or ``./dev demo``).

1. start (or reuse) the embedded Redis Stack;
2. build a pynenc app on this package's components, print them and check them
   (:func:`check_components`);
3. run it with a real runner: a parent task fans out child tasks;
4. answer operators' questions from the state backend's indexes and print the
   ``FT.AGGREGATE`` each answer comes from.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack.builder import COMPONENTS
from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import redacted_url
from pynenc_redis_stack.core.errors import (
    IndexDefinitionMismatchError,
    RedisStackError,
    ServerDependencyError,
)
from pynenc_redis_stack.server import EmbeddedRedisStack

if TYPE_CHECKING:
    from pynenc import Pynenc

SERVER_EXTRA_HINT = (
    "pip install 'pynenc-redis-stack[server]' (from a checkout: pip install '.[server]'), "
    "or run against your own server with --url redis://host:port/0"
)

PYNENC_COMPONENTS = ("orchestrator", "broker", "state_backend", "client_data_store", "trigger")
"""The components every pynenc 0.4 app has (its attribute names)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pynenc_redis_stack.demo", description=__doc__)
    parser.add_argument("--url", help="use this Redis Stack instead of the embedded one")
    parser.add_argument("--children", type=int, default=12, help="child tasks to fan out")
    options = parser.parse_args(argv)

    if options.url:
        os.environ["PYNENC_REDIS_STACK_DEMO_EXTERNAL"] = "1"
    url = options.url or ""
    try:
        url = url or EmbeddedRedisStack().start()
        # The embedded server's URL carries its generated local password, printed on purpose
        # (as `server url` does) so redis-cli can follow along; a given --url is the user's secret.
        print(f"Redis Stack: {redacted_url(url) if options.url else url}")
        os.environ["PYNENC__REDIS_STACK_URL"] = url
        return _run(options.children)
    except ServerDependencyError:
        print(f"demo: the embedded Redis Stack needs the server extra: {SERVER_EXTRA_HINT}", file=sys.stderr)
        return 1
    except RedisStackError as error:
        # A problem of the server or its indexes: its message names the fix; no traceback.
        print(f"demo: {' '.join(str(error).split())}", file=sys.stderr)
        if isinstance(error, IndexDefinitionMismatchError):
            shown = redacted_url(url) if options.url else url
            print(f"demo: for this server: pynenc-redis-stack index migrate --url '{shown}'", file=sys.stderr)
        return 1


def _uses_external_server() -> bool:
    return os.environ.get("PYNENC_REDIS_STACK_DEMO_EXTERNAL") == "1"


@contextlib.contextmanager
def _expected_failure_in_one_line(logger: logging.Logger, expected: type[BaseException]) -> Iterator[None]:
    """Keep the demo's deliberate failure to the one line the demo prints itself.

    pynenc logs a failing invocation with its traceback, and the runner's worker thread
    re-raises it, so threading's excepthook prints the traceback a second time. Both are
    dropped for ``expected`` only; any other error still shows in full.
    """

    def not_expected(record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], expected))

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, expected):
            original_excepthook(args)

    original_excepthook = threading.excepthook
    logger.addFilter(not_expected)
    threading.excepthook = excepthook
    try:
        yield
    finally:
        threading.excepthook = original_excepthook
        logger.removeFilter(not_expected)


def check_components(app: Pynenc) -> None:
    """Print the class of each of the app's components; fail unless every one is this
    package's (:data:`COMPONENTS`).

    :param app: The demo's app.
    :raises RuntimeError: Naming every component that breaks the rule.
    """
    print("Components:")
    wrong = []
    for name in PYNENC_COMPONENTS:
        component = type(getattr(app, name))
        print(f"  {name:<18} {component.__module__}.{component.__name__}")
        if name not in COMPONENTS or component.__module__.partition(".")[0] != "pynenc_redis_stack":
            wrong.append(f"{name}={component.__name__}")
    if wrong:
        raise RuntimeError(f"the demo must run on this package's components alone: {', '.join(wrong)}")


def _run(children: int) -> int:
    from pynenc_redis_stack.demo.tasks import NegativeNumberError, app, check_positive, sum_of_squares

    check_components(app)
    backend = app.state_backend
    app.purge()  # a fresh demo each run; every component's purge touches only this app's keys
    started = datetime.now(UTC)

    with warnings.catch_warnings(), _expected_failure_in_one_line(app.logger, NegativeNumberError):
        # The runner runs in a thread of the demo on purpose (no signal handling needed).
        warnings.filterwarnings("ignore", "Running in a secondary thread", UserWarning)
        runner = threading.Thread(target=app.runner.run, daemon=True)
        runner.start()
        try:
            parent = sum_of_squares(children)
            total = parent.result
            try:
                check_positive(-1).result  # noqa: B018 - waiting for the result raises
            except NegativeNumberError as error:
                print(f"check_positive(-1) failed as expected: {error}")
        finally:
            app.runner.stop_runner_loop()
            runner.join(timeout=10)
    print(f"\nsum_of_squares({children}) = {total}  (parent invocation {parent.invocation_id})")

    print("\n# Children of the parent invocation (get_child_invocations)")
    child_ids = sorted(backend.get_child_invocations(parent.invocation_id))
    for child_id in child_ids:
        child = backend.get_invocation(child_id)
        print(f"  {child_id}  {child.call.task.task_id.key}{child.call.arguments.kwargs}")
    print(f"  -> {len(child_ids)} children")

    workflow = backend.get_invocation(parent.invocation_id).workflow
    print(f"\n# Invocations of workflow {workflow.workflow_id} (get_invocation_ids_by_workflow)")
    members = sorted(backend.get_invocation_ids_by_workflow(workflow_id=workflow.workflow_id))
    print(f"  -> {len(members)} invocations of type {workflow.workflow_type.key}")

    history = backend.get_history(parent.invocation_id)
    runner_id = history[-1].runner_context_id
    partial = runner_id[: max(4, len(runner_id) // 4)]
    print(f"\n# Runner contexts whose id contains {partial!r} (get_matching_runner_contexts)")
    for context in backend.get_matching_runner_contexts(partial):
        print(f"  {context.runner_id}  {context.runner_cls} pid={context.pid} host={context.hostname}")

    print("\n# History of the last minute (iter_history_in_timerange)")
    now = datetime.now(UTC)
    entries = [
        entry
        for batch in backend.iter_history_in_timerange(now - timedelta(minutes=1), now, batch_size=50)
        for entry in batch
    ]
    for entry in entries[:8]:
        print(
            f"  {entry.timestamp.isoformat()}  {entry.status_record.status.value:<10} {entry.invocation_id}"
        )
    print(f"  ... {len(entries)} entries since {started.isoformat()}")

    print(f"\n# FAILED invocations of {check_positive.task_id.key} in the last hour (find_invocations)")
    failed = backend.find_invocations(
        task_key=check_positive.task_id.key, status=InvocationStatus.FAILED, since=now - timedelta(hours=1)
    )
    for invocation_id, _status, status_time in failed:
        print(f"  {invocation_id}  failed at {status_time.isoformat()}")

    print("\n# The children again, from redis-cli (more in the README's 'Querying'):")
    children_request = query.Aggregate(
        backend.namespace.alias(backend.schemas.invocations),
        query.where(backend.schemas.invocations, app.app_id, parent_invocation_id=parent.invocation_id),
        query.load_fields("invocation_id"),
    )
    print(f"  {children_request.redis_cli()}")
    if not _uses_external_server():
        print(
            "\nThe embedded Redis Stack keeps running: `pynenc-redis-stack server stop` stops it "
            "(`./dev server stop` in a checkout)."
        )
    ok = total == sum(i * i for i in range(children)) and len(child_ids) == children and entries
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

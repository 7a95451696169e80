"""
``pynenc-redis-stack query ...``: ad-hoc questions over an app's state without writing
RediSearch syntax (as Temporal's ``workflow list --query``).

Verbs: ``invocations`` (by task, status, workflow, parent, time of the latest status),
``history`` (of an invocation, in a time range), ``runners`` (by partial id), ``count``
(grouped by status, task or runner). Rows print as a table (columns as wide as the first
batch) or, with ``--json``, one JSON object per line; they stream through a cursor, so an
answer beyond the server's 10 000-row caps is complete, with a progress bar on stderr for
long scans. ``--explain`` prints the exact ``FT.AGGREGATE`` instead of running it: paste it
into ``redis-cli``, or pipe it to ``pynenc-redis-stack cli``.

The questions are built in :mod:`pynenc_redis_stack.admin.explore`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin import explore
from pynenc_redis_stack.cli import EXIT_OK, SubParsers, add_group, format_table, guarded
from pynenc_redis_stack.cli.options import (
    app_id_from_args,
    config_from_args,
    connection_options,
    positive_int,
)
from pynenc_redis_stack.cli.progress import ProgressBar
from pynenc_redis_stack.cli.prune_commands import parse_duration
from pynenc_redis_stack.core.codec import MAX_MICROS, from_micros, to_micros
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.reads import Row
from pynenc_redis_stack.core.schema import load_schemas

STATUSES = tuple(status.value for status in InvocationStatus)


def parse_moment(value: str) -> datetime:
    """Parse an ISO 8601 date or time (``2026-12-07T14:00``; no offset means UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date and time: {value!r} (use ISO 8601, e.g. 2026-12-07T14:00 or 2026-12-07T14:00+01:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_status(value: str) -> str:
    """Parse an invocation status (pynenc's names, any case)."""
    status = value.strip().lower()
    if status not in STATUSES:
        raise argparse.ArgumentTypeError(f"unknown status {value!r}; statuses: {', '.join(STATUSES)}")
    return status


def time_range(args: argparse.Namespace) -> explore.TimeRange | None:
    """The ``--since`` / ``--between`` bounds in epoch microseconds, if any."""
    if args.since is not None:
        return to_micros(datetime.now(UTC) - args.since), MAX_MICROS
    if args.between is not None:
        start, end = args.between
        if start > end:
            raise ValueError(f"--between {start.isoformat()} {end.isoformat()}: FROM is after TO")
        return to_micros(start), to_micros(end)
    return None


# -- printing --------------------------------------------------------------------------------


def _cell(column: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if column in explore.TIME_COLUMNS:
        return from_micros(int(float(value))).isoformat()
    return value


def print_rows(
    batches: Iterable[list[Row]],
    columns: Sequence[str],
    *,
    as_json: bool,
    limit: int | None,
    progress: ProgressBar | None,
    total: int | None,
) -> int:
    """Print the rows of ``batches`` as they arrive; return how many were printed."""
    printed = 0
    widths: list[int] | None = None
    for batch in batches:
        rows = [[_cell(column, row.get(column)) for column in columns] for row in batch]
        if limit is not None:
            rows = rows[: limit - printed]
        if as_json:
            lines = [json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False) for row in rows]
        else:
            cells = [[cell or "-" for cell in row] for row in rows]
            if widths is None:  # the first batch sets the columns' widths; the header goes first
                header = [column.upper() for column in columns]
                widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(columns))]
                cells.insert(0, header)
            lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
        printed += len(rows)
        if progress is not None and total:
            progress.update("query", min(printed / total, 1.0), f"{printed}/{total}")
        if limit is not None and printed >= limit:
            break
    if progress is not None and total:
        progress.done("query")
    if printed == 0 and not as_json:  # a table without rows would print nothing at all
        print("no rows match", file=sys.stderr)
    return printed


# -- handlers ----------------------------------------------------------------------------------


def _selection(args: argparse.Namespace) -> explore.InvocationSelection:
    return explore.InvocationSelection(
        task=args.task,
        statuses=args.status or (),
        workflow=args.workflow,
        parent=args.parent,
        time_range=time_range(args),
    )


def _question(args: argparse.Namespace, namespace: Namespace, app_id: str) -> explore.Question:
    schemas = load_schemas()
    if args.verb == "invocations":
        return explore.invocations(namespace, schemas, app_id, _selection(args))
    if args.verb == "history":
        return explore.history(
            namespace, schemas, app_id, invocation=args.invocation, time_range=time_range(args)
        )
    if args.verb == "runners":
        return explore.runners(namespace, schemas, app_id, args.partial)
    return explore.counts(namespace, schemas, app_id, args.by, _selection(args))


@guarded
def _query(args: argparse.Namespace) -> int:
    conf = config_from_args(args)
    app_id = app_id_from_args(args)
    question = _question(args, Namespace(str(conf.redis_stack_namespace)), app_id)
    if args.explain:
        print(question.request.redis_cli())
        return EXIT_OK
    client = admin.connect_app(conf, app_id)
    batch_size = int(conf.redis_stack_batch_size)
    if args.verb == "count":
        groups = [row for batch in explore.answer(client, question, batch_size) for row in batch]
        key, counted = question.columns
        groups.sort(key=lambda row: (-int(row[counted]), row.get(key) or ""))
        if args.json:
            for row in groups:
                print(json.dumps({key: row.get(key), counted: int(row[counted])}, ensure_ascii=False))
        else:
            rows = [(key.upper(), counted.upper()), *((row.get(key) or "-", row[counted]) for row in groups)]
            print("\n".join(format_table(rows, right_aligned={1})))
        return EXIT_OK
    total = explore.count_rows(client, question)
    # a scan of more than one batch is a long one: it shows its progress
    progress = ProgressBar(sys.stderr) if total and total > batch_size else None
    batches = explore.answer(client, question, batch_size)
    try:
        print_rows(
            batches, question.columns, as_json=args.json, limit=args.limit, progress=progress, total=total
        )
    finally:
        batches.close()  # an answer cut short (--limit, a closed pipe) frees its server cursor now
    return EXIT_OK


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``query`` verb group.

    :param subparsers: The top-level subparsers of the CLI.
    """
    common = connection_options(app_id=True)
    output = common.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    output.add_argument(
        "--explain",
        action="store_true",
        help="print the FT.AGGREGATE instead of running it (for redis-cli or `pynenc-redis-stack cli`)",
    )
    timed = argparse.ArgumentParser(add_help=False)
    when = timed.add_mutually_exclusive_group()
    when.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        help="within the last DURATION: 90s, 15m, 1h, 2d, 1d12h",
    )
    when.add_argument(
        "--between",
        type=parse_moment,
        nargs=2,
        metavar=("FROM", "TO"),
        help="ISO 8601 times, both included (no offset: UTC)",
    )
    filtered = argparse.ArgumentParser(add_help=False, parents=[timed])
    filtered.add_argument("--task", metavar="TASK_KEY", help="the task's key: module.function, exactly")
    filtered.add_argument(
        "--status",
        type=parse_status,
        action="append",
        metavar="STATUS",
        help=f"repeatable: {', '.join(STATUSES)}",
    )
    filtered.add_argument("--workflow", metavar="WORKFLOW_ID", help="invocations of this workflow run")
    filtered.add_argument("--parent", metavar="INVOCATION_ID", help="children of this invocation")
    limited = argparse.ArgumentParser(add_help=False)
    limited.add_argument("--limit", type=positive_int, help="print at most this many rows")

    verbs = add_group(subparsers, "query", help="ad-hoc questions: invocations, history, runners, counts")
    found = verbs.add_parser(
        "invocations",
        parents=[common, filtered, limited],
        help="invocations by task, status, workflow, parent, time of the latest status",
        description="Invocations of the app matching every filter given; --since and --between "
        "select by the time of the latest status.",
    )
    found.set_defaults(handler=_query)
    history = verbs.add_parser(
        "history", parents=[common, timed, limited], help="status history: of one invocation, in a time range"
    )
    history.add_argument("--invocation", metavar="INVOCATION_ID", help="the history of this invocation")
    history.set_defaults(handler=_query)
    runners = verbs.add_parser(
        "runners", parents=[common, limited], help="runner contexts whose id contains PARTIAL"
    )
    runners.add_argument(
        "partial", nargs="?", default="", metavar="PARTIAL", help="part of the runner id (literal)"
    )
    runners.set_defaults(handler=_query)
    count = verbs.add_parser(
        "count",
        parents=[common, filtered],
        help="invocations per status or task; per runner, the invocations each runner recorded history for",
    )
    count.add_argument("--by", choices=("status", "task", "runner"), required=True)
    count.set_defaults(handler=_query)

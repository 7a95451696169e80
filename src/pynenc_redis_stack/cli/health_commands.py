"""``pynenc-redis-stack health``: one app's stranded invocations, RUNNING invocations of dead
runners and orphaned data (:mod:`pynenc_redis_stack.admin.health`). Exit code 0 when there is
none of them, 3 otherwise (for a monitoring check; 1 stays a failure to check)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pynenc.conf.config_pynenc import ConfigPynenc

from pynenc_redis_stack.cli import EXIT_OK, SubParsers, format_table, guarded
from pynenc_redis_stack.cli.options import (
    app_id_from_args,
    config_from_args,
    connection_options,
    positive_float,
)

if TYPE_CHECKING:
    from pynenc_redis_stack.admin.health import HealthReport

EXIT_NEEDS_ATTENTION = 3
"""Exit code when the report found something (1 is a failure to check: server, input)."""

SHOWN = 10
"""Invocation ids listed per line; the count is always complete."""


def format_health(report: HealthReport) -> list[str]:
    """The table ``health`` prints, then the first ids of each kind of problem."""
    rows = [
        ("CHECK", "COUNT"),
        ("stranded invocations (no route; the sweeper routes them)", str(len(report.stranded))),
        (
            "running invocations of dead runners (pynenc's recovery reroutes them)",
            str(len(report.running_with_dead_owner)),
        ),
        ("runner heartbeat documents without expiry", str(report.heartbeats_without_expiry)),
        ("client data values no document refers to (prune deletes them)", str(report.orphaned_client_data)),
        ("client data values", str(report.client_data_values)),
    ]
    lines = format_table(rows, right_aligned={1})
    if report.stranded:
        lines.append("stranded: " + ", ".join(f"{i} ({s.value})" for i, s in report.stranded[:SHOWN]))
    if report.running_with_dead_owner:
        lines.append("running, dead runner: " + ", ".join(report.running_with_dead_owner[:SHOWN]))
    return lines


@guarded
def _health(args: argparse.Namespace) -> int:
    # imported here: the orchestrator is pynenc 0.4's, and the CLI also serves pynenc 0.3
    from pynenc_redis_stack.admin.health import check_health

    conf = config_from_args(args)
    app_id = app_id_from_args(args)
    dead_after = (
        float(ConfigPynenc(config_filepath=args.config_file).runner_considered_dead_after_minutes) * 60
    )
    report = check_health(conf, app_id, grace_seconds=args.grace, dead_after_seconds=dead_after)
    print(f"health: app {app_id!r} in namespace {conf.redis_stack_namespace!r}")
    print("\n".join(format_health(report)))
    return EXIT_OK if report.healthy else EXIT_NEEDS_ATTENTION


def add_parser(subparsers: SubParsers) -> None:
    """Register the ``health`` command.

    :param subparsers: The top-level subparsers of the CLI.
    """
    command = subparsers.add_parser(
        "health",
        parents=[connection_options(app_id=True)],
        help="report stranded invocations, running invocations of dead runners and orphaned data",
        description="Report the app's invocations waiting for a route that never came, RUNNING invocations whose "
        "runner is dead, runner heartbeat documents without an expiry, and client data values no document refers "
        "to. Reads only. Exit code 3 if any is found.",
    )
    command.add_argument(
        "--grace",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long an invocation may wait for its route (default 60: the broker's default lease)",
    )
    command.set_defaults(handler=_health)

"""Plans: the steps that bring each index to its schema file, decided from a
:class:`~.snapshot.ServerSnapshot` before anything changes. Pure: no server access, so every
case (empty server, outdated, drifted, interrupted, foreign index) is a table test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pynenc_redis_stack.core.errors import ForeignIndexError
from pynenc_redis_stack.core.indexes.definition import create_command
from pynenc_redis_stack.core.indexes.executor import AwaitBackfill, AwaitDrain, Send, Step
from pynenc_redis_stack.core.indexes.status import IndexState, IndexStatus, index_status, matching_info

if TYPE_CHECKING:
    from pynenc_redis_stack.core.indexes.snapshot import ServerSnapshot
    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import IndexSpec

ALREADY_EXISTS = "already exists"
"""Lower-case text of the server's answer to creating an index or alias that exists."""


class Action(StrEnum):
    """What a plan does to one index."""

    NONE = "up to date"
    CREATE = "create"
    MIGRATE = "migrate"
    REBUILD = "rebuild"
    WAIT = "wait for backfill"
    CLEANUP = "drop leftovers"
    SKIP = "skip"


@dataclass(frozen=True)
class IndexPlan:
    """The steps that bring one index to its schema file.

    :param status: What the server held when the plan was made.
    :param action: Summary of the plan.
    :param target: Physical index the alias points to afterwards.
    :param reused: True when ``target`` already existed (a previous run was interrupted) and
        is reused instead of created.
    :param drops: Physical indexes dropped (without ``DD``) once the alias has moved.
    :param steps: What the executor runs, in order.
    :param note: Why nothing is done (``skip``), or what was deliberately left alone.
    """

    status: IndexStatus
    action: Action
    target: str | None
    reused: bool = False
    drops: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    note: str = ""


def _drop_steps(names: Sequence[str]) -> list[Step]:
    steps: list[Step] = []
    for name in names:
        # A reader that opened a cursor before the alias moved reads from the old index; dropping
        # it under that cursor fails the reader ("The index was dropped while the cursor was idle").
        steps.append(AwaitDrain(name))
        steps.append(Send(("FT.DROPINDEX", name)))
    return steps


def _rebuild_name(namespace: Namespace, spec: IndexSpec, versions: Sequence[str]) -> str:
    rebuilds = [
        parsed[1]
        for parsed in (namespace.parse_physical_index(spec, name) for name in versions)
        if parsed is not None and parsed[0] == spec.version
    ]
    return namespace.physical_index(spec, rebuild=max(rebuilds, default=0) + 1)


def plan_index(
    snapshot: ServerSnapshot,
    namespace: Namespace,
    spec: IndexSpec,
    *,
    rebuild_drifted: bool = False,
    cleanup: bool = True,
) -> IndexPlan:
    """Decide the steps that bring one index to its schema file, from what ``snapshot`` holds.

    :param rebuild_drifted: Rebuild a live index whose definition differs from the file at the
        same version, as a fresh physical index ``<ns>:idx:<name>:v<N>:r<k>``, swapped in like a
        migration. Without it a drifted index is left alone.
    :param cleanup: Drop replaced and leftover physical indexes (without ``DD``). The backend's
        check on first use plans without cleanup: it only ever creates what is missing.
    """
    status = index_status(snapshot, namespace, spec)
    live = status.live_index
    live_is_ours = live is not None and live in status.versions
    leftovers = [name for name in status.versions if name != live]
    if status.state is IndexState.OK or (
        status.state is IndexState.BACKFILLING and live is not None and status.building_index is None
    ):
        drops: tuple[str, ...] = tuple(leftovers) if cleanup else ()
        steps: list[Step] = []
        if status.state is IndexState.BACKFILLING:
            steps.append(AwaitBackfill(live or ""))
        steps.extend(_drop_steps(drops))
        if status.state is IndexState.BACKFILLING:
            action = Action.WAIT
        else:
            action = Action.CLEANUP if drops else Action.NONE
        return IndexPlan(status, action, live, drops=drops, steps=tuple(steps))
    if status.drift and not rebuild_drifted:
        note = (
            f"drifted ({status.drift}); not touched: rerun with --rebuild-drifted to rebuild it "
            "as a fresh index and swap it in"
        )
        return IndexPlan(status, Action.SKIP, live, note=note)

    # Reuse an index of the file's version that an interrupted run left behind, if it matches.
    target: str | None = None
    candidates = [status.building_index] if status.building_index else []
    candidates += [name for name in leftovers if name not in candidates]
    for name in candidates:
        parsed = namespace.parse_physical_index(spec, name)
        if (
            parsed is not None
            and parsed[0] == spec.version
            and matching_info(snapshot, namespace, spec, name)
        ):
            target = name
            break
    if target is None and not cleanup and namespace.physical_index(spec) in status.versions:
        # Without cleanup nothing may be dropped: alias what is there; the check that follows
        # reports it if it does not match.
        target = namespace.physical_index(spec)
    reused = target is not None
    steps = []
    if target is None:
        plain = namespace.physical_index(spec)
        if status.live_version == spec.version:
            target = _rebuild_name(namespace, spec, status.versions)
        else:
            target = plain
            if plain in status.versions:
                # Not aliased and not matching the file: nothing reads it, rebuild it in place.
                steps.append(Send(("FT.DROPINDEX", plain)))
        steps.append(Send(tuple(create_command(namespace, spec, target)), tolerate=ALREADY_EXISTS))
    # A new index that fails documents the old one took would silently lose them from answers.
    steps.append(AwaitBackfill(target, max_failures=status.failures if live is not None else None))
    if live is None:
        steps.append(Send(("FT.ALIASADD", status.alias, target), tolerate=ALREADY_EXISTS))
    else:
        steps.append(Send(("FT.ALIASUPDATE", status.alias, target)))
    drops = ()
    if cleanup:
        drops = tuple(([live] if live_is_ours and live else []) + [n for n in leftovers if n != target])
        steps.extend(_drop_steps(drops))
    if live is None:
        action = Action.CREATE
    elif status.drift:
        action = Action.REBUILD
    else:
        action = Action.MIGRATE
    note = (
        f"the alias pointed to {live}, which is not named by this package; it was kept"
        if (live is not None and not live_is_ours)
        else ""
    )
    return IndexPlan(status, action, target, reused=reused, drops=drops, steps=tuple(steps), note=note)


def plan_all(
    snapshot: ServerSnapshot,
    namespace: Namespace,
    specs: Sequence[IndexSpec],
    *,
    rebuild_drifted: bool = False,
    cleanup: bool = True,
) -> list[IndexPlan]:
    """Return the plan of every spec, in order (see :func:`plan_index`)."""
    return [
        plan_index(snapshot, namespace, spec, rebuild_drifted=rebuild_drifted, cleanup=cleanup)
        for spec in specs
    ]


def drop_targets(
    snapshot: ServerSnapshot, namespace: Namespace, specs: Sequence[IndexSpec]
) -> dict[str, list[str]]:
    """Return, per alias, the physical indexes a drop removes: every version of that name
    (``<ns>:idx:<name>:v<N>``, the only names this package creates). Aliases with nothing to
    drop are left out.

    :raises ForeignIndexError: If an alias points to an index of another name: something else
        created it, and dropping it could destroy data this package does not own.
    """
    targets: dict[str, list[str]] = {}
    foreign = []
    for spec in specs:
        names = list(snapshot.physical_indexes(namespace, spec))
        alias = namespace.alias(spec)
        live = snapshot.aliases.get(alias)
        if live is not None and namespace.parse_physical_index(spec, live) is None:
            foreign.append((alias, live, namespace.physical_index(spec)))
        if names:
            targets[alias] = names
    if foreign:
        raise ForeignIndexError(
            "refusing to drop: "
            + "; ".join(
                f"alias {alias} points to index {index!r}, which pynenc-redis-stack did not create "
                f"(its indexes are named like {example})"
                for alias, index, example in foreign
            )
            + ". Nothing was dropped. Detach the alias with FT.ALIASDEL (or drop that index "
            "yourself with FT.DROPINDEX if it is yours to drop), then run `index drop` again."
        )
    return targets

"""What the server holds for the indexes, read once: ``FT._LIST``, where each alias points, and
``FT.INFO`` of every physical index of this package's naming.

Status, planning and drop targets are pure functions of a :class:`ServerSnapshot`; this module
is the only one of the lifecycle that reads the server (the executor polls while it waits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.errors import is_missing_index_error
from pynenc_redis_stack.core.indexes.executor import pairs

if TYPE_CHECKING:
    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import IndexSpec


@dataclass(frozen=True)
class ServerSnapshot:
    """The server's answers about the indexes at one moment.

    :param listed: Every physical index (``FT._LIST``).
    :param aliases: Alias -> the physical index it points to (``index_name`` of ``FT.INFO
        <alias>``); an alias that does not exist is absent.
    :param infos: ``FT.INFO`` of each physical index read: this package's (by name) and
        whatever an alias points to.
    """

    listed: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    infos: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def info(self, name: str | None) -> Mapping[str, Any] | None:
        """Return ``FT.INFO`` of the physical index ``name``, or None if it was not there."""
        return None if name is None else self.infos.get(name)

    def physical_indexes(self, namespace: Namespace, spec: IndexSpec) -> tuple[str, ...]:
        """Return the physical indexes of ``spec`` on the server (this package's naming), oldest
        first."""
        parsed = {name: namespace.parse_physical_index(spec, name) for name in self.listed}
        ours = {name: version for name, version in parsed.items() if version is not None}
        return tuple(sorted(ours, key=ours.__getitem__))


def read_snapshot(client: redis.Redis, namespace: Namespace, specs: Sequence[IndexSpec]) -> ServerSnapshot:
    """Read what the server holds for ``specs``: two pipelined round trips, the second only when
    physical indexes exist that no alias points to (a migration in progress, leftovers)."""
    aliases = [namespace.alias(spec) for spec in specs]
    pipe = client.pipeline(transaction=False)
    run(pipe, "FT._LIST")
    for alias in aliases:
        run(pipe, "FT.INFO", alias)
    listed_reply, *alias_replies = pipe.execute(raise_on_error=False)
    listed = tuple(str(name) for name in _checked(listed_reply))
    resolved: dict[str, str] = {}
    infos: dict[str, dict[str, Any]] = {}
    for alias, reply in zip(aliases, alias_replies, strict=True):
        info = _info_or_none(reply)
        if info is not None:
            resolved[alias] = str(info["index_name"])
            infos[resolved[alias]] = info
    unread = [
        name
        for name in listed
        if name not in infos and any(namespace.parse_physical_index(spec, name) for spec in specs)
    ]
    if unread:
        pipe = client.pipeline(transaction=False)
        for name in unread:
            run(pipe, "FT.INFO", name)
        for name, reply in zip(unread, pipe.execute(raise_on_error=False), strict=True):
            info = _info_or_none(reply)
            if info is not None:  # dropped between the two reads: as if never listed
                infos[name] = info
    return ServerSnapshot(listed, resolved, infos)


def _checked(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply


def _info_or_none(reply: Any) -> dict[str, Any] | None:
    if isinstance(reply, redis.ResponseError) and is_missing_index_error(reply):
        return None
    return pairs(_checked(reply))

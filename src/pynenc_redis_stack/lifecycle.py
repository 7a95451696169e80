"""Index lifecycle: compare live indexes with ``schemas/`` and create what is missing.

Each index is created under a versioned physical name (``<ns>:idx:<name>:v<N>``) and queried
through a stable alias (``<ns>:<name>``), so a later schema version can be built beside the
live one and swapped in with ``FT.ALIASUPDATE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack.client import run
from pynenc_redis_stack.errors import IndexDefinitionMismatchError

if TYPE_CHECKING:
    from pynenc_redis_stack.keys import Namespace
    from pynenc_redis_stack.schema import IndexSpec

_MISSING_INDEX_WORDINGS = ("unknown index name", "no such index", "not found")
"""Server wordings of 'no such index' across RediSearch 2.8, 2.10 and Redis 8."""


class IndexState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    OUTDATED = "outdated"
    DRIFTED = "drifted"


@dataclass(frozen=True)
class IndexStatus:
    """What the server holds for one spec."""

    spec: IndexSpec
    alias: str
    live_index: str | None
    state: IndexState
    detail: str = ""


def is_missing_index_error(error: BaseException) -> bool:
    """Tell whether a server error means the index or alias does not exist."""
    message = str(error).lower()
    return isinstance(error, redis.ResponseError) and any(w in message for w in _MISSING_INDEX_WORDINGS)


def create_command(namespace: Namespace, spec: IndexSpec) -> list[str]:
    """Return the ``FT.CREATE`` command of ``spec``'s physical index."""
    prefixes = namespace.prefixes(spec)
    return [
        "FT.CREATE",
        namespace.physical_index(spec),
        "ON",
        "JSON",
        "PREFIX",
        str(len(prefixes)),
        *prefixes,
        *spec.schema_args(),
    ]


def _expected_attributes(spec: IndexSpec) -> list[tuple[str, str, str, frozenset[str]]]:
    expected = []
    for field in spec.fields:
        flags = set()
        if field.type == "tag" and field.case_sensitive:
            flags.add("CASESENSITIVE")
        if field.sortable:
            flags.add("SORTABLE")
        expected.append((field.path, field.name, field.type.upper(), frozenset(flags)))
    return expected


def _live_attributes(
    raw: list[list[Any]],
) -> list[tuple[str, str, str, frozenset[str]]]:
    live = []
    for attribute in raw:
        info: dict[str, Any] = {}
        flags = set()
        items = list(attribute)
        position = 0
        while position < len(items):
            token = items[position]
            if token in (
                "identifier",
                "attribute",
                "type",
                "SEPARATOR",
            ) and position + 1 < len(items):
                info[token] = items[position + 1]
                position += 2
                continue
            flags.add(str(token))
            position += 1
        if info.get("SEPARATOR", "") != "":
            flags.add(f"SEPARATOR={info['SEPARATOR']}")
        flags.discard("UNF")  # implied by SORTABLE on JSON since RediSearch 2.6
        live.append(
            (
                str(info.get("identifier")),
                str(info.get("attribute")),
                str(info.get("type")),
                frozenset(flags),
            )
        )
    return live


def index_status(client: redis.Redis, namespace: Namespace, spec: IndexSpec) -> IndexStatus:
    """Compare the live index behind ``spec``'s alias with the spec. Reads only."""
    alias = namespace.alias(spec)
    try:
        raw = run(client, "FT.INFO", alias)
    except redis.ResponseError as exc:
        if is_missing_index_error(exc):
            return IndexStatus(spec, alias, None, IndexState.MISSING)
        raise
    info = dict(zip(raw[::2], raw[1::2], strict=False))
    live_name = str(info["index_name"])
    if live_name != namespace.physical_index(spec):
        return IndexStatus(spec, alias, live_name, IndexState.OUTDATED, f"alias points to {live_name}")
    definition = dict(zip(info["index_definition"][::2], info["index_definition"][1::2], strict=False))
    differences = []
    if str(definition.get("key_type")) != "JSON":
        differences.append(f"key type {definition.get('key_type')} instead of JSON")
    if list(definition.get("prefixes", [])) != namespace.prefixes(spec):
        differences.append(f"prefixes {definition.get('prefixes')} instead of {namespace.prefixes(spec)}")
    live = _live_attributes(info["attributes"])
    expected = _expected_attributes(spec)
    if sorted(live) != sorted(expected):
        differences.append(f"fields {sorted(live)} instead of {sorted(expected)}")
    if differences:
        return IndexStatus(spec, alias, live_name, IndexState.DRIFTED, "; ".join(differences))
    return IndexStatus(spec, alias, live_name, IndexState.OK)


def create_index(client: redis.Redis, namespace: Namespace, spec: IndexSpec) -> None:
    """Create ``spec``'s physical index and point its alias at it; safe to run concurrently."""
    try:
        run(client, *create_command(namespace, spec))
    except redis.ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise
    try:
        run(client, "FT.ALIASADD", namespace.alias(spec), namespace.physical_index(spec))
    except redis.ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise


def ensure_indexes(
    client: redis.Redis,
    namespace: Namespace,
    specs: tuple[IndexSpec, ...],
    create_missing: bool,
) -> None:
    """Make sure every index exists and matches its spec.

    :raises IndexDefinitionMismatchError: If an index is missing (and may not be created),
        outdated or drifted; the backend never queries such an index as if it were right.
    """
    problems = []
    for spec in specs:
        status = index_status(client, namespace, spec)
        if status.state is IndexState.MISSING and create_missing:
            create_index(client, namespace, spec)
            status = index_status(client, namespace, spec)
        if status.state is not IndexState.OK:
            problems.append(f"{status.alias}: {status.state.value} {status.detail}".rstrip())
    if problems:
        raise IndexDefinitionMismatchError(
            "RediSearch indexes do not match schemas/: "
            + "; ".join(problems)
            + ". Missing indexes are created when redis_stack_create_indexes is true; an "
            "index that differs must be rebuilt from the schema files (FT.DROPINDEX without "
            "DD keeps the documents)."
        )

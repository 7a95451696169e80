"""``FT.AGGREGATE`` pipeline steps: what to ``LOAD``, ``FILTER``, ``GROUPBY`` and ``SORTBY``.

Each function returns the arguments of its steps, which :class:`~pynenc_redis_stack.core.query.Aggregate`
sends after the query string in the order given.
"""

from __future__ import annotations

from pynenc_redis_stack.core.errors import QueryError
from pynenc_redis_stack.core.query.escaping import require_unicode, string_literal, substring_form
from pynenc_redis_stack.core.schema import IndexSpec

LOAD_DOCUMENT = ["LOAD", "3", "$", "AS", "doc"]
"""Load the whole JSON document as the ``doc`` column."""

LOAD_KEY = ["LOAD", "1", "@__key"]
"""Load the Redis key of each document."""


def load_fields(*names: str) -> tuple[str, ...]:
    """Return a ``LOAD`` step for indexed attributes."""
    return ("LOAD", str(len(names)), *(f"@{n}" for n in names))


def load_paths(**columns: str) -> tuple[str, ...]:
    """Return a ``LOAD`` step for JSON paths that are not indexed, as named columns."""
    args: list[str] = []
    for column, path in columns.items():
        if not path.startswith("$."):
            raise QueryError(f"JSON path for {column!r} must start with '$.', got {path!r}")
        args.extend((path, "AS", column))
    return ("LOAD", str(len(args)), *args)


def has_value(spec: IndexSpec, name: str) -> tuple[str, ...]:
    """Return ``LOAD`` + ``FILTER`` steps keeping rows whose ``@name`` is set.

    ``ismissing()`` would need RediSearch 2.10 and ``INDEXMISSING``; this works on 2.8.
    """
    spec.field(name)
    return (*load_fields(name), "FILTER", f"exists(@{name})")


def has_path(path: str) -> tuple[str, ...]:
    """Return ``LOAD`` + ``FILTER`` steps keeping rows whose document has the JSON ``path``
    (a field no index covers)."""
    return (*load_paths(found=path), "FILTER", "exists(@found)")


def count_rows(alias: str = "count") -> tuple[str, ...]:
    """Return a ``GROUPBY 0 REDUCE COUNT`` step: one row holding the number of matches as ``alias``.

    No match gives no row at all (read it as 0).
    """
    return ("GROUPBY", "0", "REDUCE", "COUNT", "0", "AS", alias)


def group_by(*names: str) -> tuple[str, ...]:
    """Return a ``GROUPBY`` step that yields each distinct combination once."""
    return ("GROUPBY", str(len(names)), *(f"@{n}" for n in names))


def count_by(name: str, alias: str = "count", distinct: str | None = None) -> tuple[str, ...]:
    """Return a ``GROUPBY 1 @name`` step with one count per value of ``name`` as ``alias``:
    the rows of each value, or with ``distinct`` the distinct values of that field among them.

    Rows without ``name`` form no group of their own.
    """
    reducer = ("COUNT_DISTINCT", "1", f"@{distinct}") if distinct else ("COUNT", "0")
    return ("GROUPBY", "1", f"@{name}", "REDUCE", *reducer, "AS", alias)


def sorted_top(primary: str, secondary: str, count: int) -> tuple[str, ...]:
    """Return ``SORTBY`` + ``LIMIT`` steps ascending on two sortable fields, keeping the first ``count``.

    ``LIMIT``, not ``SORTBY ... MAX``: the server silently lowers ``MAX`` to
    ``MAXAGGREGATERESULTS``, which would end a page early unnoticed, while a ``LIMIT`` above
    it is refused with an error naming the maximum (see :mod:`pynenc_redis_stack.core.reads`).
    """
    return ("SORTBY", "4", f"@{primary}", "ASC", f"@{secondary}", "ASC", "LIMIT", "0", str(count))


def contains(spec: IndexSpec, name: str, substring: str) -> tuple[str, ...]:
    """Return ``LOAD`` + ``FILTER`` steps keeping rows whose ``name`` contains ``substring``.

    Compares :func:`substring_form` s: the index's schema declares the one documents store
    beside the indexed tag (``derived:``, filled in by ``codec.validated``). Literal and case-sensitive: ``*``, ``?``, ``|``, ``-`` and backslashes are
    ordinary characters, and every candidate is evaluated (no prefix-expansion limit).
    """
    if spec.field(name).type != "tag":
        raise QueryError(f"contains() needs a tag field, {name!r} is not one")
    stored = spec.derived_from(name, "substring_form")
    if substring == "":
        return ()  # every string contains the empty string
    require_unicode("substring", substring)
    needle = string_literal(substring_form(substring))
    return (
        "LOAD",
        "3",
        stored.path,
        "AS",
        stored.name,
        "FILTER",
        f"contains(@{stored.name}, {needle}) > 0",
    )

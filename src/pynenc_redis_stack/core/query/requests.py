"""Whole commands: ``FT.AGGREGATE`` and ``FT.SEARCH`` requests over one index alias, each
pinning ``DIALECT 2`` and ``TIMEOUT 0``."""

from __future__ import annotations

from dataclasses import dataclass

from pynenc_redis_stack.core.command_line import redis_cli_line
from pynenc_redis_stack.core.errors import QueryError
from pynenc_redis_stack.core.query.filters import Filter

DIALECT = "2"


@dataclass(frozen=True)
class Aggregate:
    """A complete ``FT.AGGREGATE`` request against one index alias.

    :param index: The alias queried.
    :param filter: The query clauses and their parameters.
    :param steps: Pipeline steps (``LOAD``, ``GROUPBY``, ``SORTBY``, ``FILTER``) in order.
    """

    index: str
    filter: Filter
    steps: tuple[str, ...] = ()

    def args(self, cursor_count: int | None = None) -> list[str]:
        """Return the full command; with ``cursor_count`` the reply is a cursor of that batch size."""
        # Hand-written, not redis-py's AggregateRequest: it has no TIMEOUT (we need TIMEOUT 0,
        # see the module docstring), it always puts its one LOAD before every other step (ours
        # LOAD after SORTBY/FILTER, and more than once), and its build_args() leaves PARAMS out
        # (only ft().aggregate adds them).
        args = ["FT.AGGREGATE", self.index, self.filter.query_string(), *self.steps]
        if cursor_count is not None:
            args.extend(("WITHCURSOR", "COUNT", str(cursor_count)))
        args.extend(("TIMEOUT", "0"))
        args.extend(self.filter.params_args())
        args.extend(("DIALECT", DIALECT))
        return args

    def redis_cli(self) -> str:
        """Return the command as a line to paste into ``redis-cli``."""
        return redis_cli_line(self.args())


@dataclass(frozen=True)
class Search:
    """A complete ``FT.SEARCH`` request: the first ``limit`` matches and the total count.

    Used where an answer usually fits one reply: ``FT.SEARCH`` reports the exact total
    (``DIALECT 2``), so the caller knows whether the reply is the whole answer, and with
    ``NOCONTENT`` it returns document keys without reading any document (``FT.AGGREGATE
    LOAD`` reads each JSON document, which costs most of a lookup's server time).

    :param index: The alias queried.
    :param filter: The query clauses and their parameters.
    :param limit: Matches returned at most (``LIMIT 0 <limit>``); above ``MAXSEARCHRESULTS``
        the server refuses the request (it never truncates silently).
    :param keys_only: ``NOCONTENT``: return keys, not documents.
    """

    index: str
    filter: Filter
    limit: int
    keys_only: bool = False

    def args(self) -> list[str]:
        """Return the full command."""
        # Hand-written, not redis-py's Query: Query.get_args() leaves PARAMS out (only
        # ft().search adds them).
        args = ["FT.SEARCH", self.index, self.filter.query_string()]
        if self.keys_only:
            args.append("NOCONTENT")
        args.extend(("LIMIT", "0", str(self.limit), "TIMEOUT", "0"))
        args.extend(self.filter.params_args())
        args.extend(("DIALECT", DIALECT))
        return args


@dataclass(frozen=True)
class SortedSearch:
    """A complete ``FT.SEARCH`` request for one page of matches in the order of a sortable field.

    ``offset + limit`` must stay within ``MAXSEARCHRESULTS``: past it the server returns no
    rows without an error, so callers that page deeper stream a cursor instead.

    :param index: The alias queried.
    :param filter: The query clauses and their parameters.
    :param sort_by: A sortable numeric field; pages are deterministic only if it is unique.
    :param descending: Largest values first.
    :param offset: Matches skipped.
    :param limit: Matches returned at most.
    :param keys_only: ``NOCONTENT``: return keys, not documents.
    """

    index: str
    filter: Filter
    sort_by: str
    descending: bool = False
    offset: int = 0
    limit: int = 10
    keys_only: bool = True

    def args(self) -> list[str]:
        """Return the full command."""
        spec_field = self.filter.spec.field(self.sort_by)
        if spec_field.type != "numeric" or not spec_field.sortable:
            raise QueryError(
                f"field {self.sort_by!r} of index {self.filter.spec.name!r} is not a sortable number"
            )
        args = ["FT.SEARCH", self.index, self.filter.query_string()]
        if self.keys_only:
            args.append("NOCONTENT")
        args.extend(("SORTBY", self.sort_by, "DESC" if self.descending else "ASC"))
        args.extend(("LIMIT", str(self.offset), str(self.limit), "TIMEOUT", "0"))
        args.extend(self.filter.params_args())
        args.extend(("DIALECT", DIALECT))
        return args

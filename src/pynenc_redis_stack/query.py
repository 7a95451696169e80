"""The only module that writes RediSearch query syntax.

Every value a caller supplies reaches the server in one of two ways, never spliced raw:

- tag values and numbers go through ``PARAMS`` (``@field:{$p0}``), so ids containing
  ``- . : , { } | @ * ? ( ) " ' \\`` or spaces are matched literally and cannot inject
  clauses (:func:`tag_param` doubles backslashes, which the server would unescape);
- the substring of ``get_matching_runner_contexts`` goes into an ``FT.AGGREGATE FILTER``
  expression, where ``PARAMS`` are not accepted, as :func:`string_literal` of its
  :func:`search_form`.

Field names are checked against the index spec (``schemas/``). Every request pins
``DIALECT 2`` (``PARAMS`` need it; the server default is 1) and ``TIMEOUT 0`` (the default
``ON_TIMEOUT RETURN`` policy silently returns partial results when a query runs long).

Traps avoided by construction (see docs/redisearch.md):

- contains/prefix tag queries stop at ``MAXPREFIXEXPANSIONS`` distinct values and ignore
  patterns shorter than ``MINPREFIX``: substring matching uses ``FILTER contains(...)``
  instead, which evaluates every candidate;
- ``LIMIT`` offsets stop at ``MAXSEARCHRESULTS``: unordered answers stream through a cursor
  (``WITHCURSOR``), ordered ones page by seeking on ``(ts, seq)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pynenc_redis_stack.errors import QueryError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.redis_cli import redis_cli_line
from pynenc_redis_stack.schema import IndexSpec

DIALECT = "2"
LOAD_DOCUMENT = ["LOAD", "3", "$", "AS", "doc"]
"""Load the whole JSON document as the ``doc`` column."""

LOAD_KEY = ["LOAD", "1", "@__key"]
"""Load the Redis key of each document."""


def tag_param(value: str) -> str:
    """Return the ``PARAMS`` form of a tag value.

    The server unescapes backslashes in tag parameters (``a\\\\b`` would match ``a\\b``),
    so each backslash is doubled; every other character is taken literally.

    :raises QueryError: If ``value`` holds a lone surrogate (it cannot be sent, nor stored).
    """
    _require_unicode("lookup value", value)
    return value.replace("\\", "\\\\")


def _require_unicode(what: str, value: str) -> None:
    position = lone_surrogate(value)
    if position is not None:
        raise QueryError(lone_surrogate_message(what, value, position))


# The expression language's string literals cannot carry a newline (syntax error) or two
# backslashes in a row (runs collapse to one), and PARAMS are not accepted there. Substring
# search therefore runs over a search form of the value in which those characters never
# occur: each character of SEARCH_ESCAPED becomes SEARCH_ESCAPE plus a fixed-width code over
# SEARCH_CODE_DIGITS. The escape and the code digits are themselves escaped, so an encoded
# needle can only match an encoded haystack at character boundaries: ``needle in value``
# exactly when ``search_form(needle) in search_form(value)``.
SEARCH_ESCAPE = "~"
SEARCH_CODE_DIGITS = "^`"
SEARCH_CODE_WIDTH = 6
SEARCH_ESCAPED = SEARCH_ESCAPE + SEARCH_CODE_DIGITS + "\\" + "".join(map(chr, range(32))) + "\x7f"


def _search_code(index: int) -> str:
    digits = []
    for _ in range(SEARCH_CODE_WIDTH):
        index, digit = divmod(index, len(SEARCH_CODE_DIGITS))
        digits.append(SEARCH_CODE_DIGITS[digit])
    return SEARCH_ESCAPE + "".join(reversed(digits))


_SEARCH_TABLE = str.maketrans({char: _search_code(i) for i, char in enumerate(SEARCH_ESCAPED)})


def search_form(value: str) -> str:
    """Return the form of ``value`` that substring search compares (see SEARCH_ESCAPED)."""
    return value.translate(_SEARCH_TABLE)


def string_literal(value: str) -> str:
    """Return ``value`` as a double-quoted literal of the aggregation expression language.

    Only for values in :func:`search_form`, which holds no backslash or control character;
    the double quote is escaped.
    """
    if any(char in value for char in "\\\n\r"):
        raise QueryError("string literals cannot carry backslashes or line breaks; use search_form()")
    return '"' + value.replace('"', '\\"') + '"'


@dataclass
class Filter:
    """A conjunction of clauses over one index; renders to a query string plus ``PARAMS``.

    A filter with an empty tag value can match nothing (empty strings are never indexed), so
    it is marked :attr:`matches_nothing` and never sent.
    """

    spec: IndexSpec
    clauses: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    matches_nothing: bool = False
    shape_params: frozenset[str] = frozenset()
    """Parameters that belong to the query's shape (the app id), not to one call's values:
    a prepared query keeps them (see :class:`Parametrized`)."""

    def _param(self, value: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def _field(self, name: str, expected: Literal["tag", "numeric"]) -> str:
        spec_field = self.spec.field(name)
        if spec_field.type != expected:
            raise QueryError(
                f"field {name!r} of index {self.spec.name!r} is {spec_field.type}, not {expected}"
            )
        if not spec_field.lookup:
            raise QueryError(
                f"field {name!r} of index {self.spec.name!r} is declared 'lookup: false': it may "
                "hold empty strings, which no query can find; remove that attribute from the "
                "schema file (empty values are then refused at write time) to query it"
            )
        return name

    def tag(self, name: str, value: str) -> Filter:
        """Require ``@name`` to equal ``value`` exactly (case-sensitive)."""
        field_name = self._field(name, "tag")
        if not isinstance(value, str):
            raise QueryError(f"value for {name!r} must be a string, got {type(value).__name__}")
        if value == "":
            self.matches_nothing = True
            return self
        self.clauses.append(f"@{field_name}:{{{self._param(tag_param(value))}}}")
        return self

    def between(self, name: str, low: int, high: int) -> Filter:
        """Require ``low <= @name <= high``."""
        field_name = self._field(name, "numeric")
        if low > high:
            self.matches_nothing = True
            return self
        self.clauses.append(f"@{field_name}:[{self._param(str(low))} {self._param(str(high))}]")
        return self

    def after(self, primary: str, secondary: str, position: tuple[int, int]) -> Filter:
        """Require ``(@primary, @secondary)`` to sort strictly after ``position``."""
        first = self._field(primary, "numeric")
        second = self._field(secondary, "numeric")
        p, s = self._param(str(position[0])), self._param(str(position[1]))
        self.clauses.append(f"(@{first}:[({p} +inf] | (@{first}:[{p} {p}] @{second}:[({s} +inf]))")
        return self

    def tag_in(self, name: str, values: Iterable[str]) -> Filter:
        """Require ``@name`` to equal one of ``values`` exactly (``(@name:{$p0 | $p1 ...})``)."""
        return self.any_tag_in((name,), values)

    def any_tag_in(self, names: Sequence[str], values: Iterable[str]) -> Filter:
        """Require at least one of the tag fields ``names`` to equal one of ``values``.

        One set of parameters serves every field: ``(@a:{$p0 | $p1} | @b:{$p0 | $p1})``. Empty
        values can never match and are dropped; with none left the filter matches nothing.
        """
        fields = [self._field(name, "tag") for name in names]
        params = self._tag_params(values)
        if not fields or not params:
            self.matches_nothing = True
            return self
        union = " | ".join(params)
        self.clauses.append("(" + " | ".join(f"@{f}:{{{union}}}" for f in fields) + ")")
        return self

    def at_most(self, name: str, bound: int) -> Filter:
        """Require ``@name <= bound``."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[-inf {self._param(str(bound))}]")
        return self

    def at_least(self, name: str, bound: int) -> Filter:
        """Require ``@name >= bound``."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[{self._param(str(bound))} +inf]")
        return self

    def either(self, *builds: Callable[[Filter], Filter]) -> Filter:
        """Require that the clauses of at least one of ``builds`` all hold: ``((a b) | (c))``.

        Alternatives that match nothing are dropped; with none left the filter matches nothing.
        """
        alternatives = []
        for build in builds:
            inner = Filter(self.spec, params=self.params)  # shares the $p numbering
            build(inner)
            if inner.matches_nothing:
                continue
            alternatives.append("(" + (" ".join(inner.clauses) or "*") + ")")
        if not alternatives:
            self.matches_nothing = True
            return self
        self.clauses.append("(" + " | ".join(alternatives) + ")")
        return self

    def before(self, name: str, bound: int) -> Filter:
        """Require ``@name < bound`` (documents without the field do not match)."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[-inf ({self._param(str(bound))}]")
        return self

    def excluding(self, build: Callable[[Filter], Filter]) -> Filter:
        """Require that the clauses ``build`` adds do not all hold: ``-(clause clause ...)``.

        Example: ``f.excluding(lambda g: g.before("status_ts", t).tag_in("status", finals))``
        keeps what is not (old and final), documents without those fields included.
        """
        inner = Filter(self.spec, params=self.params)  # shares the $p numbering
        build(inner)
        if inner.matches_nothing:
            return self  # excluding nothing
        if not inner.clauses:
            self.matches_nothing = True  # excluding everything
            return self
        self.clauses.append("-(" + " ".join(inner.clauses) + ")")
        return self

    def _tag_params(self, values: Iterable[str]) -> list[str]:
        names = []
        for value in dict.fromkeys(values):  # ordered and without repeats
            if not isinstance(value, str):
                raise QueryError(f"tag values must be strings, got {type(value).__name__}")
            if value:
                names.append(self._param(tag_param(value)))
        return names

    def copy(self) -> Filter:
        """Return an independent copy (further clauses leave this filter unchanged)."""
        return Filter(
            self.spec, list(self.clauses), dict(self.params), self.matches_nothing, self.shape_params
        )

    def query_string(self) -> str:
        """Return the query string (``*`` when there is no clause)."""
        return " ".join(self.clauses) if self.clauses else "*"

    def params_args(self) -> list[str]:
        """Return the ``PARAMS`` arguments (empty when there are none)."""
        if not self.params:
            return []
        args = ["PARAMS", str(2 * len(self.params))]
        for name, value in self.params.items():
            args.extend((name, value))
        return args


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
        # (only ft().aggregate adds them) while prepared scripts need the whole argument list.
        args = ["FT.AGGREGATE", self.index, self.filter.query_string(), *self.steps]
        if cursor_count is not None:
            args.extend(("WITHCURSOR", "COUNT", str(cursor_count)))
        args.extend(("TIMEOUT", "0"))
        args.extend(self.filter.params_args())
        args.extend(("DIALECT", DIALECT))
        return args

    def parametrized(self) -> Parametrized:
        """Return the command split into fixed arguments and parameter values."""
        return Parametrized.of(self.args(), self.filter)

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
        # ft().search adds them), and prepared scripts send the whole argument list from Lua
        # with the values split out (parametrized()).
        args = ["FT.SEARCH", self.index, self.filter.query_string()]
        if self.keys_only:
            args.append("NOCONTENT")
        args.extend(("LIMIT", "0", str(self.limit), "TIMEOUT", "0"))
        args.extend(self.filter.params_args())
        args.extend(("DIALECT", DIALECT))
        return args

    def parametrized(self) -> Parametrized:
        """Return the command split into fixed arguments and parameter values."""
        return Parametrized.of(self.args(), self.filter)


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


@dataclass(frozen=True)
class Parametrized:
    """A command split into what is fixed for a query's shape and what varies per call.

    ``template`` holds the fixed arguments, with an ``int`` k where the k-th of ``values`` goes
    (the ``PARAMS`` values, except the filter's ``shape_params``). Requests of the same shape
    share a template, which :func:`pynenc_redis_stack.scripts.lua_call` turns into a server-side script once; each call
    then sends only its values (see :mod:`pynenc_redis_stack.search`).
    """

    template: tuple[str | int, ...]
    values: tuple[str, ...]

    @classmethod
    def of(cls, args: list[str], request_filter: Filter) -> Parametrized:
        template: list[str | int] = list(args)
        values: list[str] = []
        if request_filter.params:
            first = args.index("PARAMS") + 2  # PARAMS <count> <name> <value> <name> <value> ...
            for position in range(first, first + 2 * len(request_filter.params), 2):
                if args[position] not in request_filter.shape_params:
                    template[position + 1] = len(values)
                    values.append(args[position + 1])
        return cls(tuple(template), tuple(values))


def where(spec: IndexSpec, app_id: str, **tags: str) -> Filter:
    """Start a filter scoped to one app, with exact tag matches on ``tags``."""
    result = Filter(spec).tag("app_id", app_id)
    result.shape_params = frozenset(result.params)
    for name, value in tags.items():
        result.tag(name, value)
    return result


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


def count_rows(alias: str = "count") -> tuple[str, ...]:
    """Return a ``GROUPBY 0 REDUCE COUNT`` step: one row holding the number of matches as ``alias``.

    No match gives no row at all (read it as 0).
    """
    return ("GROUPBY", "0", "REDUCE", "COUNT", "0", "AS", alias)


def group_by(*names: str) -> tuple[str, ...]:
    """Return a ``GROUPBY`` step that yields each distinct combination once."""
    return ("GROUPBY", str(len(names)), *(f"@{n}" for n in names))


def sorted_top(primary: str, secondary: str, count: int) -> tuple[str, ...]:
    """Return ``SORTBY`` + ``LIMIT`` steps ascending on two sortable fields, keeping the first ``count``.

    ``LIMIT``, not ``SORTBY ... MAX``: the server silently lowers ``MAX`` to
    ``MAXAGGREGATERESULTS``, which would end a page early unnoticed, while a ``LIMIT`` above
    it is refused with an error naming the maximum (see :mod:`pynenc_redis_stack.search`).
    """
    return ("SORTBY", "4", f"@{primary}", "ASC", f"@{secondary}", "ASC", "LIMIT", "0", str(count))


def contains(spec: IndexSpec, name: str, substring: str) -> tuple[str, ...]:
    """Return ``LOAD`` + ``FILTER`` steps keeping rows whose ``name`` contains ``substring``.

    Compares :func:`search_form` s, which documents store as ``<name>_search`` beside the
    indexed tag. Literal and case-sensitive: ``*``, ``?``, ``|``, ``-`` and backslashes are
    ordinary characters, and every candidate is evaluated (no prefix-expansion limit).
    """
    if spec.field(name).type != "tag":
        raise QueryError(f"contains() needs a tag field, {name!r} is not one")
    if substring == "":
        return ()  # every string contains the empty string
    _require_unicode("substring", substring)
    column = f"{name}_search"
    needle = string_literal(search_form(substring))
    return (
        "LOAD",
        "3",
        f"$.{column}",
        "AS",
        column,
        "FILTER",
        f"contains(@{column}, {needle}) > 0",
    )

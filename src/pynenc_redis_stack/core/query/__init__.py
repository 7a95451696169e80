"""The only place that writes RediSearch query syntax.

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

One module per layer, each using only the ones above it; callers import this package
(``from pynenc_redis_stack.core import query``), not the modules:

- :mod:`.escaping`: how a value is written so the server reads it literally (the only
  escaping there is);
- :mod:`.filters`: the query string, a conjunction of clauses with its ``PARAMS``;
- :mod:`.steps`: ``FT.AGGREGATE`` pipeline steps (``LOAD``, ``FILTER``, ``GROUPBY``, ``SORTBY``);
- :mod:`.requests`: whole commands (``FT.AGGREGATE``, ``FT.SEARCH``).
"""

from pynenc_redis_stack.core.query.escaping import search_form, string_literal, tag_param
from pynenc_redis_stack.core.query.filters import Filter, where
from pynenc_redis_stack.core.query.requests import DIALECT, Aggregate, Search, SortedSearch
from pynenc_redis_stack.core.query.steps import (
    LOAD_DOCUMENT,
    LOAD_KEY,
    contains,
    count_by,
    count_rows,
    group_by,
    has_path,
    has_value,
    load_fields,
    load_paths,
    sorted_top,
)

__all__ = [
    "DIALECT",
    "LOAD_DOCUMENT",
    "LOAD_KEY",
    "Aggregate",
    "Filter",
    "Search",
    "SortedSearch",
    "contains",
    "count_by",
    "count_rows",
    "group_by",
    "has_path",
    "has_value",
    "load_fields",
    "load_paths",
    "search_form",
    "sorted_top",
    "string_literal",
    "tag_param",
    "where",
]

"""The only place that writes RediSearch query syntax.

No caller value is ever spliced raw: tag values and numbers travel as ``PARAMS``
(:func:`tag_param`), a substring as :func:`string_literal` of its :func:`substring_form`. Field
names are checked against the index spec (``schemas/``); every request pins ``DIALECT 2`` and
``TIMEOUT 0``. The server limits this works around (prefix expansion, ``MAXSEARCHRESULTS``,
partial answers on timeout): docs/redisearch.md.

One module per layer, each using only the ones above it; callers import this package
(``from pynenc_redis_stack.core import query``), not the modules: :mod:`.escaping` (how a value
is written so the server reads it literally), :mod:`.filters` (the query string and its
``PARAMS``), :mod:`.steps` (``FT.AGGREGATE`` steps), :mod:`.requests` (whole commands).
"""

from pynenc_redis_stack.core.query.escaping import string_literal, substring_form, tag_param
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
    "substring_form",
    "sorted_top",
    "string_literal",
    "tag_param",
    "where",
]

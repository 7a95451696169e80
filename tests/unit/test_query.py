"""The query module renders values as PARAMS or escaped literals, never as raw syntax."""

from __future__ import annotations

import pytest

from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.errors import QueryError, SchemaError
from pynenc_redis_stack.core.schema import load_schemas

ADVERSARIAL = [
    "a-b",
    "a.b:c",
    "x} | @status:{failed",
    "a|b",
    "{}",
    '"q"',
    "back\\slash",
    "sp ace",
    "日本",
    "*",
    "?",
]


@pytest.mark.parametrize("value", ADVERSARIAL)
def test_tag_values_travel_as_params(value: str) -> None:
    spec = load_schemas().invocations
    request = query.Aggregate("pynenc:invocations", query.where(spec, "app", parent_invocation_id=value))
    args = request.args()
    assert args[2] == "@app_id:{$p0} @parent_invocation_id:{$p1}"
    assert args[-6:] == ["p0", "app", "p1", value.replace("\\", "\\\\"), "DIALECT", "2"]
    assert ["TIMEOUT", "0"] == args[args.index("TIMEOUT") : args.index("TIMEOUT") + 2]


@pytest.mark.parametrize(
    ("value", "literal"),
    [("abc", '"abc"'), ('a"b', '"a\\"b"'), ("*?|-'", '"*?|-\'"'), ("日本 x", '"日本 x"')],
)
def test_string_literal_escapes_the_quote(value: str, literal: str) -> None:
    assert query.string_literal(value) == literal


@pytest.mark.parametrize("value", ["a\\b", "a\nb", "\r"])
def test_string_literal_refuses_what_the_server_cannot_parse(value: str) -> None:
    with pytest.raises(QueryError, match="substring_form"):
        query.string_literal(value)


@pytest.mark.parametrize("value", ["a\\b", "a\\\\b", "~", "^`", "a\nb", "\x00", "\x7f", "x" * 300])
def test_substring_form_has_no_unparsable_character(value: str) -> None:
    form = query.substring_form(value)
    assert "\\" not in form and "\n" not in form and "\r" not in form
    query.string_literal(form)


@pytest.mark.parametrize(
    ("needle", "haystack", "expected"),
    [
        ("\\", "a\\b", True),
        ("\\\\", "a\\b", False),
        ("^", "~", False),
        ("`", "\\", False),
        ("~", "a~b", True),
        ("b\nc", "ab\ncd", True),
        ("^^", "\x00", False),
    ],
)
def test_substring_form_preserves_substring_relation(needle: str, haystack: str, expected: bool) -> None:
    assert (needle in haystack) is expected
    assert (query.substring_form(needle) in query.substring_form(haystack)) is expected


def test_contains_is_a_filter_expression_and_empty_matches_all() -> None:
    spec = load_schemas().runner_contexts
    assert query.contains(spec, "runner_id", 'w"1') == (
        "LOAD", "3", "$.runner_id_search", "AS", "runner_id_search",
        "FILTER", 'contains(@runner_id_search, "w\\"1") > 0',
    )  # fmt: skip
    assert query.contains(spec, "runner_id", "") == ()


def test_empty_tag_matches_nothing_and_is_never_sent() -> None:
    spec = load_schemas().invocations
    assert query.where(spec, "app", parent_event_id="").matches_nothing


def test_unknown_or_wrong_typed_fields_are_refused() -> None:
    spec = load_schemas().invocations
    with pytest.raises(SchemaError, match="no field 'nope'"):
        query.where(spec, "app", nope="x")
    with pytest.raises(QueryError, match="numeric"):
        query.Filter(spec).between("status", 1, 2)
    with pytest.raises(QueryError, match="must be a string"):
        query.Filter(spec).tag("status", 3)  # type: ignore[arg-type]


def test_seek_clause_orders_by_two_fields() -> None:
    spec = load_schemas().history
    request_filter = query.where(spec, "app").between("ts", 10, 20).after("ts", "seq", (15, 7))
    assert request_filter.query_string() == (
        "@app_id:{$p0} @ts:[$p1 $p2] (@ts:[($p3 +inf] | (@ts:[$p3 $p3] @seq:[($p4 +inf]))"
    )
    assert request_filter.params == {"p0": "app", "p1": "10", "p2": "20", "p3": "15", "p4": "7"}


def test_cursor_request_shape() -> None:
    spec = load_schemas().invocations
    request = query.Aggregate("idx", query.where(spec, "a"), query.load_fields("invocation_id"))
    assert request.args(cursor_count=500) == [
        "FT.AGGREGATE", "idx", "@app_id:{$p0}", "LOAD", "1", "@invocation_id",
        "WITHCURSOR", "COUNT", "500", "TIMEOUT", "0", "PARAMS", "2", "p0", "a", "DIALECT", "2",
    ]  # fmt: skip


def test_backend_builds_no_query_syntax_and_never_scans() -> None:
    """Query syntax lives in query/; the backend uses no keyspace scans or hand-kept sets."""
    from pathlib import Path

    import pynenc_redis_stack.state_backend.backend as backend

    source = Path(backend.__file__).read_text(encoding="utf-8")
    for forbidden in ('"FILTER"', '"LOAD"', '"SORTBY"', '"GROUPBY"', "@app_id", "DIALECT"):
        assert forbidden not in source, forbidden
    for call in ("scan", "keys(", "smembers", "sadd", "zadd", "zrange"):
        assert f".{call}" not in source.lower(), call
    assert "KEYS" not in source.replace("keys", "")


def test_no_module_outside_query_writes_query_syntax() -> None:
    """Every query string and pipeline step of the package is built in query/, the one place
    that escapes values; the other modules only pass values and field names to it."""
    from pathlib import Path

    import pynenc_redis_stack

    package = Path(pynenc_redis_stack.__file__).parent
    modules = [path for path in package.rglob("*.py") if path.parent.name != "query"]
    assert len(modules) > 40
    for path in modules:
        source = path.read_text(encoding="utf-8")
        for forbidden in ('"FILTER"', '"SORTBY"', '"GROUPBY"', '"PARAMS"', "@app_id", "DIALECT"):
            assert forbidden not in source, (path.relative_to(package), forbidden)


def test_load_paths_and_has_value() -> None:
    spec = load_schemas().invocations
    assert query.load_paths(m="$.a", f="$.b") == ("LOAD", "6", "$.a", "AS", "m", "$.b", "AS", "f")
    with pytest.raises(QueryError):
        query.load_paths(m="a")
    assert query.has_value(spec, "workflow_id") == (
        "LOAD",
        "1",
        "@workflow_id",
        "FILTER",
        "exists(@workflow_id)",
    )


def test_a_field_declared_without_lookup_cannot_be_queried() -> None:
    """It may hold '' (stored, never indexed as a value): a query on it would miss those."""
    with pytest.raises(QueryError, match="'hostname' of index 'runner-contexts' is declared 'lookup: false'"):
        query.where(load_schemas().runner_contexts, "app", hostname="h")


def test_excluding_negates_a_conjunction_with_shared_parameters() -> None:
    spec = load_schemas().invocations
    f = query.where(spec, "a").excluding(
        lambda g: g.before("status_ts", 5).tag_in("status", ["success", "failed"])
    )
    assert f.query_string() == "@app_id:{$p0} -(@status_ts:[-inf ($p1] (@status:{$p2 | $p3}))"
    assert f.params == {"p0": "a", "p1": "5", "p2": "success", "p3": "failed"}
    assert (
        query.where(spec, "a").excluding(lambda g: g.tag_in("status", [])).query_string() == "@app_id:{$p0}"
    )
    assert query.where(spec, "a").excluding(lambda g: g).matches_nothing


def test_orchestrator_builds_no_query_syntax_and_never_scans() -> None:
    """The orchestrator's modules, like the backend, leave query syntax to query/ (its Lua
    scripts receive the commands query/ rendered)."""
    from pathlib import Path

    import pynenc_redis_stack.orchestrator as orchestrator

    for module in ("orchestrator.py", "blocking.py", "atomic_services.py", "store.py"):
        source = (Path(orchestrator.__file__).parent / module).read_text(encoding="utf-8")
        for forbidden in ('"FILTER"', '"LOAD"', '"SORTBY"', '"GROUPBY"', "@app_id", "DIALECT", '"FT.'):
            assert forbidden not in source, (module, forbidden)
        for call in ("scan", "keys(", "smembers", "sadd", "zadd", "zrange"):
            assert f".{call}" not in source.lower(), (module, call)


def test_numeric_bounds_alternatives_and_sorted_pages_render_values_as_params() -> None:
    from pynenc_redis_stack.core.schema import OrchestratorSchemas

    spec = OrchestratorSchemas.load().executions
    request_filter = (
        query.where(spec, "app")
        .at_most("start_ts", 20)
        .either(
            lambda ended: ended.at_least("end_ts", 10),
            lambda running: running.tag("status", "x} | @status:{y").at_least("start_ts", 10),
        )
    )
    page = query.SortedSearch(
        "pynenc:atomic-service-executions", request_filter, "start_ts", descending=True, limit=5
    )
    args = page.args()
    assert args[2] == (
        "@app_id:{$p0} @start_ts:[-inf $p1] ((@end_ts:[$p2 +inf]) | (@status:{$p3} @start_ts:[$p4 +inf]))"
    )
    assert args[3:10] == ["NOCONTENT", "SORTBY", "start_ts", "DESC", "LIMIT", "0", "5"]
    assert args[args.index("PARAMS") :] == [
        "PARAMS", "10", "p0", "app", "p1", "20", "p2", "10", "p3", "x} | @status:{y", "p4", "10", "DIALECT", "2",
    ]  # fmt: skip
    nothing = query.where(spec, "app").either(lambda g: g.tag("status", ""))
    assert nothing.matches_nothing
    with pytest.raises(QueryError, match="not a sortable number"):
        query.SortedSearch("alias", query.where(spec, "app"), "duration_us").args()

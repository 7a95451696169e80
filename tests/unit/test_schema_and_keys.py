"""Schema files load into specs; keys and index names come from one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.crc import key_slot

from pynenc_redis_stack.core import codec, query
from pynenc_redis_stack.core.errors import SchemaError
from pynenc_redis_stack.core.indexes import create_command
from pynenc_redis_stack.core.keys import Namespace, encode_segment, group_by_slot, hash_tag
from pynenc_redis_stack.core.schema import (
    SCHEMA_SETS,
    IndexSpec,
    OrchestratorSchemas,
    TriggerSchemas,
    all_specs,
    load_schema_set,
    load_schemas,
    schema_dir,
)


def test_every_schema_file_loads_and_every_index_filters_by_app() -> None:
    schemas = load_schemas()
    names = {spec.name for spec in schemas.all()}
    assert names == {
        "invocations",
        "history",
        "runner-contexts",
        "workflow-runs",
        "workflow-sub-invocations",
        "app-infos",
        "payloads",
    }
    assert sorted(p.stem for p in schema_dir().glob("*.yaml")) == sorted(
        [
            "invocations",
            "history",
            "runner_contexts",
            "workflow_runs",
            "workflow_sub_invocations",
            "app_infos",
            "payloads",
            "orchestrator_invocations",
            "orchestrator_waits",
            "runner_heartbeats",
            "atomic_service_executions",
            "trigger_events",
            "trigger_runs",
            "trigger_definitions",
            "trigger_conditions",
        ]
    )
    for spec in (*schemas.all(), *OrchestratorSchemas.load().all(), *TriggerSchemas.load().all()):
        assert spec.field("app_id").type == "tag"


def test_one_registry_holds_every_schema_file_once() -> None:
    """``index status/migrate/drop``, prune and purge cover ``all_specs()``: a schema file that
    no set of :data:`SCHEMA_SETS` loads would be an index nothing creates, migrates or drops."""
    specs = all_specs()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    assert len(specs) == len(list(schema_dir().glob("*.yaml")))
    assert SCHEMA_SETS[:2] == (type(load_schemas()), OrchestratorSchemas)
    assert specs[:7] == load_schemas().all()
    orchestrator = load_schema_set(OrchestratorSchemas)
    assert specs[7:11] == orchestrator.all()
    assert [spec.name for spec in orchestrator.all()] == [
        "orchestrator-invocations",
        "orchestrator-waits",
        "runner-heartbeats",
        "atomic-service-executions",
    ]
    assert load_schema_set(OrchestratorSchemas) is orchestrator  # loaded once


def test_a_schema_set_reports_a_missing_file(tmp_path: Path) -> None:
    for source in schema_dir().glob("*.yaml"):
        if source.name != "orchestrator_waits.yaml":
            (tmp_path / source.name).write_text(source.read_text())
    with pytest.raises(SchemaError, match="orchestrator_waits.yaml is missing"):
        OrchestratorSchemas.load(tmp_path)
    assert len(load_schemas.__wrapped__(tmp_path).all()) == 7


def test_payloads_are_never_indexed() -> None:
    indexed = {field.name for spec in load_schemas().all() for field in spec.fields}
    assert not indexed & {"serialized_arguments", "value", "status_record", "context", "info"}


def test_create_command_has_no_tag_separator_and_is_case_sensitive() -> None:
    spec = load_schemas().invocations
    command = create_command(Namespace("pynenc"), spec)
    assert command[:7] == [
        "FT.CREATE",
        "pynenc:idx:invocations:v1",
        "ON",
        "JSON",
        "PREFIX",
        "1",
        "pynenc:invocation:",
    ]
    assert "SEPARATOR" not in command
    assert command[command.index("$.parent_invocation_id") : command.index("$.parent_invocation_id") + 5] == [
        "$.parent_invocation_id",
        "AS",
        "parent_invocation_id",
        "TAG",
        "CASESENSITIVE",
    ]
    assert command[-4:] == ["AS", "status_ts", "NUMERIC", "SORTABLE"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "version": 1,
                "index": {"name": "x", "prefixes": ["x"]},
                "fields": [{"name": "a", "type": "text"}],
            },
            "unknown type",
        ),
        ({"version": 0, "index": {"name": "x", "prefixes": ["x"]}, "fields": []}, "version"),
        ({"version": 1, "index": {"name": "x", "prefixes": []}, "fields": []}, "prefixes"),
        (
            {
                "version": 1,
                "index": {"name": "x", "prefixes": ["x"]},
                "fields": [{"name": "a", "type": "tag"}],
            },
            "app_id",
        ),
        (
            {
                "version": 1,
                "index": {"name": "x", "prefixes": ["x"]},
                "fields": [{"name": "app_id", "type": "tag"}] * 2,
            },
            "duplicate",
        ),
        ({"index": {"name": "x", "prefixes": ["x"]}, "fields": []}, "missing key"),
        (
            {
                "version": 1,
                "index": {"name": "x", "prefixes": ["x"]},
                "fields": [{"name": "app_id", "type": "tag", "attrs": {"separator": ","}}],
            },
            "unknown attrs",
        ),
    ],
)
def test_invalid_schema_is_refused_with_a_message(data: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        IndexSpec.from_dict(data)


def test_missing_schema_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="invocations.yaml"):
        load_schemas.__wrapped__(tmp_path)


def test_invalid_fields_names_wrong_types() -> None:
    spec = load_schemas().invocations
    problems = spec.invalid_fields(
        {"app_id": "a", "invocation_id": 3, "status_ts": "soon", "parent_event_id": ""}
    )
    assert problems == [
        "invocation_id=3 (expected a non-empty string without NUL (looked up by value; '' cannot be) or None)",
        "parent_event_id='' (expected a non-empty string without NUL (looked up by value; '' cannot be) or None)",
        "status_ts='soon' (expected a number or None)",
    ]


def test_empty_strings_are_refused_only_in_fields_looked_up_by_value() -> None:
    """'' cannot be queried without INDEXEMPTY (RediSearch 2.10 only): refused where the backend
    looks a value up, stored where it never does."""
    schemas = load_schemas()
    contexts = schemas.runner_contexts
    document = {"app_id": "a", "runner_id": "r", "parent_runner_id": "", "runner_cls": "", "hostname": ""}
    assert contexts.invalid_fields(document) == []
    assert contexts.invalid_fields({**document, "hostname": "h\x00"}) == [
        "hostname='h\\x00' (expected a string without NUL or None)"
    ]
    assert contexts.invalid_fields({**document, "runner_id": ""}) != []
    not_looked_up = {
        (spec.name, field.name) for spec in schemas.all() for field in spec.fields if not field.lookup
    }
    assert not_looked_up == {
        ("invocations", "call_id_key"),
        ("history", "status"),
        ("history", "runner_context_id"),
        ("runner-contexts", "parent_runner_id"),
        ("runner-contexts", "runner_cls"),
        ("runner-contexts", "hostname"),
        ("workflow-runs", "parent_workflow_id"),
    }


@pytest.mark.parametrize("app_id", ["app", "app1", "a:b", "a%3Ab", "a*", "a?c", "a\\c", "日本", "a b"])
def test_keys_start_with_the_entity_prefix_and_keep_apps_apart(app_id: str) -> None:
    namespace = Namespace("pynenc")
    keys = namespace.for_app(app_id)
    key = keys.invocation("x:y")
    assert key.startswith("pynenc:invocation:")
    assert key.split(":")[2] == encode_segment(app_id)
    assert "" not in key.split(":")


def test_composite_keys_cannot_collide() -> None:
    keys = Namespace("pynenc").for_app("app")
    assert keys.workflow_sub_invocation("a:b", "c") != keys.workflow_sub_invocation("a", "b:c")
    assert Namespace("pynenc").for_app("a:b").invocation("c") != Namespace("pynenc").for_app("a").invocation(
        "b:c"
    )
    assert Namespace("pynenc").for_app("a%3Ab").invocation("c") != Namespace("pynenc").for_app(
        "a:b"
    ).invocation("c")


def test_index_names_and_aliases() -> None:
    namespace = Namespace("prod-eu")
    spec = load_schemas().history
    assert namespace.alias(spec) == "prod-eu:history"
    assert namespace.physical_index(spec) == f"prod-eu:idx:history:v{spec.version}"
    assert namespace.prefixes(spec) == ["prod-eu:history:"]


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "a*"])
def test_bad_namespace_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        Namespace(bad)


@pytest.mark.parametrize("invocation_id", ["x:y", "a%3Ab", "{x}|y", "日本 z", "a\\c"])
def test_orchestrator_keys_give_back_their_ids(invocation_id: str) -> None:
    keys = Namespace("pynenc").for_app("a:b")
    key = keys.orchestrator_invocation(invocation_id)
    assert key.startswith("pynenc:orchestrator-invocation:a%3Ab:")
    assert keys.orchestrator_invocation_ids_of([key]) == [invocation_id]
    assert keys.orchestrator_wait("w:1", "w:2").split(":")[3:] == ["{w%3A1}", "w%3A2"]
    assert Namespace("pynenc").for_app("a").orchestrator_invocation(invocation_id) != key


@pytest.mark.parametrize(
    ("app_id", "tag"),
    [
        ("orders", "{orders}"),
        ("a{b}c", "{a%7Bb%7Dc}"),
        ("}", "{%7D}"),
        ("a:b%", "{a%3Ab%25}"),
    ],
)
def test_broker_keys_carry_the_app_as_their_only_hash_tag(app_id: str, tag: str) -> None:
    """Redis hashes the text between the first '{' and the next '}': with the app's braces
    escaped that is exactly the app, for every broker key of it."""
    keys = Namespace("ns").for_app(app_id)
    for key in (keys.broker_queue("default"), keys.broker_queues(), keys.broker_seq(), keys.broker_taken()):
        start = key.index("{")
        assert key[start : key.index("}", start) + 1] == tag
    assert keys.broker_queue("q.1-x") == f"ns:broker-queue:{tag}:q.1-x"


def test_broker_and_client_data_keys_of_look_alike_apps_differ() -> None:
    apps = ["a{b", "a%7Bb", "a:b", "a%3Ab", "a}b"]
    queue_keys = {Namespace("ns").for_app(app).broker_queue("default") for app in apps}
    data_keys = {Namespace("ns").for_app(app).client_data() for app in apps}
    assert len(queue_keys) == len(data_keys) == len(apps)


@pytest.mark.parametrize("event_id", ["x:y", "a%3Ab", "{x}|y", "日本 z", "a\\c", ""])
def test_trigger_keys_give_back_their_ids_and_keep_apps_apart(event_id: str) -> None:
    keys = Namespace("pynenc").for_app("a:b")
    key = keys.trigger_event(event_id)
    assert key.startswith("pynenc:trigger-event:a%3Ab:")
    assert keys.trigger_event_ids_of([key]) == [event_id]
    assert keys.trigger_condition("c:1") == "pynenc:trigger-condition:a%3Ab:{c%3A1}"
    assert keys.trigger_definition("t:1") == "pynenc:trigger-definition:a%3Ab:{t%3A1}"
    other = Namespace("pynenc").for_app("a%3Ab")
    per_app = ["trigger_valid_conditions", "trigger_cron", "trigger_run_claims"]
    per_id = ["trigger_run", "trigger_event", "trigger_definition", "trigger_condition"]
    mine = {getattr(keys, name)() for name in per_app} | {getattr(keys, name)(event_id) for name in per_id}
    theirs = {getattr(other, name)() for name in per_app} | {
        getattr(other, name)(event_id) for name in per_id
    }
    assert len(mine) == len(per_app) + len(per_id)
    assert not mine & theirs
    assert all(k.startswith("pynenc:trigger-") for k in mine)


def _with_derived(*entries: dict[str, object]) -> dict[str, object]:
    return {
        "version": 1,
        "index": {"name": "x", "prefixes": ["x"]},
        "fields": [{"name": "app_id", "type": "tag"}, {"name": "n", "type": "numeric"}],
        "derived": list(entries),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _with_derived({"name": "a_search", "from": "nope", "form": "substring_form"}),
            "'nope', which is no tag",
        ),
        (_with_derived({"name": "n_search", "from": "n", "form": "substring_form"}), "'n', which is no tag"),
        (_with_derived({"name": "a_search", "from": "app_id", "form": "upper"}), "unknown form"),
        (_with_derived({"name": "n", "from": "app_id", "form": "substring_form"}), "duplicate field 'n'"),
        (_with_derived({"from": "app_id", "form": "substring_form"}), "needs a name"),
    ],
)
def test_invalid_derived_entries_are_refused_with_a_message(data: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        IndexSpec.from_dict(data)


def test_derived_values_change_no_index_and_are_filled_on_validation() -> None:
    """``runner_id_search`` is declared in schemas/runner_contexts.yaml, not in FT.CREATE: the
    live index keeps its definition and version (docs/lifecycle.md)."""
    spec = load_schemas().runner_contexts
    stored = spec.derived_from("runner_id", "substring_form")
    assert (stored.name, stored.path) == ("runner_id_search", "$.runner_id_search")
    assert "runner_id_search" not in spec.schema_args() and spec.version == 1
    document = {"app_id": "a", "runner_id": "w\\1\n"}
    completed = codec.validated(spec, document)
    assert completed == {**document, "runner_id_search": query.substring_form("w\\1\n")}
    assert "runner_id_search" not in document  # the caller's document is left as it is
    assert "runner_id_search" not in codec.validated(spec, {"app_id": "a", "runner_id": None})
    with pytest.raises(SchemaError, match="stores no substring_form of 'hostname'"):
        spec.derived_from("hostname", "substring_form")
    with pytest.raises(SchemaError, match="stores no substring_form"):
        query.contains(spec, "hostname", "h")  # a substring lookup needs its stored form


def test_only_runner_contexts_derive_values() -> None:
    derived = {(spec.name, d.name) for spec in all_specs() for d in spec.derived}
    assert derived == {("runner-contexts", "runner_id_search")}


def _tag_of(key: str) -> str:
    start = key.index("{")
    return key[start : key.index("}", start) + 1]


@pytest.mark.parametrize("app_id", ["app", "a{b}c", "a:b", "}"])
@pytest.mark.parametrize("invocation_id", ["i", "x:y", "{x}|y", "a}b{", "%7B"])
def test_an_invocations_keys_share_its_hash_tag_whatever_the_ids(app_id: str, invocation_id: str) -> None:
    """Every key the history, upsert, prune and status scripts touch for one invocation is in
    its slot: the tag is exactly the invocation id (braces escaped, in the app too)."""
    keys = Namespace("pynenc").for_app(app_id)
    tag = hash_tag(invocation_id)
    own = [
        keys.invocation(invocation_id),
        keys.history(invocation_id, "e:1"),
        keys.result(invocation_id),
        keys.exception(invocation_id),
        keys.orchestrator_invocation(invocation_id),
        keys.workflow_sub_invocation("w{1}", invocation_id),
        keys.orchestrator_wait(invocation_id, "other"),
    ]
    assert {_tag_of(key) for key in own} == {tag}
    assert len({key_slot(key.encode()) for key in own}) == 1
    assert keys.invocation_ids_of([keys.invocation(invocation_id)]) == [invocation_id]
    assert keys.orchestrator_invocation_ids_of([keys.orchestrator_invocation(invocation_id)]) == [
        invocation_id
    ]
    workflow = [keys.workflow_run(invocation_id), keys.workflow_data(invocation_id, "k}")]
    assert {_tag_of(key) for key in workflow} == {tag}


def test_one_apps_documents_spread_over_every_slot_range() -> None:
    """Tags are per invocation, never per app: 3000 invocations of one app land in most of
    the 16384 slots, so every shard of a cluster holds a share."""
    keys = Namespace("pynenc").for_app("orders")
    slots = {key_slot(keys.invocation(f"inv-{n}").encode()) for n in range(3000)}
    assert len(slots) > 2500
    thirds = {slot * 3 // 16384 for slot in slots}
    assert thirds == {0, 1, 2}


def test_per_app_structures_that_scripts_join_share_the_app_slot() -> None:
    keys = Namespace("pynenc").for_app("a{b")
    assert _tag_of(keys.trigger_cron()) == _tag_of(keys.trigger_valid_conditions()) == "{a%7Bb}"
    assert _tag_of(keys.atomic_service_lease()) == _tag_of(keys.atomic_service_execution("r:1")) == "{a%7Bb}"


def test_group_by_slot_keeps_each_groups_order() -> None:
    keys = Namespace("pynenc").for_app("app")
    mixed = [keys.history("i1", "a"), keys.history("i2", "a"), keys.invocation("i1"), keys.invocation("i2")]
    assert group_by_slot(mixed) == [[mixed[0], mixed[2]], [mixed[1], mixed[3]]]

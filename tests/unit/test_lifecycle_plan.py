"""Planning is a pure function of (schemas, what the server reported): every case is a row.

The snapshots are built from ``FT.INFO`` replies in the shape Redis Stack 7.4 sends them
(``attributes`` as ``identifier/attribute/type/SEPARATOR`` lists with flags after, a
``SORTABLE`` field also listing ``UNF``); tests/integration/test_index_lifecycle.py runs the
same plans against the real server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pynenc_redis_stack.core.errors import ForeignIndexError
from pynenc_redis_stack.core.indexes import (
    Action,
    IndexState,
    ServerSnapshot,
    create_command,
    drop_targets,
    index_status,
    plan_index,
)
from pynenc_redis_stack.core.indexes.executor import AwaitBackfill, AwaitDrain, Send, Step
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import FieldSpec, IndexSpec, load_schemas

NS = Namespace("ns")
V1 = load_schemas().invocations
V2 = dataclasses.replace(
    V1, version=2, fields=(*V1.fields, FieldSpec(name="region", type="tag", path="$.region"))
)
ALIAS = "ns:invocations"
IDX_V1, IDX_V2, IDX_V1_R1 = "ns:idx:invocations:v1", "ns:idx:invocations:v2", "ns:idx:invocations:v1:r1"
FOREIGN = "ns:their-invocations"


def ft_info(
    spec: IndexSpec,
    name: str,
    *,
    indexing: bool = False,
    num_docs: int = 10,
    failures: int = 0,
    fields: tuple[FieldSpec, ...] | None = None,
) -> dict[str, Any]:
    """The parts of an ``FT.INFO`` reply the lifecycle reads, as the server sends them."""
    attributes = []
    for spec_field in spec.fields if fields is None else fields:
        attribute: list[Any] = ["identifier", spec_field.path, "attribute", spec_field.name]
        attribute += ["type", spec_field.type.upper()]
        if spec_field.type == "tag":
            attribute += ["SEPARATOR", ""]
            if spec_field.case_sensitive:
                attribute.append("CASESENSITIVE")
        if spec_field.sortable:
            attribute += ["SORTABLE", "UNF"]
        attributes.append(attribute)
    return {
        "index_name": name,
        "index_definition": ["key_type", "JSON", "prefixes", NS.prefixes(spec), "default_score", "1"],
        "attributes": attributes,
        "num_docs": num_docs,
        "indexing": 1 if indexing else 0,
        "percent_indexed": "0.25" if indexing else "1",
        "hash_indexing_failures": failures,
    }


def snapshot(*infos: dict[str, Any], alias_to: str | None = None) -> ServerSnapshot:
    """A server holding ``infos`` (FT._LIST lists them all), the alias pointing to ``alias_to``."""
    by_name = {info["index_name"]: info for info in infos}
    return ServerSnapshot(tuple(by_name), {ALIAS: alias_to} if alias_to else {}, by_name)


def create(spec: IndexSpec, name: str) -> Send:
    return Send(tuple(create_command(NS, spec, name)), tolerate="already exists")


def drop(name: str) -> list[Step]:
    return [AwaitDrain(name), Send(("FT.DROPINDEX", name))]


DRIFTED_FIELDS = tuple(f for f in V1.fields if f.name != "parent_invocation_id")


@dataclasses.dataclass(frozen=True)
class Case:
    spec: IndexSpec
    server: ServerSnapshot
    state: IndexState
    action: Action
    steps: list[Step]
    rebuild_drifted: bool = False
    reused: bool = False


CASES: dict[str, Case] = {
    "empty server": Case(
        V1,
        ServerSnapshot(),
        IndexState.MISSING,
        Action.CREATE,
        [create(V1, IDX_V1), AwaitBackfill(IDX_V1), Send(("FT.ALIASADD", ALIAS, IDX_V1), "already exists")],
    ),
    "current": Case(V1, snapshot(ft_info(V1, IDX_V1), alias_to=IDX_V1), IndexState.OK, Action.NONE, []),
    "current with a leftover version": Case(
        V2,
        snapshot(ft_info(V1, IDX_V1), ft_info(V2, IDX_V2), alias_to=IDX_V2),
        IndexState.OK,
        Action.CLEANUP,
        drop(IDX_V1),
    ),
    "outdated": Case(
        V2,
        snapshot(ft_info(V1, IDX_V1, failures=2), alias_to=IDX_V1),
        IndexState.OUTDATED,
        Action.MIGRATE,
        [
            create(V2, IDX_V2),
            AwaitBackfill(IDX_V2, max_failures=2),  # no document the old index took may be lost
            Send(("FT.ALIASUPDATE", ALIAS, IDX_V2)),
            *drop(IDX_V1),
        ],
    ),
    "drifted, left alone": Case(
        V1,
        snapshot(ft_info(V1, IDX_V1, fields=DRIFTED_FIELDS), alias_to=IDX_V1),
        IndexState.DRIFTED,
        Action.SKIP,
        [],
    ),
    "drifted, rebuilt": Case(
        V1,
        snapshot(ft_info(V1, IDX_V1, fields=DRIFTED_FIELDS), alias_to=IDX_V1),
        IndexState.DRIFTED,
        Action.REBUILD,
        [
            create(V1, IDX_V1_R1),
            AwaitBackfill(IDX_V1_R1, 0),
            Send(("FT.ALIASUPDATE", ALIAS, IDX_V1_R1)),
            *drop(IDX_V1),
        ],
        rebuild_drifted=True,
    ),
    "interrupted: new version still indexing": Case(
        V2,
        snapshot(ft_info(V1, IDX_V1), ft_info(V2, IDX_V2, indexing=True), alias_to=IDX_V1),
        IndexState.BACKFILLING,
        Action.MIGRATE,
        [AwaitBackfill(IDX_V2, 0), Send(("FT.ALIASUPDATE", ALIAS, IDX_V2)), *drop(IDX_V1)],
        reused=True,
    ),
    "interrupted: new version built, alias not switched": Case(
        V2,
        snapshot(ft_info(V1, IDX_V1), ft_info(V2, IDX_V2), alias_to=IDX_V1),
        IndexState.OUTDATED,
        Action.MIGRATE,
        [AwaitBackfill(IDX_V2, 0), Send(("FT.ALIASUPDATE", ALIAS, IDX_V2)), *drop(IDX_V1)],
        reused=True,
    ),
    "interrupted: new version half built with another definition": Case(
        V2,
        snapshot(ft_info(V1, IDX_V1), ft_info(V2, IDX_V2, indexing=True, fields=V1.fields), alias_to=IDX_V1),
        IndexState.OUTDATED,
        Action.MIGRATE,
        [
            Send(("FT.DROPINDEX", IDX_V2)),  # nothing reads it: rebuilt in place
            create(V2, IDX_V2),
            AwaitBackfill(IDX_V2, 0),
            Send(("FT.ALIASUPDATE", ALIAS, IDX_V2)),
            *drop(IDX_V1),
        ],
    ),
    "interrupted: first build, alias never added": Case(
        V1,
        snapshot(ft_info(V1, IDX_V1, indexing=True)),
        IndexState.BACKFILLING,
        Action.CREATE,
        [AwaitBackfill(IDX_V1), Send(("FT.ALIASADD", ALIAS, IDX_V1), "already exists")],
        reused=True,
    ),
    "live index still indexing": Case(
        V1,
        snapshot(ft_info(V1, IDX_V1, indexing=True), alias_to=IDX_V1),
        IndexState.BACKFILLING,
        Action.WAIT,
        [AwaitBackfill(IDX_V1)],
    ),
    "foreign index under our alias": Case(
        V1,
        ServerSnapshot((FOREIGN,), {ALIAS: FOREIGN}, {FOREIGN: ft_info(V1, FOREIGN)}),
        IndexState.OUTDATED,
        Action.MIGRATE,
        # theirs is never dropped: only the alias moves to ours
        [create(V1, IDX_V1), AwaitBackfill(IDX_V1, 0), Send(("FT.ALIASUPDATE", ALIAS, IDX_V1))],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case: Case) -> None:
    assert index_status(case.server, NS, case.spec).state is case.state
    plan = plan_index(case.server, NS, case.spec, rebuild_drifted=case.rebuild_drifted)
    assert (plan.action, plan.reused) == (case.action, case.reused)
    assert list(plan.steps) == case.steps


def test_a_drifted_index_left_alone_says_how_to_rebuild_it() -> None:
    plan = plan_index(CASES["drifted, left alone"].server, NS, V1)
    assert plan.note == (
        "drifted (missing fields parent_invocation_id); not touched: rerun with --rebuild-drifted "
        "to rebuild it as a fresh index and swap it in"
    )


def test_a_foreign_index_is_named_and_kept() -> None:
    plan = plan_index(CASES["foreign index under our alias"].server, NS, V1)
    assert plan.drops == ()
    assert plan.note == f"the alias pointed to {FOREIGN}, which is not named by this package; it was kept"


def test_the_next_rebuild_gets_the_next_number() -> None:
    """v1 and its first rebuild both differ from the file: the next rebuild is r2."""
    server = snapshot(
        ft_info(V1, IDX_V1, fields=V1.fields[:2]),
        ft_info(V1, IDX_V1_R1, fields=DRIFTED_FIELDS),
        alias_to=IDX_V1_R1,
    )
    plan = plan_index(server, NS, V1, rebuild_drifted=True)
    assert (plan.action, plan.target, plan.drops) == (
        Action.REBUILD,
        "ns:idx:invocations:v1:r2",
        (IDX_V1_R1, IDX_V1),
    )


@pytest.mark.parametrize("name", ["outdated", "current with a leftover version"])
def test_the_first_use_check_never_drops(name: str) -> None:
    case = CASES[name]
    plan = plan_index(case.server, NS, case.spec, cleanup=False)
    assert plan.drops == ()
    assert not any(isinstance(step, Send) and step.args[0] == "FT.DROPINDEX" for step in plan.steps)


def test_drop_targets_every_version_and_refuses_a_foreign_index() -> None:
    server = snapshot(ft_info(V1, IDX_V1), ft_info(V2, IDX_V2), alias_to=IDX_V2)
    assert drop_targets(server, NS, [V2]) == {ALIAS: [IDX_V1, IDX_V2]}
    assert drop_targets(ServerSnapshot(), NS, [V2]) == {}
    with pytest.raises(ForeignIndexError, match=f"alias {ALIAS} points to index '{FOREIGN}'"):
        drop_targets(CASES["foreign index under our alias"].server, NS, [V1])

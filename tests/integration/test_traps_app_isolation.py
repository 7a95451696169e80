"""App isolation: app ids that differ only in glob or query-syntax characters, case or
backslashes see only their own data, and ``purge`` removes exactly its own app's documents."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from pynenc import Pynenc
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.keys import encode_segment, glob_escape
from tests.integration.traps import (
    CALL_ID,
    T0,
    backend_of,
    history_entry,
    make_app,
    runner_context,
    runner_ids,
    upsert,
)

# -- app isolation ---------------------------------------------------------------------------


def _populate(app: Pynenc, tag: str) -> None:
    """The same ids in every app, plus one id of its own; payloads carry the app's tag."""
    backend = backend_of(app)
    workflow = WorkflowIdentity(InvocationId("shared-wf"), TaskId("tests.flows", "flow"))
    for invocation_id in ("shared-inv", f"own-{tag}"):
        upsert(
            backend,
            invocation_id,
            parent="shared-parent",
            event="shared-event",
            workflow=workflow,
        )
        backend._add_histories(
            [InvocationId(invocation_id)],
            history_entry(invocation_id, T0, runner_context_id=f"rc-{tag}"),
        )
    for runner_id in ("shared-runner", f"own-runner-{tag}"):
        backend._store_runner_context(runner_context(runner_id, runner_cls=f"cls-{tag}"))
    backend.store_workflow_run(workflow)
    backend.store_workflow_run(WorkflowIdentity(InvocationId(f"own-wf-{tag}"), TaskId("tests.flows", "flow")))
    backend.store_workflow_sub_invocation(InvocationId("shared-wf"), InvocationId(f"own-{tag}"))
    backend._set_result(InvocationId("shared-inv"), f"result-{tag}")


def _assert_sees_only_its_own(app: Pynenc, tag: str) -> None:
    backend = backend_of(app)
    own = {"shared-inv", f"own-{tag}"}
    assert set(backend.get_child_invocations(InvocationId("shared-parent"))) == own
    assert set(backend.get_invocations_by_parent_event("shared-event")) == own
    assert set(backend.get_invocation_ids_by_workflow("shared-wf")) == own
    assert set(backend.get_invocation_ids_by_workflow()) == own
    history = backend.get_history(InvocationId("shared-inv"))
    assert [h.runner_context_id for h in history] == [f"rc-{tag}"]
    in_range = [h for batch in backend.iter_history_in_timerange(T0, T0) for h in batch]
    assert sorted(str(h.invocation_id) for h in in_range) == sorted(own)
    assert {str(i) for batch in backend.iter_invocations_in_timerange(T0, T0) for i in batch} == own
    contexts = list(backend.get_matching_runner_contexts("runner"))
    assert sorted(c.runner_id for c in contexts) == sorted(["shared-runner", f"own-runner-{tag}"])
    assert {c.runner_cls for c in contexts} == {f"cls-{tag}"}
    assert sorted(str(w.workflow_id) for w in backend.get_all_workflow_runs()) == sorted(
        ["shared-wf", f"own-wf-{tag}"]
    )
    assert list(backend.get_workflow_sub_invocations(InvocationId("shared-wf"))) == [f"own-{tag}"]
    assert backend._get_result(InvocationId("shared-inv")) == f"result-{tag}"


def _assert_sees_nothing(app: Pynenc) -> None:
    backend = backend_of(app)
    assert list(backend.get_child_invocations(InvocationId("shared-parent"))) == []
    assert list(backend.get_invocation_ids_by_workflow()) == []
    assert backend.get_history(InvocationId("shared-inv")) == []
    assert list(backend.iter_history_in_timerange(T0, T0)) == []
    assert list(backend.get_matching_runner_contexts("")) == []
    assert list(backend.get_all_workflow_runs()) == []
    assert backend._get_invocation(InvocationId("shared-inv")) is None
    with pytest.raises(KeyError):
        backend._get_result(InvocationId("shared-inv"))


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"iso{uuid.uuid5(uuid.NAMESPACE_URL, request.node.nodeid).hex[:8]}-"


@pytest.mark.parametrize(
    "pair",
    [
        ("app", "app1"),
        ("a:b", "a"),
        ("a*", "ab"),
        ("a?c", "abc"),
        ("a\\c", "abc"),
        ("A", "a"),
        ("a b", "a"),
        ("a\\c", "a\\\\c"),
    ],
    ids=[
        "app-app1",
        "colon",
        "star",
        "question",
        "backslash",
        "case",
        "space",
        "one-vs-two-backslashes",
    ],
)
def test_apps_see_only_their_own_data(
    request: pytest.FixtureRequest, redis_url: str, pair: tuple[str, str]
) -> None:
    prefix = _prefix(request)
    apps = [make_app(prefix + name, redis_url) for name in pair]
    for n, app in enumerate(apps):
        _populate(app, f"t{n}")
    for n, app in enumerate(apps):
        _assert_sees_only_its_own(app, f"t{n}")


def _keys_of(client: redis.Redis, app_id: str) -> list[str]:
    """Every state key of the app in the default namespace (entity segment, then the app
    segment). The app-info document is registration, not state: purge keeps it."""
    segment = encode_segment(app_id)
    pattern = f"pynenc:*:{glob_escape(segment)}*"
    return [
        key
        for key in client.scan_iter(match=pattern, count=10_000)
        if key.count(":") >= 2 and key.split(":")[2] == segment and not key.startswith("pynenc:app-info:")
    ]


def test_purge_removes_only_its_app_and_backend_works_after(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    prefix = _prefix(request)
    question, backslash, plain = (make_app(prefix + name, redis_url) for name in ("a?c", "a\\c", "abc"))
    for n, app in enumerate((question, backslash, plain)):
        _populate(app, f"t{n}")
    plain_keys = sorted(_keys_of(redis_client, plain.app_id))
    assert len(plain_keys) >= 10

    for n, purged in enumerate((question, backslash)):
        assert _keys_of(redis_client, purged.app_id) != []
        purged.state_backend.purge()
        assert _keys_of(redis_client, purged.app_id) == []
        assert purged.state_backend.get_app_info().app_id == purged.app_id  # still registered
        _assert_sees_nothing(purged)
        assert sorted(_keys_of(redis_client, plain.app_id)) == plain_keys
        _assert_sees_only_its_own(plain, "t2")
        # Usable at once, including the runner context cache (cleared by purge).
        _populate(purged, f"t{n}")
        _assert_sees_only_its_own(purged, f"t{n}")
        context = runner_context("after-purge")
        purged.state_backend.add_history(
            InvocationId("shared-inv"),
            InvocationStatusRecord(InvocationStatus.SUCCESS),
            context,
        )
        assert runner_ids(backend_of(purged), "after-purge") == ["after-purge"]
        purged.state_backend.add_history(
            InvocationId("shared-inv"),
            InvocationStatusRecord(InvocationStatus.SUCCESS),
            context,
        )
        assert len(purged.state_backend.get_history(InvocationId("shared-inv"))) == 3


def test_purge_never_deletes_an_app_whose_id_differs_by_one_backslash(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    prefix = _prefix(request)
    one, two = (make_app(prefix + name, redis_url) for name in ("a\\c", "a\\\\c"))  # a\c and a\\c
    _populate(one, "t0")
    _populate(two, "t1")
    one_keys = sorted(_keys_of(redis_client, one.app_id))

    two.state_backend.purge()

    assert sorted(_keys_of(redis_client, one.app_id)) == one_keys
    assert _keys_of(redis_client, two.app_id) == []
    _assert_sees_only_its_own(one, "t0")


def test_purge_of_many_documents_across_cursor_pages(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """Purge deletes while it streams the keys (pages of 7): nothing may be skipped."""
    prefix = _prefix(request)
    doomed = make_app(prefix + "doomed", redis_url, redis_stack_batch_size=7)
    kept = make_app(prefix + "kept", redis_url)
    for app in (doomed, kept):
        backend = backend_of(app)
        ids = [InvocationId(f"inv-{n:03d}") for n in range(120)]
        for start in range(0, 120, 40):
            backend._upsert_invocations(
                [
                    (
                        InvocationDTO(i, CALL_ID, None, InvocationId("parent"), None),
                        CallDTO(CALL_ID, {}),
                    )
                    for i in ids[start : start + 40]
                ]
            )
        backend._add_histories(ids, history_entry("template", T0))
        backend._add_histories(ids, history_entry("template", T0 + timedelta(microseconds=1)))
        for n in range(30):
            backend._store_runner_context(runner_context(f"runner-{n}"))
            backend._set_result(ids[n], "r")
    kept_keys = sorted(_keys_of(redis_client, kept.app_id))
    # 120 invocations, 240 entries, 30 contexts, 30 results: documents only
    assert len(_keys_of(redis_client, doomed.app_id)) == len(kept_keys) == 120 + 240 + 30 + 30

    doomed.state_backend.purge()

    assert _keys_of(redis_client, doomed.app_id) == []
    assert sorted(_keys_of(redis_client, kept.app_id)) == kept_keys

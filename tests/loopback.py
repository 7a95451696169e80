"""Test-only deployments on 127.0.0.1 built from the embedded server's binaries and modules.

- :class:`LoopbackCluster`: N masters with ``cluster-enabled yes``, slots assigned with
  ``CLUSTER ADDSLOTS`` and joined with ``CLUSTER MEET`` from redis-py (``redis-cli --cluster``
  and ``CLUSTER ADDSLOTSRANGE`` are not usable here).
  Its Stack 7.4 search module has no coordinator: each node's index sees its own shard only.
- :class:`LoopbackSentinel`: one master, one replica, and sentinels
  (``redis-server <conf> --sentinel``), all requiring one password.

Every process is started by :mod:`subprocess` in its own directory, and killed by its pid.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pynenc_redis_stack.server.binaries import SEARCH_MODULE_ARGS, locate_binaries
from pynenc_redis_stack.server.processes import HOST, kill, pick_free_port

CLUSTER_SLOTS = 16384
STARTUP_SECONDS = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = STARTUP_SECONDS) -> None:
    """Poll ``condition`` (a state change of a server, no clock of ours) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Node:
    """One redis-server process of a loopback deployment."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    password: str

    def client(self, timeout: float = 10.0) -> redis.Redis:
        # one attempt: redis-py's default retries would hide a stalled or dead node
        return redis.Redis(
            HOST,
            self.port,
            password=self.password,
            protocol=2,
            decode_responses=True,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def answers(self, timeout: float = 0.5) -> bool:
        try:
            with self.client(timeout=timeout) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL the process (no shutdown, no goodbye to its peers) and reap it."""
        kill(self.process.pid)
        self.process.wait(5)

    @property
    def log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")[-4000:]


def _start(directory: Path, config: str, args: Sequence[str], password: str, modules: bool = True) -> Node:
    binaries = locate_binaries()
    directory.mkdir(parents=True, exist_ok=True)
    port = pick_free_port()
    config_file = directory / "node.conf"
    config_file.write_text(config.format(port=port))
    module_args = (
        [
            "--loadmodule",
            str(binaries.search_module),
            *SEARCH_MODULE_ARGS,
            "--loadmodule",
            str(binaries.json_module),
        ]
        if modules
        else []
    )
    command = [
        str(binaries.redis_server), str(config_file), *args,
        "--port", str(port), "--bind", HOST, "--dir", str(directory),
        "--logfile", str(directory / "server.log"), "--daemonize", "no",
        *module_args,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    node = Node(port, directory, process, password)
    try:
        wait_until(lambda: node.answers() or process.poll() is not None, f"redis-server on {port}")
        if process.poll() is not None:
            raise AssertionError(f"redis-server on {port} exited:\n{node.log}")
    except BaseException:
        node.kill()
        raise
    return node


@dataclass
class LoopbackCluster:
    """A cluster of ``size`` masters (no replicas) on 127.0.0.1."""

    directory: Path
    size: int = 3
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[Node] = field(default_factory=list)

    def start(self) -> str:
        """Start the nodes, assign the slots evenly, join them; return a ``redis+cluster://`` URL."""
        config = (
            f'requirepass {self.password}\nmasterauth {self.password}\nsave ""\nappendonly no\n'
            "cluster-enabled yes\ncluster-config-file nodes-{port}.conf\ncluster-node-timeout 5000\n"
            "enable-debug-command local\n"  # tests stall a node with DEBUG SLEEP
        )
        for number in range(self.size):
            self.nodes.append(_start(self.directory / f"node-{number}", config, [], self.password))
        share = CLUSTER_SLOTS // self.size
        for number, node in enumerate(self.nodes):
            first = number * share
            last = CLUSTER_SLOTS - 1 if number == self.size - 1 else first + share - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", HOST, node.port)
        wait_until(self._ready, "every node to report cluster_state:ok with all masters known")
        return self.url

    def _ready(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO")
                text = info if isinstance(info, str) else info.decode()
                if "cluster_state:ok" not in text or f"cluster_known_nodes:{self.size}" not in text:
                    return False
        return True

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{node.port}" for node in self.nodes)
        return f"redis+cluster://default:{self.password}@{hosts}"

    def node_for_slot(self, slot: int) -> Node:
        return self.nodes[min(slot // (CLUSTER_SLOTS // self.size), self.size - 1)]

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@dataclass
class LoopbackSentinel:
    """One master, one replica and ``sentinels`` sentinels (quorum 1) on 127.0.0.1."""

    directory: Path
    sentinels: int = 1
    service: str = "pynenc-master"
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    master: Node | None = None
    replica: Node | None = None
    sentinel_nodes: list[Node] = field(default_factory=list)
    extra_replicas: list[Node] = field(default_factory=list)

    def start(self) -> str:
        """Start master, replica and sentinels; return a ``redis+sentinel://`` URL."""
        data_config = self._data_config()
        self.master = _start(self.directory / "master", data_config, [], self.password)
        self.replica = _start(
            self.directory / "replica",
            data_config,
            ["--replicaof", HOST, str(self.master.port)],
            self.password,
        )
        replica = self.replica
        wait_until(
            lambda: self._replication_field(replica, "master_link_status") == "up", "the replica to sync"
        )
        sentinel_config = (
            f"sentinel monitor {self.service} {HOST} {self.master.port} 1\n"
            f"sentinel auth-pass {self.service} {self.password}\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 10000\n"
        )
        for number in range(self.sentinels):
            # {port} is filled by _start; the sentinel itself requires no password
            self.sentinel_nodes.append(
                _start(
                    self.directory / f"sentinel-{number}",
                    "port {port}\n" + sentinel_config,
                    ["--sentinel"],
                    "",
                    modules=False,
                )
            )
        wait_until(
            lambda: self.sentinel_master_port() == self.master_port_now(), "sentinels to watch the master"
        )
        return self.url

    @staticmethod
    def _replication_field(node: Node, name: str) -> str:
        try:
            with node.client(timeout=1.0) as client:
                return str(client.info("replication").get(name, ""))
        except redis.RedisError:
            return ""

    def _data_config(self) -> str:
        # no persistence; a replica syncs at once (the default waits 5 s for more replicas)
        return (
            f'requirepass {self.password}\nmasterauth {self.password}\nsave ""\nappendonly no\n'
            "repl-diskless-sync-delay 0\n"
        )

    def add_replica(self, master_port: int) -> Node:
        """Start one more replica of the master on ``master_port`` (after a failover, the
        promoted master has no replica until one joins)."""
        data_config = self._data_config()
        node = _start(
            self.directory / f"replica-of-{master_port}",
            data_config,
            ["--replicaof", HOST, str(master_port)],
            self.password,
        )
        self.extra_replicas.append(node)
        wait_until(
            lambda: self._replication_field(node, "master_link_status") == "up", "the new replica to sync"
        )
        return node

    def sentinel_client(self) -> redis.Redis:
        node = self.sentinel_nodes[0]
        return redis.Redis(HOST, node.port, protocol=2, decode_responses=True, socket_timeout=5)

    def sentinel_master_port(self) -> int:
        with self.sentinel_client() as client:
            try:
                return int(client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)[1])
            except (redis.RedisError, TypeError):
                return -1

    def master_port_now(self) -> int:
        assert self.master is not None
        return self.master.port

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{node.port}" for node in self.sentinel_nodes)
        return f"redis+sentinel://default:{self.password}@{hosts}/{self.service}"

    def stop(self) -> None:
        for node in [*self.sentinel_nodes, *self.extra_replicas, self.replica, self.master]:
            if node is not None and node.process.poll() is None:
                node.kill()

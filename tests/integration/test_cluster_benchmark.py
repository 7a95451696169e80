"""``./dev bench --throughput --cluster`` (benchmarks/cluster_writes.py) end to end, tiny sizes:
both topologies measured, the same writes on each, the cluster's share on every node."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import cluster_writes

TASKS_PER_WRITER = 4


def test_cluster_write_benchmark_measures_both_topologies_with_the_same_writes(tmp_path: Path) -> None:
    rows = cluster_writes.run(
        quick=True, out=tmp_path, timeout=60.0, writer_counts=(1, 2), tasks_per_writer=TASKS_PER_WRITER
    )

    assert sorted((row.writers, row.topology) for row in rows) == [
        (1, "cluster"), (1, "single"), (2, "cluster"), (2, "single"),
    ]  # fmt: skip
    for row in rows:
        assert row.tasks == row.writers * TASKS_PER_WRITER
        assert len(row.latencies) == row.tasks
        assert row.tasks_per_second > 0
        assert min(row.latencies) > 0 and row.writer_cpu_seconds > 0
        assert row.commands_per_task > 0
    for writers in (1, 2):
        single, cluster = (
            next(row for row in rows if row.writers == writers and row.topology == topology)
            for topology in (cluster_writes.SINGLE, cluster_writes.CLUSTER)
        )
        assert len(cluster.keys_per_node) == 3 and min(cluster.keys_per_node) > 0, cluster.keys_per_node
        # the same documents on both; the single server also holds first use's trusted-index marker
        assert single.keys_per_node == [sum(cluster.keys_per_node) + 1]

    table = (tmp_path / "throughput-cluster.md").read_text()
    assert "| 2 | cluster |" in table and "| 2 | single |" in table
    stored = json.loads((tmp_path / "throughput-cluster.json").read_text())
    assert [row["tasks_per_second"] > 0 for row in stored["rows"]] == [True] * 4

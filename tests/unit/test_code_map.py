"""The README's code map lists every module of ``src/pynenc_redis_stack``, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pynenc_redis_stack

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(pynenc_redis_stack.__file__).parent


def code_map_paths() -> list[str]:
    """The file paths the map names: each indented line is a file or folder under the last
    folder above it, two spaces per level."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code map", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "README's Code map has no ```text block"
    folders: list[str] = []
    paths: list[str] = []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.append("/".join([*folders, name]))
    return paths


def test_the_code_map_is_the_tree() -> None:
    tree = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py"))
    assert sorted(code_map_paths()) == tree


def test_the_code_map_names_each_module_once() -> None:
    paths = code_map_paths()
    assert len(paths) == len(set(paths))

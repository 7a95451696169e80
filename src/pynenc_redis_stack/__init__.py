"""pynenc-redis-stack: a pynenc state backend on Redis Stack (RedisJSON + RediSearch)."""

from typing import Any

from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.builder import RedisStackBuilderPlugin
from pynenc_redis_stack.client_data_store import RedisStackClientDataStore
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from pynenc_redis_stack.trigger import RedisStackTrigger


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed metadata on first access (a few milliseconds
    of every process's start otherwise)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pynenc-redis-stack")
    except PackageNotFoundError:  # running from a source tree without installation
        found = "0.0.0"
    globals()["__version__"] = found
    return found


__all__ = [
    "RedisStackBroker",
    "RedisStackBuilderPlugin",
    "RedisStackClientDataStore",
    "RedisStackStateBackend",
    "RedisStackTrigger",
    "__version__",
]

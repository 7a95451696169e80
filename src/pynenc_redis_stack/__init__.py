"""pynenc-redis-stack: a pynenc state backend on Redis Stack (RedisJSON + RediSearch)."""

from importlib.metadata import PackageNotFoundError, version

from pynenc_redis_stack.backend import RedisStackStateBackend
from pynenc_redis_stack.broker import RedisStackBroker
from pynenc_redis_stack.builder import RedisStackBuilderPlugin
from pynenc_redis_stack.client_data_store import RedisStackClientDataStore
from pynenc_redis_stack.trigger import RedisStackTrigger

try:
    __version__ = version("pynenc-redis-stack")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "RedisStackBroker",
    "RedisStackBuilderPlugin",
    "RedisStackClientDataStore",
    "RedisStackStateBackend",
    "RedisStackTrigger",
    "__version__",
]

"""pynenc-redis-stack: a pynenc state backend on Redis Stack (RedisJSON + RediSearch)."""

from importlib.metadata import PackageNotFoundError, version

from pynenc_redis_stack.backend import RedisStackStateBackend
from pynenc_redis_stack.builder import RedisStackBuilderPlugin

try:
    __version__ = version("pynenc-redis-stack")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["RedisStackBuilderPlugin", "RedisStackStateBackend", "__version__"]

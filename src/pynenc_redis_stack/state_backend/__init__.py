"""pynenc's state backend: invocations, history, runner contexts, workflows and app info as
RedisJSON documents, every lookup an index query."""

from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

__all__ = ["RedisStackStateBackend"]

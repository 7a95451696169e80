"""pynenc's broker: one queue per app, taken with a lease so nothing is lost between the pop
and the acknowledgement."""

from pynenc_redis_stack.broker.broker import RedisStackBroker

__all__ = ["RedisStackBroker"]

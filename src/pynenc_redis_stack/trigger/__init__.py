"""pynenc's trigger on Redis Stack (``trigger_cls = "RedisStackTrigger"``).

Registered through the ``pynenc.plugins`` entry points, like the other components.
"""

from pynenc_redis_stack.trigger.trigger import RedisStackTrigger

__all__ = ["RedisStackTrigger"]

"""pynenc's orchestrator on Redis Stack (``orchestrator_cls = "RedisStackOrchestrator"``).

Registered through the ``pynenc.plugins`` entry points, like the state backend.
"""

from pynenc_redis_stack.orchestrator.blocking import RedisStackBlockingControl
from pynenc_redis_stack.orchestrator.orchestrator import RedisStackOrchestrator

__all__ = ["RedisStackBlockingControl", "RedisStackOrchestrator"]

"""The orchestrator's documents of one app and its scripts, shared by its parts."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pynenc_redis_stack.core.schema import OrchestratorSchemas, load_schema_set
from pynenc_redis_stack.core.scripts import call
from pynenc_redis_stack.core.store import DocumentStore
from pynenc_redis_stack.orchestrator.scripts import Scripts

if TYPE_CHECKING:
    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace


class OrchestratorStore(DocumentStore[OrchestratorSchemas]):
    """The orchestrator's documents of one app (:class:`OrchestratorSchemas`) and its scripts."""

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str) -> None:
        super().__init__(conf, app_id, load_schema_set(OrchestratorSchemas))

    @cached_property
    def scripts(self) -> Scripts:
        return Scripts(self.client)

    def server_micros(self) -> int:
        """The server's clock, in epoch microseconds (one clock for every host)."""
        return int(call(self.scripts.server_time, self.client, [], []))

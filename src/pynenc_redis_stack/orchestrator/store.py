"""The orchestrator's documents of one app, shared by its parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynenc_redis_stack.core.schema import OrchestratorSchemas, load_schema_set
from pynenc_redis_stack.core.store import DocumentStore
from pynenc_redis_stack.orchestrator.scripts import server_time_script

if TYPE_CHECKING:
    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace


class OrchestratorStore(DocumentStore[OrchestratorSchemas]):
    """The orchestrator's documents of one app (:class:`OrchestratorSchemas`)."""

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str) -> None:
        super().__init__(conf, app_id, load_schema_set(OrchestratorSchemas))

    def server_micros(self) -> int:
        """The server's clock, in epoch microseconds (one clock for every host)."""
        return int(server_time_script.run(self.client, [], []))

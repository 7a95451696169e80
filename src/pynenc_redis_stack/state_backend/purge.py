"""The state backend's purge hook: every document of one app but its registration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynenc_redis_stack.core.store import unlink, unlink_app_documents

if TYPE_CHECKING:
    import redis

    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import Schemas


def purge_state(
    client: redis.Redis, namespace: Namespace, schemas: Schemas, app_id: str, batch_size: int
) -> None:
    """Delete every state backend document of ``app_id`` but its app info (its registration),
    and prune's pending-workflows set, and nothing of any other app."""
    specs = [spec for spec in schemas.all() if spec is not schemas.app_infos]
    unlink_app_documents(client, namespace, specs, app_id, batch_size)
    unlink(client, [namespace.for_app(app_id).prune_pending_workflows()])

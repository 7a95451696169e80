"""Ad-hoc questions over one namespace's documents, for the ``pynenc-redis-stack query``
command and the checks of the other commands: which apps exist, and the requests the
``query`` verbs send. Every request is built with :mod:`pynenc_redis_stack.query` and run by
:mod:`pynenc_redis_stack.search`.
"""

from __future__ import annotations

from redis import Redis

from pynenc_redis_stack import query
from pynenc_redis_stack.keys import Namespace
from pynenc_redis_stack.schema import Schemas
from pynenc_redis_stack.search import fetch_complete


def app_ids(client: Redis, namespace: Namespace, schemas: Schemas) -> list[str]:
    """Return the apps with documents in ``namespace`` (an invocation or an app info), sorted."""
    found: set[str] = set()
    for spec in (schemas.invocations, schemas.app_infos):
        request = query.Aggregate(namespace.alias(spec), query.Filter(spec), query.group_by("app_id"))
        found.update(str(row["app_id"]) for row in fetch_complete(client, request))
    return sorted(found)

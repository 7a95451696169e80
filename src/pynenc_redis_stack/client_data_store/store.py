"""RedisStackClientDataStore: pynenc 0.4's client data store in one Redis hash per app.

pynenc stores large task arguments, results and exceptions here under a content-hash
reference key and keeps only the key in the invocation. Each app's values are one hash
(``<ns>:client-data:<app>``, field = reference key): a store is one ``HSET`` of the value and
of the time it was stored (field ``stored-at:<reference key>``, the storing host's clock in
epoch ms, which keeps a value being referred to now from prune; the same key always holds the
same value, so storing twice changes nothing but the time), a lookup one ``HGET``, and a purge
one ``UNLINK`` (freed in the background, however many values). Plain strings, not RedisJSON:
the values are opaque serialized text that nothing queries. ``prune`` deletes the values no
document refers to (:mod:`pynenc_redis_stack.admin.client_data`).
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING

from pynenc.client_data_store.base_client_data_store import BaseClientDataStore

from pynenc_redis_stack.core.client import Client, run
from pynenc_redis_stack.core.conf import ConfigClientDataStoreRedisStack
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.core.keys import Namespace

if TYPE_CHECKING:
    from pynenc.app import Pynenc

STORED_AT = "stored-at:"
"""Prefix of the field holding a value's last store time (no reference key starts with it)."""


def stored_at_field(reference: str) -> str:
    """The field of the app's hash holding ``reference``'s last store time (epoch ms)."""
    return STORED_AT + reference


class RedisStackClientDataStore(BaseClientDataStore):
    """pynenc client data store on Redis Stack (one hash per app).

    Select it with ``client_data_store_cls = "RedisStackClientDataStore"`` or
    ``PynencBuilder().redis_stack(url=..., components="all")``.
    """

    def __init__(self, app: Pynenc) -> None:
        super().__init__(app)
        self._client: Client | None = None

    @cached_property
    def conf(self) -> ConfigClientDataStoreRedisStack:
        return ConfigClientDataStoreRedisStack(
            config_values=self.app.config_values,
            config_filepath=self.app.config_filepath,
        )

    @cached_property
    def key(self) -> str:
        """The app's hash of values."""
        return Namespace(self.conf.redis_stack_namespace).for_app(self.app.app_id).client_data()

    @property
    def client(self) -> Client:
        """The Redis client; the first access checks the server."""
        if self._client is None:
            self._client = get_client(self.conf)
        return self._client

    def _store(self, key: str, value: str) -> None:
        for what, text in (("client data key", key), ("client data value", value)):
            position = lone_surrogate(text)
            if position is not None:
                raise InvalidDocumentError(lone_surrogate_message(what, text, position))
        stamp = str(int(time.time() * 1000))
        run(self.client, "HSET", self.key, key, value, stored_at_field(key), stamp)

    def _retrieve(self, key: str) -> str:
        """:raises KeyError: If nothing is stored under ``key`` (never stored, or purged)."""
        value = run(self.client, "HGET", self.key, key)
        if value is None:
            raise KeyError(f"Key {key} not found in client data store of app {self.app.app_id!r}")
        return str(value)

    def _purge(self) -> None:
        run(self.client, "UNLINK", self.key)

"""pynenc's client data store: large serialized arguments and results, by key."""

from pynenc_redis_stack.client_data_store.store import RedisStackClientDataStore

__all__ = ["RedisStackClientDataStore"]

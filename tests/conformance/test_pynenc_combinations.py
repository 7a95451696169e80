"""pynenc's combinations suite (real runners executing real tasks), unmodified:
pynenc's SQLite orchestrator, broker, trigger and client data store with RedisStackStateBackend."""

from pynenc_tests.integration.combinations.all_tests import *

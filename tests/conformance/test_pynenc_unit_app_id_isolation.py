"""pynenc's unit app-id isolation suite, unmodified, on RedisStackStateBackend."""

from pynenc_tests.unit.app_id_isolation.all_tests import *

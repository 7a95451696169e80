"""pynenc's integration app-id isolation suite, unmodified, on RedisStackStateBackend."""

from pynenc_tests.integration.app_id_isolation.all_tests import *

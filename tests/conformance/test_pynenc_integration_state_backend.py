"""pynenc's integration state-backend suite, unmodified, on RedisStackStateBackend."""

from pynenc_tests.integration.state_backend.all_tests import *

"""pynenc's unit state-backend suite, unmodified, on RedisStackStateBackend."""

from pynenc_tests.unit.state_backend.all_tests import *

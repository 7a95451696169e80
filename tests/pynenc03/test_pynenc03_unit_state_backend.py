"""pynenc 0.3.x conformance: unit/state_backend, unmodified, on the distributed line."""

from pynenc_tests.unit.state_backend.all_tests import *

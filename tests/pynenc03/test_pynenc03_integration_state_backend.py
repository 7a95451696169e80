"""pynenc 0.3.x conformance: integration/state_backend, unmodified, on the distributed line."""

from pynenc_tests.integration.state_backend.all_tests import *

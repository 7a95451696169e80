"""pynenc 0.3.x conformance: integration/combinations, unmodified, on the distributed line."""

from pynenc_tests.integration.combinations.all_tests import *

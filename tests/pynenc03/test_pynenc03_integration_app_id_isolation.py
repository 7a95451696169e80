"""pynenc 0.3.x conformance: integration/app_id_isolation, unmodified, on the distributed line."""

from pynenc_tests.integration.app_id_isolation.all_tests import *

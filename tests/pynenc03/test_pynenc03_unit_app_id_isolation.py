"""pynenc 0.3.x conformance: unit/app_id_isolation, unmodified, on the distributed line."""

from pynenc_tests.unit.app_id_isolation.all_tests import *

"""A real pynenc app on the embedded Redis Stack, then real queries over its state."""

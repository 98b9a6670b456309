"""The wire protocol: pure (bytes in, typed messages out, and back), no sockets (floor 1)."""

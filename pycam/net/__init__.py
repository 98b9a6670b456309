"""Sockets, connections, authentication and reconnection over the pure protocol (floor 2)."""

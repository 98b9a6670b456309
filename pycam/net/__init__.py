"""Sockets, connections, authentication and reconnection over the pure protocol (floor 2).

* ``connection`` — Connection: thread-safe send, blocking receive, zero-copy payloads
* ``auth``       — HMAC-SHA256 challenge-response handshake (server and client sides)
* ``server``     — listen() with SO_REUSEADDR and an Acceptor thread (selectors, no polling)
* ``reconnect``  — Backoff and connect_with_backoff
"""

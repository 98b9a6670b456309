"""Sockets, connections, authentication and reconnection over the pure protocol (floor 2).

* ``connection`` — Connection: thread-safe send, blocking receive, zero-copy payloads
* ``auth``       — the client side of the handshake (rules: pycam.protocol.session)
* ``gatekeeper`` — the master's accept loop and every handshake in one selector thread
                   (absolute deadline, caps per address and in all, accept back-off)
* ``server``     — listen() with SO_REUSEADDR; raise_fd_limit()
* ``ratelog``    — rate-limited logging of repeated failures
* ``reconnect``  — Backoff, connect_with_backoff and MasterLink, the reconnecting link to the master
                   that the station client and every device run
"""

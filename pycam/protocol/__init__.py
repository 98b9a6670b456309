"""The wire protocol: pure (bytes in, typed messages out, and back), no sockets (floor 1).

* ``frames``   — the length-prefixed, CRC-checked envelope and the bounded FrameDecoder
* ``messages`` — the typed messages (handshake, command, reply, error, event, data, ack)
* ``commands`` — the three-letter PyCam command vocabulary with exact types and ranges
* ``decoder``  — MessageDecoder: bytes in, messages out
* ``session``  — the handshake, per-role secrets and the per-frame MAC as a socket-free state machine
* ``errors``   — FrameError (close the connection) and MessageError (answer, carry on)
"""

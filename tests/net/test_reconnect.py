"""Backoff (pycam/net/reconnect.py): exponential growth to the maximum, reset."""
from __future__ import annotations

import random

from pycam.net.reconnect import Backoff


def test_backoff_grows_to_the_maximum_and_resets():
    b = Backoff(maximum=1.0, initial=0.1, jitter=0.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next_delay() == 0.1

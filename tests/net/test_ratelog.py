"""RateLimitedLog (pycam/net/ratelog.py): repeated failures logged once per interval with a count."""
from __future__ import annotations

import logging

from pycam.net.ratelog import RateLimitedLog


def test_rate_limited_log_counts_what_it_suppresses(caplog):
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t.ratelog"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t.ratelog"):
        assert rl.log("k", logging.WARNING, "boom %s", 1)
        for i in range(500):
            now[0] += 0.01
            assert not rl.log("k", logging.WARNING, "boom %s", i)
        now[0] = 10.5
        assert rl.log("k", logging.WARNING, "boom %s", 2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["boom 1", "boom 2 (and 500 more like it in the last 10 s)"]

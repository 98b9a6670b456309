"""Child processes that a test stops with Ctrl-C (SIGINT)."""
from __future__ import annotations

import signal


def sigint_default() -> None:
    """``preexec_fn`` for a child a test interrupts: SIGINT back at its default action, so Python
    in the child turns it into KeyboardInterrupt.  A shell runs ``cmd &`` with SIGINT ignored and
    children inherit that, so without this a suite started in the background (``nohup ... &``)
    sends its Ctrl-C into the void and the test hangs or sees the run finish."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

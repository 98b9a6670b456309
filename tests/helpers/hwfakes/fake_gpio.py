"""A fake of the small ``pycam.station.power.Gpio`` interface that records every level change."""
from __future__ import annotations

import time


class FakeGpio:
    def __init__(self) -> None:
        self.levels: dict[int, bool] = {}
        self.log: list[tuple[str, int, bool | None, float]] = []
        self.released: list[int] = []

    def setup_output(self, pin: int, initial: bool) -> None:
        self.levels[pin] = initial
        self.log.append(("setup", pin, initial, time.monotonic()))

    def write(self, pin: int, level: bool) -> None:
        if pin not in self.levels:
            raise RuntimeError(f"The GPIO channel {pin} has not been set up as an OUTPUT")
        self.levels[pin] = level
        self.log.append(("write", pin, level, time.monotonic()))

    def release(self, pin: int) -> None:
        self.levels.pop(pin, None)
        self.released.append(pin)

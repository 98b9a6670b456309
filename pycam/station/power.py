"""Two-Pi power: a GPIO pulse switches the second Pi (camera B + spectrometer) on or off.

PyCam pulses BCM pin 23 at boot to power the slave, and the watchdog power-cycles it when
restarting acquisition did not help.  The pin sits behind the small :class:`Gpio` interface
(``setup_output``, ``write``, ``release``); :class:`RPiGpio` implements it with ``RPi.GPIO``
(on a Pi 5 the ``rpi-lgpio`` package provides the same module), tests use a fake.

Run on the master: ``python -m pycam.station.power --config station.toml pulse|cycle``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class PowerError(RuntimeError):
    """The GPIO cannot be driven (the message names the pin and the reason)."""


class Gpio(Protocol):
    def setup_output(self, pin: int, initial: bool) -> None: ...

    def write(self, pin: int, level: bool) -> None: ...

    def release(self, pin: int) -> None: ...


class RPiGpio:
    """``RPi.GPIO`` in BCM numbering (imported when first used)."""

    def __init__(self) -> None:
        try:
            import RPi.GPIO as gpio  # noqa: PLC0415 - only on a Raspberry Pi
        except Exception as exc:
            raise PowerError(f"RPi.GPIO not available: {exc}") from None
        self._gpio = gpio
        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)

    def setup_output(self, pin: int, initial: bool) -> None:
        self._gpio.setup(pin, self._gpio.OUT, initial=self._gpio.HIGH if initial else self._gpio.LOW)

    def write(self, pin: int, level: bool) -> None:
        self._gpio.output(pin, self._gpio.HIGH if level else self._gpio.LOW)

    def release(self, pin: int) -> None:
        self._gpio.cleanup(pin)


class SecondPiPower:
    """Pulses ``pin`` high for ``pulse_s`` (each pulse toggles the second Pi's power)."""

    def __init__(self, gpio: Gpio, pin: int, pulse_s: float, *, sleep: Callable[[float], None] = time.sleep,
                 off_wait_s: float = 20.0) -> None:
        if pulse_s <= 0:
            raise ValueError("pulse length must be positive")
        self.gpio = gpio
        self.pin = int(pin)
        self.pulse_s = float(pulse_s)
        self.off_wait_s = float(off_wait_s)
        self._sleep = sleep

    def pulse(self) -> None:
        try:
            self.gpio.setup_output(self.pin, False)
            self.gpio.write(self.pin, True)
            try:
                self._sleep(self.pulse_s)
            finally:
                self.gpio.write(self.pin, False)
        except PowerError:
            raise
        except Exception as exc:
            raise PowerError(f"GPIO {self.pin}: cannot pulse: {exc}") from None
        finally:
            try:
                self.gpio.release(self.pin)
            except Exception:
                pass
        log.info("power: pulsed GPIO %d for %.2f s", self.pin, self.pulse_s)

    def power_cycle(self) -> None:
        """Off, wait for the shutdown, on again."""
        self.pulse()
        self._sleep(self.off_wait_s)
        self.pulse()

    @classmethod
    def from_config(cls, config, gpio: Gpio | None = None, **kw) -> "SecondPiPower":
        hw = config["hardware"]
        return cls(gpio if gpio is not None else RPiGpio(), hw["power_gpio_pin"], hw["power_pulse_s"], **kw)


def main(argv: list[str] | None = None) -> int:
    from pycam.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m pycam.station.power",
                                     description="switch the second Pi on/off with a GPIO pulse")
    parser.add_argument("--config", required=True, help="station configuration file (TOML)")
    parser.add_argument("action", choices=("pulse", "cycle"),
                        help="pulse: one pulse (toggles power); cycle: off, wait, on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        power = SecondPiPower.from_config(load_config(args.config))
        power.pulse() if args.action == "pulse" else power.power_cycle()
    except (ConfigError, PowerError) as exc:
        print(f"pycam power: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

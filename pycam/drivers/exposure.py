"""Auto-exposure: pure functions, no I/O.

Camera (PyCam ATA/ATB): the *saturation* of a frame is the mean of its ``pixels`` (PyCam PXC)
brightest pixels among the rows ``frame[:rows]`` (PyCam RWC: positive = the top ``rows``
rows, negative = all but the bottom ``|rows|`` rows, 0 = every row; ``pixels`` 0 means the
single brightest pixel), divided by the full-scale value (1023).  Spectrometer (ATS): the mean of the ``pixels`` (PXS) highest counts between
``wavelength_min`` and ``wavelength_max`` (WMN/WMX, default 300–340 nm) divided by 65535.

The step is proportional, not one list entry per frame as in PyCam: the sensor is linear,
``counts = dark + rate · exposure``, so the exposure that puts the saturation at the middle
of the target band [min, max] is ``t · (target − dark) / (measured − dark)``.  One step lands
inside the band after any brightness change that does not saturate the frame; a saturated
frame (half or more of the selected brightest pixels at full scale) says only that the
signal is *at least* full scale, so the exposure is divided by ``saturated_divisor`` (4) and
the next frame is measured properly.  After a ×4 brightness step the band is reached in 1–2
frames, after ×0.25 in 1; every result is clipped to the driver's limits.
"""
from __future__ import annotations

import dataclasses

import numpy as np

#: Fraction of the selected pixels at full scale from which a frame counts as saturated.
SATURATED_FRACTION = 0.5


class ExposureError(ValueError):
    """Bad input to the exposure control (empty frame, bad window, bad limits)."""


@dataclasses.dataclass(frozen=True)
class ExposureDecision:
    """The next exposure and why."""

    value: int                 # next shutter (µs) or integration time (ms), clipped to the limits
    saturation: float          # measured saturation of the frame (0..1)
    action: str                # "keep", "increase", "decrease", "saturated", "at-limit"
    in_band: bool              # the measured saturation was inside [min, max]


def _select_rows(frame: np.ndarray, rows: int) -> np.ndarray:
    if frame.ndim != 2 or frame.size == 0:
        raise ExposureError(f"camera frame must be a non-empty 2-D array, got shape {frame.shape}")
    if rows == 0:
        return frame
    selected = frame[:rows]
    if selected.size == 0:
        raise ExposureError(f"rows={rows} selects no rows of a {frame.shape[0]}-row frame")
    return selected


def _brightest_mean(values: np.ndarray, pixels: int) -> tuple[float, np.ndarray]:
    flat = values.ravel()
    n = int(min(max(1, pixels), flat.size))
    top = np.partition(flat, flat.size - n)[flat.size - n:]
    return float(np.mean(top)), top


def camera_saturation(frame: np.ndarray, pixels: int = 1000, rows: int = -1, max_dn: int = 1023) -> float:
    """Mean of the ``pixels`` brightest pixels of ``frame[:rows]`` divided by ``max_dn``."""
    mean, _ = _brightest_mean(_select_rows(np.asarray(frame), rows), pixels)
    return mean / max_dn


def spectrometer_saturation(wavelengths: np.ndarray, counts: np.ndarray, wavelength_min: float = 300.0,
                            wavelength_max: float = 340.0, pixels: int = 2, max_counts: float = 65535.0) -> float:
    """Mean of the ``pixels`` highest counts in the window divided by ``max_counts``."""
    window = _spectrum_window(wavelengths, counts, wavelength_min, wavelength_max)
    mean, _ = _brightest_mean(window, pixels)
    return mean / max_counts


def _spectrum_window(wavelengths, counts, lo, hi) -> np.ndarray:
    wl, c = np.asarray(wavelengths, float), np.asarray(counts, float)
    if wl.shape != c.shape or wl.ndim != 1:
        raise ExposureError(f"wavelengths and counts must be 1-D of equal length, got {wl.shape} and {c.shape}")
    if lo >= hi:
        raise ExposureError(f"saturation window {lo}-{hi} nm is empty")
    window = c[(wl >= lo) & (wl <= hi)]
    if window.size == 0:
        raise ExposureError(f"no spectrometer pixels between {lo} and {hi} nm")
    return window


def proportional_exposure(current: float, saturation: float, *, min_saturation: float, max_saturation: float,
                          dark_fraction: float, minimum: float, maximum: float, saturated: bool,
                          saturated_divisor: float = 4.0) -> tuple[float, str]:
    """The next exposure (unrounded) for a measured saturation; see the module docstring."""
    if not 0 <= min_saturation < max_saturation <= 1:
        raise ExposureError(f"saturation band must satisfy 0 <= min < max <= 1, got {min_saturation}, {max_saturation}")
    if not 0 < minimum <= maximum:
        raise ExposureError(f"exposure limits must satisfy 0 < min <= max, got {minimum}, {maximum}")
    if current <= 0:
        raise ExposureError(f"current exposure must be positive, got {current}")
    if saturated:
        proposed, action = current / saturated_divisor, "saturated"
    elif min_saturation <= saturation <= max_saturation:
        return current, "keep"
    else:
        target = 0.5 * (min_saturation + max_saturation)
        signal = saturation - dark_fraction
        if signal <= 1e-6:
            proposed = current * saturated_divisor * 4   # no light above the dark level: open up a lot
        else:
            proposed = current * (target - dark_fraction) / signal
        action = "increase" if proposed > current else "decrease"
    clipped = float(min(maximum, max(minimum, proposed)))
    if clipped != proposed and clipped == current:
        action = "at-limit"
    return clipped, action


def next_camera_shutter(frame: np.ndarray, shutter_us: int, *, min_saturation: float = 0.7,
                        max_saturation: float = 0.9, pixels: int = 1000, rows: int = -1,
                        min_shutter_us: int = 32, max_shutter_us: int = 6_000_000, max_dn: int = 1023,
                        dark_dn: float = 15.0) -> ExposureDecision:
    """The shutter (µs) for the next frame, from this frame taken at ``shutter_us``.

    ``dark_dn`` is the sensor's dark offset (counts with no light), removed before scaling.
    """
    selected = _select_rows(np.asarray(frame), rows)
    mean, top = _brightest_mean(selected, pixels)
    saturation = mean / max_dn
    saturated = float(np.mean(top >= max_dn)) >= SATURATED_FRACTION
    value, action = proportional_exposure(
        float(shutter_us), saturation, min_saturation=min_saturation, max_saturation=max_saturation,
        dark_fraction=dark_dn / max_dn, minimum=min_shutter_us, maximum=max_shutter_us, saturated=saturated)
    return ExposureDecision(int(round(value)), saturation, action,
                            (min_saturation <= saturation <= max_saturation) and not saturated)


def next_integration_time(wavelengths: np.ndarray, counts: np.ndarray, integration_ms: int, *,
                          min_saturation: float = 0.6, max_saturation: float = 0.9, pixels: int = 2,
                          wavelength_min: float = 300.0, wavelength_max: float = 340.0,
                          min_integration_ms: int = 1, max_integration_ms: int = 10_000,
                          max_counts: float = 65535.0, dark_counts: float = 1000.0) -> ExposureDecision:
    """The spectrometer integration time (ms) for the next spectrum."""
    window = _spectrum_window(wavelengths, counts, wavelength_min, wavelength_max)
    mean, top = _brightest_mean(window, pixels)
    saturation = mean / max_counts
    saturated = float(np.mean(top >= max_counts)) >= SATURATED_FRACTION
    value, action = proportional_exposure(
        float(integration_ms), saturation, min_saturation=min_saturation, max_saturation=max_saturation,
        dark_fraction=dark_counts / max_counts, minimum=min_integration_ms, maximum=max_integration_ms,
        saturated=saturated)
    return ExposureDecision(int(max(min_integration_ms, round(value))), saturation, action,
                            (min_saturation <= saturation <= max_saturation) and not saturated)

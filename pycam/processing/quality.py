"""Quality flags of emission-rate samples: one bit and one short reason code per problem.

Every emission-rate sample (a row of a ``*_EmissionRates_<mode>.txt`` file, a
:class:`~pycam.processing.emission.EmissionRate`) carries ``flag`` (an int bitmask, 0 = good)
and ``flag_reason`` (the codes of the set bits joined by ``;``, empty when good).  The CSV
gets the two columns after PyCam's eight.  Readers (live chain, reprocessing, GUI) only read
these; the chain (:mod:`pycam.processing.chain`, :mod:`pycam.processing.emission`,
:mod:`pycam.processing.pipeline`) sets them.

Two kinds of flag:

* **invalidating** (:data:`INVALIDATING`): the value would be meaningless (a degenerate flow
  field, a failed background, no calibration, a histogram analysis that was rejected, a
  cross-correlation peak at the edge of its search window).  The flux and velocity of such a
  sample are written empty, never as a valid (near-)zero rate; the ICA mass is kept.
* **warning** (the rest): the value is kept but should be treated with care (a weak
  cross-correlation, a cloudy sky reference, a stale calibration, a poor DOAS fit).

Summaries count a sample as valid only when its flag is 0.
"""
from __future__ import annotations

import enum
from typing import Iterable


class Flag(enum.IntFlag):
    LOW_CONTRAST = 1 << 0       # the plume barely stands out of the sky noise in the flow input
    FLOW_NEAR_ZERO = 1 << 1     # the flow field on the plume is (almost) zero
    FEW_VECTORS = 1 << 2        # too few usable flow vectors on the plume part of the line
    BG_OUT_OF_BOUNDS = 1 << 3   # sky reference column outside [ref_check_lower, ref_check_upper]
    BG_CLOUD = 1 << 4           # structured column (cloud) in the sky reference region
    XCORR_WEAK = 1 << 5         # cross-correlation peak below flag_xcorr_min_r
    XCORR_EDGE = 1 << 6         # cross-correlation peak at the edge of its search window
    CAL_STALE = 1 << 7          # calibration fit further than cal_max_age_mins from the image
    CAL_MISSING = 1 << 8        # no calibration valid for the image
    DOAS_FLAGGED = 1 << 9       # the DOAS calibration fit valid at the image is poor (r^2 low)
    HISTO_REJECTED = 1 << 10    # the flow-histogram analysis was rejected (no histo/hybrid value)
    NO_FLOW = 1 << 11           # no flow field (first image of a sequence, time step not positive)
    XCORR_NONE = 1 << 12        # no cross-correlation velocity yet (series too short or uncorrelated)


#: Flags whose sample has no valid value (flux and velocity written empty).
INVALIDATING = (Flag.LOW_CONTRAST | Flag.FLOW_NEAR_ZERO | Flag.FEW_VECTORS | Flag.BG_OUT_OF_BOUNDS
                | Flag.CAL_MISSING | Flag.HISTO_REJECTED | Flag.NO_FLOW | Flag.XCORR_EDGE | Flag.XCORR_NONE)

#: The flags that describe the optical-flow field (shared by flow_raw, flow_histo, flow_hybrid).
FLOW_FIELD_FLAGS = Flag.LOW_CONTRAST | Flag.FLOW_NEAR_ZERO | Flag.FEW_VECTORS | Flag.NO_FLOW


def reason(flag: int) -> str:
    """The ``;``-joined reason codes of ``flag`` (bit order), empty for 0."""
    return ";".join(f.name for f in Flag if int(flag) & int(f))


def parse_reason(text: str) -> Flag:
    """The flag of a ``flag_reason`` text (raises ValueError naming an unknown code)."""
    out = Flag(0)
    for code in filter(None, (c.strip() for c in (text or "").split(";"))):
        try:
            out |= Flag[code]
        except KeyError:
            raise ValueError(f"unknown quality flag code {code!r}") from None
    return out


def combine(flags: Iterable[int]) -> Flag:
    out = Flag(0)
    for f in flags:
        out |= Flag(int(f))
    return out


def invalidates(flag: int) -> bool:
    return bool(int(flag) & int(INVALIDATING))


class FlagNotes:
    """A flag with a human-readable detail per code (for logs and the GUI tooltip)."""

    def __init__(self) -> None:
        self.flag = Flag(0)
        self.details: dict[str, str] = {}

    def add(self, flag: Flag, detail: str = "") -> None:
        self.flag |= flag
        if detail:
            self.details[flag.name] = detail

    def __bool__(self) -> bool:
        return bool(self.flag)

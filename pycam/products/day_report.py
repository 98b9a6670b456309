"""Daily summary plot of a station-day's netCDF: emission rate per line with its error band,
plume speed, and the flagged samples (matplotlib, Agg; written atomically as PNG)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from pycam.formats.atomic import atomic_write_bytes


def render_day(nc_path: os.PathLike | str, png_path: os.PathLike | str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import xarray as xr

    with xr.open_dataset(nc_path) as ds:
        ds = ds.load()
    fig, (ax_rate, ax_speed) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True)
    t = ds["time"].values
    for j, line in enumerate(ds["line_name"].values):
        sel = ds.isel(line=j)
        rate = sel["so2_emission_rate"].values
        err = sel["so2_emission_rate_uncertainty"].values
        flag = sel["quality_flag"].values
        good = flag == 0
        (h,) = ax_rate.plot(t, np.where(good, rate, np.nan), "-", lw=1.2, label=f"line {line}")
        ax_rate.fill_between(t, np.where(good, rate - err, np.nan), np.where(good, rate + err, np.nan),
                             color=h.get_color(), alpha=0.2, lw=0)
        bad = ~good & np.isfinite(rate)
        if bad.any():
            ax_rate.plot(t[bad], rate[bad], "x", color="0.5", ms=4)
        ax_speed.plot(t, np.where(good, sel["plume_speed"].values, np.nan), "-", lw=1.0, color=h.get_color(),
                      label=f"line {line}")
        flagged = ~good
        if flagged.any():
            ax_rate.plot(t[flagged], np.zeros(flagged.sum()), "|", color="tab:red", ms=8)
    n = ds.sizes["time"] * max(1, ds.sizes["line"])
    n_flag = int((ds["quality_flag"].values != 0).sum())
    ax_rate.set_ylabel("SO$_2$ emission rate [kg/s]")
    ax_rate.set_title(f"{ds.attrs.get('title', '')} — {ds.attrs.get('velocity_mode', '')}; "
                      f"{n_flag}/{n} samples flagged (grey x, red ticks)", fontsize=9)
    ax_rate.legend(loc="upper right", fontsize=8)
    ax_speed.set_ylabel("plume speed [m/s]")
    ax_speed.set_xlabel("time (UTC)")
    for ax in (ax_rate, ax_speed):
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(png_path, buf.getvalue())

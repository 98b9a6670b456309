"""CF-1.8 netCDF time series of a station's emission rates (one file a day, plus a merged file).

Variables (dimensions ``line`` and ``time``; coordinate ``line`` is the line index and
``line_name`` the PCS line name):

* ``so2_emission_rate`` [kg s-1] and ``so2_emission_rate_total`` (sum over the lines; it is
  a total only where the lines cross different parts of the plume), each with a
  ``*_uncertainty`` (1-sigma, PyCam's error propagation) and a ``*_quality_flag`` named in
  ``ancillary_variables``;
* ``plume_speed`` [m s-1] (effective speed normal to the line) with its uncertainty;
* ``ica_mass`` [kg m-1] (integrated column amount along the line) with its uncertainty (the
  settings' relative column and footprint errors in quadrature);
* ``quality_flag`` (bit field: ``flag_masks``/``flag_meanings``; 0 = good): the chain's
  :class:`pycam.processing.quality.Flag` bits, plus ``no_value`` where no rate was computed.

Coordinates/attributes: ``time`` (UTC), ``line``; the station position (``latitude``,
``longitude``, ``altitude``) and viewing direction from the camera geometry; global attributes
carry the provenance: software version, the full settings text, the input manifest hash, the
velocity mode.  Nothing time-dependent (no creation date) is written, so the same inputs give
the same file.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pycam.formats.atomic import atomic_path

#: bits of ``quality_flag`` written by this module besides the processing chain's own
NO_VALUE_BIT = 1 << 30
NO_VALUE_MEANING = "no_value"


@dataclasses.dataclass
class RateSample:
    """One emission-rate row of one line (the numbers of a PyCam CSV row)."""

    time: dt.datetime
    line: str
    flux: float
    flux_err: float
    velo: float
    velo_err: float
    ica_mass: float
    flag: int = 0


@dataclasses.dataclass
class StationInfo:
    station: str
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    elevation_deg: float | None = None
    azimuth_deg: float | None = None
    volcano: str = ""


def _flag_table() -> tuple[list[int], list[str]]:
    """The processing chain's flag bits (:class:`pycam.processing.quality.Flag`) and ``no_value``."""
    from pycam.processing.quality import Flag

    masks = [int(f.value) for f in Flag]
    names = [str(f.name).lower() for f in Flag]
    return masks + [NO_VALUE_BIT], names + [NO_VALUE_MEANING]


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def build_dataset(samples: Sequence[RateSample], station: StationInfo, *, settings_text: str = "",
                  manifest_hash: str = "", velocity_mode: str = "", title_suffix: str = "",
                  ica_rel_err: float = float("nan")):
    """An ``xarray.Dataset`` of ``samples`` (see the module docstring); ``ica_rel_err`` is the
    relative ICA-mass uncertainty (the column and footprint errors in quadrature)."""
    import xarray as xr

    from pycam import __version__

    lines = sorted({s.line for s in samples if s.line != "total"}, key=_line_key)
    times = sorted({s.time for s in samples})
    ti = {t: i for i, t in enumerate(times)}
    li = {name: j for j, name in enumerate(lines)}
    shape = (len(times), len(lines))
    arrays = {k: np.full(shape, np.nan) for k in ("flux", "flux_err", "velo", "velo_err", "ica")}
    flags = np.full(shape, NO_VALUE_BIT, dtype=np.int32)
    total = np.full(len(times), np.nan)
    total_err = np.full(len(times), np.nan)
    total_flag = np.full(len(times), NO_VALUE_BIT, dtype=np.int32)
    for s in samples:
        i = ti[s.time]
        if s.line == "total":
            total[i], total_err[i] = _nan(s.flux), _nan(s.flux_err)
            total_flag[i] = int(s.flag) | (NO_VALUE_BIT if not np.isfinite(_nan(s.flux)) else 0)
            continue
        j = li[s.line]
        for key, value in (("flux", s.flux), ("flux_err", s.flux_err), ("velo", s.velo),
                           ("velo_err", s.velo_err), ("ica", s.ica_mass)):
            arrays[key][i, j] = _nan(value)
        flags[i, j] = int(s.flag) | (NO_VALUE_BIT if not np.isfinite(_nan(s.flux)) else 0)
    if not any(s.line == "total" for s in samples) and lines:
        good = np.isfinite(arrays["flux"])
        total = np.where(good.any(axis=1), np.nansum(arrays["flux"], axis=1), np.nan)
        total_err = np.sqrt(np.nansum(arrays["flux_err"] ** 2, axis=1))
        total_flag = np.bitwise_or.reduce(flags, axis=1) if lines else total_flag
    masks, meanings = _flag_table()
    flag_attrs = {"long_name": "quality flag of the emission-rate sample (0 = good)",
                  "flag_masks": np.array(masks, dtype=np.int32), "flag_meanings": " ".join(meanings),
                  "comment": "bit field: a sample is good only when no bit is set"}
    tl = ("line", "time")      # CF: further dimensions left of T
    ds = xr.Dataset(
        {
            "so2_emission_rate": (tl, arrays["flux"].T, {
                "long_name": "SO2 emission rate through the plume cross-section line", "units": "kg s-1",
                "ancillary_variables": "so2_emission_rate_uncertainty quality_flag"}),
            "so2_emission_rate_uncertainty": (tl, arrays["flux_err"].T, {
                "long_name": "1-sigma uncertainty of so2_emission_rate", "units": "kg s-1"}),
            "plume_speed": (tl, arrays["velo"].T, {
                "long_name": "effective plume speed normal to the line", "units": "m s-1",
                "ancillary_variables": "plume_speed_uncertainty quality_flag"}),
            "plume_speed_uncertainty": (tl, arrays["velo_err"].T, {
                "long_name": "1-sigma uncertainty of plume_speed", "units": "m s-1"}),
            "ica_mass": (tl, arrays["ica"].T, {
                "long_name": "integrated SO2 column amount along the line", "units": "kg m-1",
                "ancillary_variables": "ica_mass_uncertainty quality_flag"}),
            "ica_mass_uncertainty": (tl, np.abs(arrays["ica"].T) * ica_rel_err, {
                "long_name": "1-sigma uncertainty of ica_mass", "units": "kg m-1",
                "comment": "relative column error (cd_err_rel) and footprint error (dist_err_rel) in quadrature"}),
            "quality_flag": (tl, flags.T, flag_attrs),
            "so2_emission_rate_total": ("time", total, {
                "long_name": "SO2 emission rate summed over the lines", "units": "kg s-1",
                "ancillary_variables": "so2_emission_rate_total_uncertainty so2_emission_rate_total_quality_flag"}),
            "so2_emission_rate_total_uncertainty": ("time", total_err, {
                "long_name": "1-sigma uncertainty of so2_emission_rate_total", "units": "kg s-1"}),
            "so2_emission_rate_total_quality_flag": ("time", total_flag, dict(flag_attrs)),
        },
        coords={
            "time": ("time", np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in times],
                                      dtype="datetime64[ns]"),
                     {"standard_name": "time", "long_name": "time of the image pair (UTC)", "axis": "T"}),
            "line": ("line", np.arange(len(lines), dtype=np.int32), {"long_name": "plume cross-section line index"}),
            "line_name": ("line", np.array(lines, dtype=object), {"long_name": "plume cross-section line name"}),
        },
    )
    if station.latitude is not None:
        ds = ds.assign_coords(
            latitude=((), float(station.latitude), {"standard_name": "latitude", "units": "degrees_north",
                                                   "long_name": "camera latitude"}),
            longitude=((), float(station.longitude), {"standard_name": "longitude", "units": "degrees_east",
                                                     "long_name": "camera longitude"}),
            altitude=((), float(station.altitude), {"standard_name": "altitude", "units": "m", "positive": "up",
                                                   "long_name": "camera altitude above sea level"}))
        for name in ("so2_emission_rate", "plume_speed", "ica_mass", "so2_emission_rate_total"):
            ds[name].attrs["coordinates"] = "latitude longitude altitude"
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": f"SO2 emission rates from the UV camera station {station.station}{title_suffix}",
        "institution": "unspecified",
        "source": "PyCam UV SO2 camera (on-band ~310 nm, off-band ~330 nm) processed with pycam",
        "history": f"pycam {__version__} reprocess",
        "references": "Wilkes et al. (PyCam); Gliss et al. 2017 (pyplis)",
        "comment": "emission rates per plume cross-section line; see quality_flag before use",
        "station": station.station,
        "volcano": station.volcano,
        "camera_elevation_deg": _nan(station.elevation_deg),
        "camera_azimuth_deg": _nan(station.azimuth_deg),
        "velocity_mode": velocity_mode,
        "pycam_version": __version__,
        "processing_settings": settings_text,
        "input_manifest_sha256": manifest_hash,
    }
    return ds


def _line_key(name: str):
    return (0, int(name), "") if str(name).isdigit() else (1, 0, str(name))


def _encoding(ds) -> dict:
    enc = {"time": {"units": "seconds since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}}
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f":
            enc[name] = {"_FillValue": np.nan, "zlib": True, "complevel": 4}
        elif var.dtype.kind == "i":
            enc[name] = {"_FillValue": None}
    for name in ("line", "line_name", "latitude", "longitude", "altitude"):
        if name in ds.variables:
            enc[name] = {"_FillValue": None}
    enc["time"]["_FillValue"] = None
    return enc


def write_netcdf(ds, path: os.PathLike | str) -> Path:
    """Write ``ds`` (from :func:`build_dataset`) atomically as netCDF-4."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))
    return Path(path)


def merge_files(paths: Iterable[os.PathLike | str], out: os.PathLike | str, *, manifest_hash: str,
                title_suffix: str = " (all days)") -> Path:
    """Concatenate daily files along ``time`` into ``out`` (attributes of the last day, plus
    the list of merged days and a hash over their manifests)."""
    import xarray as xr

    days = []
    hashes = []
    for p in sorted(Path(x) for x in paths):
        with xr.open_dataset(p) as d:
            days.append(d.load())
        hashes.append(days[-1].attrs.get("input_manifest_sha256", ""))
    flags = {"quality_flag": NO_VALUE_BIT, "so2_emission_rate_total_quality_flag": NO_VALUE_BIT}
    merged = xr.concat(days, dim="time", join="outer", combine_attrs="override", data_vars="all",
                       fill_value={**{k: np.nan for k in days[-1].data_vars if k not in flags}, **flags})
    merged = merged.sortby("time")
    for name, var in days[-1].variables.items():    # concat may drop or widen attributes
        if name in merged.variables:
            merged[name].attrs = dict(var.attrs)
    merged.attrs = dict(days[-1].attrs)
    merged.attrs["title"] = merged.attrs.get("title", "") + title_suffix
    merged.attrs["input_manifest_sha256"] = manifest_hash
    merged.attrs["daily_manifests_sha256"] = " ".join(hashes)
    return write_netcdf(merged, out)

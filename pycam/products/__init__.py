"""Data products for observatories: CF netCDF time series, zarr SO2 image cubes, daily report plots.

Floor 2 (like ``pycam.processing``): files in, files out; xarray/netCDF/zarr are imported
only by the functions that need them.
"""

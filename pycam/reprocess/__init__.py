"""``pycam reprocess``: plan an archive into station-days and process them on Dask (floor 3)."""

"""PyCam file formats: names, images, spectra and atomic file writes (floor 1: no I/O beyond files)."""

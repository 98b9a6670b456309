"""Spectrometer science (floor 2): DOAS retrieval, light dilution, camera FOV calibration."""

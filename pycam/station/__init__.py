"""Station services (master, camera, spectrometer), exposure control, schedule and the client (floor 3)."""

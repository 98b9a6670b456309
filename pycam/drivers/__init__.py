"""Device drivers: one interface per device kind (``base``), implemented by the simulator,
picamera2, gphoto2 and seabreeze drivers (floor 2)."""

"""Device drivers: one interface per device kind on one shared base (``base``: open, close,
limits, declared capabilities and their resolver ``supports``), implemented by the simulator,
replay, picamera2, gphoto2 and seabreeze drivers (floor 2)."""

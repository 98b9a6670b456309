"""Faithful fakes of the hardware libraries the field drivers wrap (picamera2, seabreeze,
python-gphoto2, GPIO).  Each keeps the library's call names, argument forms and error
behaviour for the calls our drivers make; see each module's docstring."""

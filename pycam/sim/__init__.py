"""The station's digital twin: scene, optics, spectrometer and the data-set writer.

Used by the simulator drivers (``pycam.drivers.sim``) and ``pycam simulate``.
"""

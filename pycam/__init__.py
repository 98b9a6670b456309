"""PyCam: UV SO2 camera station software (station services, simulator, processing, DOAS, GUI).

Importing the package has no side effects; import the submodule you need.
"""
__version__ = "0.1.0"

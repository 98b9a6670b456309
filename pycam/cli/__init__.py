"""The ``pycam`` command line (floor 5)."""

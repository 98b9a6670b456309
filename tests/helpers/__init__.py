"""Helpers shared by every test folder (importable as ``helpers`` through pytest's ``pythonpath``
option in pyproject.toml; a subprocess that needs them gets ``tests/`` on its PYTHONPATH).

- ``helpers.net.free_port``: a free loopback TCP port
- ``helpers.waiting.wait_for``: poll a predicate until it holds or fail the test
- ``helpers.station_config``: a valid station config file/object on free ports with a fresh secret
- ``helpers.processes.sigint_default``: ``preexec_fn`` for a child a test stops with Ctrl-C
- ``helpers.hardware``: the fixtures that plant the fake hardware libraries (``helpers.hwfakes``)
"""

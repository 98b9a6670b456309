from __future__ import annotations

import pytest
from station_helpers import InProcessStation


@pytest.fixture
def station(station_config):
    st = InProcessStation(station_config)
    st.wait_devices()
    yield st
    st.close()

"""The live chain's DOAS (the GUI's DoasAdapter, whose columns feed the live calibration) uses
the ``[doas]`` retrieval: light-dilution corrected columns when ``use_light_dilution_spec``."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.formats.spectrum import SpectrumFrame

COLUMN = 4e18
COADD = 10


def _frame(model, column: float, n: int, frame_type: str = "Plume"):
    counts = model.spectrum_for_column(column, coadd=COADD, frame_type=frame_type, realisation=n)
    when = dt.datetime(2026, 5, 1, 12) + dt.timedelta(seconds=10 * n)
    return SpectrumFrame(wavelengths=model.wavelengths.copy(), counts=counts, time=when, integration_ms=1000,
                         coadd=COADD, frame_type=frame_type, filename=f"s{n}.npy")


@pytest.mark.parametrize("corrected", [False, True])
def test_live_doas_columns_are_dilution_corrected_when_enabled(data_dir, tmp_path, corrected):
    from pycam.gui.views import DoasAdapter
    from pycam.reference_spectra import load_reference_dir
    from pycam.sim.spectrometer_model import SpectrometerModel

    model = SpectrometerModel(None, load_reference_dir(data_dir / "reference"), seed=4, noise=True,
                              extinction=(5.5e-5, 5.5e-5), plume_distance_m=5000.0)    # L = 0.24, grey
    adapter = DoasAdapter({"reference_dir": data_dir / "reference", "use_light_dilution_spec": corrected,
                           "cache_dir": tmp_path})
    adapter.set_dark(_frame(model, 0.0, 0, "Dark"))
    adapter(_frame(model, 0.0, 1))                                    # clear sky: the line shape calibrates
    shown = [adapter(_frame(model, COLUMN, n)) for n in range(2, 6)]
    assert all(d.ok for d in shown)
    mean = np.mean([d.column for d in shown])
    if corrected:
        assert mean == pytest.approx(COLUMN, rel=0.05)
        assert all("LDF 0.2" in d.note for d in shown)
    else:
        assert mean < 0.65 * COLUMN                                    # diluted: the plain fit is far low
        assert all("LDF" not in d.note for d in shown)

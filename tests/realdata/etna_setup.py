"""The Etna 2015 set-up (pyplis's test_highlevel_examples.py and example scripts) and helpers
that run pyplis's own building blocks on it."""
from __future__ import annotations

import datetime as dt
import warnings

import numpy as np

UTC = dt.timezone.utc
START_PLUME = dt.datetime(2015, 9, 16, 7, 10, tzinfo=UTC)
STOP_PLUME = dt.datetime(2015, 9, 16, 7, 20, tzinfo=UTC)
START_CALIB = dt.datetime(2015, 9, 16, 6, 59, tzinfo=UTC)
STOP_CALIB = dt.datetime(2015, 9, 16, 7, 3, tzinfo=UTC)
#: cell id -> column, molec/cm2 (pyplis's CALIB_CELLS; the second number there is the error)
CELLS = {"a37": 8.59e17, "a53": 4.15e17, "a57": 19.24e17}
CELL_ERRORS = {"a37": 2.00e17, "a53": 1.00e17, "a57": 3.00e17}
PLUME_FILE = "EC2_1106307_1R02_2015091607110434_F01_Etna.fts"
PLUME_FILE_NEXT = "EC2_1106307_1R02_2015091607113241_F01_Etna.fts"
BG_FILE_ON = "EC2_1106307_1R02_2015091607022602_F01_Etna.fts"
BG_FILE_OFF = "EC2_1106307_1R02_2015091607022216_F02_Etna.fts"
#: pyplis's test line (pyramid level 0) and the "young_plume" PCS of its examples (level 1)
TEST_LINE_L0 = (630, 780, 1000, 350, "left")
YOUNG_PLUME_L1 = (345, 350, 450, 195, "left")
#: plume distance and pixel footprint pyplis's MeasGeometry gives without topography (level 0)
PLUME_DISTANCE_M = 10909.873
PIXEL_PITCH_M = 4.65e-6
FOCAL_LENGTH_M = 25e-3
#: what pyplis 1.5's test_optflow asserts on the test pair (len mean, angle mean, dir mu,
#: dir sigma, len mu / dt, len sigma / dt, dt, significance)
PYPLIS_FLOW_NOMINAL = (0.658797, -41.952854, -65.971787, 22.437565, 0.128414, 0.086898, 28.07, 0.518644)


def pp_camera(pyplis):
    filters = [pyplis.Filter(type="on", acronym="F01"), pyplis.Filter(type="off", acronym="F02")]
    return pyplis.Camera("ecII", filter_list=filters, lon=15.1129, lat=37.73122, altitude=800, elev=20.0,
                         elev_err=5.0, azim=270.0, azim_err=10.0, alt_offset=15.0, focal_length=FOCAL_LENGTH_M)


def pp_setup(pyplis, directory, start, stop, cells=None):
    stp = pyplis.MeasSetup(str(directory), camera=pp_camera(pyplis), source=pyplis.Source("etna"),
                           wind_info={"dir": 0.0, "dir_err": 1.0},
                           cell_info_dict={k: [v, CELL_ERRORS[k]] for k, v in (cells or {}).items()},
                           auto_topo_access=False)
    stp.start = start.replace(tzinfo=None)
    stp.stop = stop.replace(tzinfo=None)
    return stp


class PyplisFrames:
    """pyplis Img objects at a pyramid level, dark-corrected with pyplis's own dark model."""

    def __init__(self, pyplis, directory, level: int) -> None:
        from pyplis.custom_image_import import load_ecII_fits

        self.pyplis = pyplis
        self.fun = load_ecII_fits
        self.dir = directory
        self.level = level
        self.offset = self.load(next(directory.glob("*_D0L_*.fts")))
        self.dark = self.load(next(directory.glob("*_D1L_*.fts")))

    def load(self, path):
        """The frame at ``level``; made float first (pyplis would pyrUp the 8-bit data in
        8 bits, rounding every step: ~0.005 of AA noise that our float frames do not have)."""
        img = self.pyplis.Img(str(path), self.fun)
        img.img = img.img.astype(np.float64)
        return img.to_pyrlevel(self.level)

    def corrected(self, path):
        from pyplis.image import model_dark_image

        img = self.load(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dark = model_dark_image(img.meta["texp"], self.dark, self.offset)
        img.subtract_dark_image(dark)
        return img

    def aa(self, on_path, off_path, bg_on, bg_off, rect):
        """pyplis's AA image, background mode 1 (clear-sky images scaled on ``rect``)."""
        from pyplis.plumebackground import PlumeBackgroundModel

        model = PlumeBackgroundModel()
        model.mode = 1
        model.scale_rect = list(rect)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.get_aa_image(self.corrected(on_path), self.corrected(off_path), bg_on, bg_off,
                                      check_state=False)


def pp_line_profile_dists(pyplis, geometry, line, level: int) -> np.ndarray:
    """pyplis's pixel footprint (m) along ``line`` at pyramid ``level`` (no topography)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dist_img = geometry.compute_all_integration_step_lengths(pyrlevel=level)[0]
    return np.asarray(line.get_line_profile(dist_img.img if hasattr(dist_img, "img") else dist_img))

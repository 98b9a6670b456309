"""Spectrometer science (floor 2: numpy/scipy only): DOAS retrieval, light dilution, camera FOV calibration.

Modules (import what you need; nothing is imported here):

* :mod:`pycam.doas.spectra` — reading PyCam ``.npy``/text spectra, checks, dark and stray light.
* :mod:`pycam.doas.lineshape` — super-Gaussian and measured instrument line shapes.
* :mod:`pycam.doas.model` — the iFit-style intensity forward model with its analytic Jacobian.
* :mod:`pycam.doas.fitter` — our Levenberg–Marquardt solver.
* :mod:`pycam.doas.retrieval` — :class:`~pycam.doas.retrieval.DoasRetrieval`: one fit per spectrum.
* :mod:`pycam.doas.dilution` — two-waveband light-dilution correction with a cached look-up grid.
* :mod:`pycam.doas.fov` — DOAS field-of-view search and AA-to-column calibration for the cameras.
* :mod:`pycam.doas.references`, :mod:`pycam.doas.configure`, :mod:`pycam.doas.results` — reference
  spectra, settings from the ``[doas]`` config section, PyCam results files.
"""

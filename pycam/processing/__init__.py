"""The SO2 camera processing chain (floor 2): no Tk, no sockets, no drivers.

Modules, in the order the data flows:

* :mod:`settings` - one validated settings file (PyCam YAML key names accepted).
* :mod:`archive` - PyCam image names, A/B pairing, streaming reads, directory watching.
* :mod:`corrections` - darks (averaged, dark/offset model), vignetting, registration (ECC / saved warp).
* :mod:`absorbance` - background modes 0/1/7/99, tau_A, tau_B, AA (preallocated float32 buffers).
* :mod:`cell_calibration`, :mod:`doas_calibration` - cells, DOAS (sliding window), preloaded CSV.
* :mod:`lines`, :mod:`plume_geometry` - PCS line sampling (pyplis conventions), pixel footprints.
* :mod:`flow`, :mod:`flow_analysis` - Farneback on the plume box (robust contrast range),
  histogram and hybrid analysis.
* :mod:`crosscorr` - cross-correlation plume speed (space-time ICA array on parallel lines).
* :mod:`emission` - emission rates per line and velocity mode, ICA mass, errors.
* :mod:`quality` - the quality flag and reason codes every emission-rate sample carries.
* :mod:`chain` - the per-pair chain; :mod:`realtime` - :class:`RealtimeProcessor` for the GUI;
  :mod:`pipeline` - batch runs on two cores with bounded memory; :mod:`setup` - a run's inputs
  from directories; :mod:`outputs` - the PyCam output folder.
"""

"""``pycam doas``: retrieve SO2 slant columns from spectra (iFit-style intensity fitting).

    pycam doas SPEC_DIR --out RESULTS.csv [--config FILE] [--dark FILE] [--solar FILE]
               [--xs NAME=FILE ...] [--ils FILE | --fwem NM] [--fit-window LO HI] [--stray-window LO HI]
    pycam doas --plot SPECTRUM [--out FIT.png] [same options]

Settings come from the ``[doas]`` section of ``--config`` (or its defaults); flags override
them.  Every spectrum of SPEC_DIR (PyCam ``.npy`` or two-column text) is fitted in time or
file-name order; ``Dark`` spectra in SPEC_DIR serve as darks for spectra with the same
integration time and co-adds unless ``--dark`` is given.  A bad file is reported and skipped.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec_dir", nargs="?", metavar="SPEC_DIR",
                        help="directory of spectra (PyCam .npy or two-column text files)")
    parser.add_argument("--out", metavar="FILE",
                        help="results CSV (Time, Column density, CD error, LDF, file); with --plot: the PNG "
                             "(default <spectrum name>_fit.png in the current directory)")
    parser.add_argument("--plot", metavar="SPECTRUM",
                        help="fit one spectrum and save a PNG of measured vs model spectrum and the residual")
    parser.add_argument("--config", metavar="FILE", help="station TOML config; its [doas] section gives the settings (flags override it); "
                             "default: the [doas] defaults")
    parser.add_argument("--dark", metavar="FILE", help="dark spectrum (same integration time and co-adds); default: [doas] dark_file, else the "
                             "Dark spectra in SPEC_DIR (or beside SPECTRUM) with matching integration time and co-adds")
    parser.add_argument("--reference-dir", metavar="DIR",
                        help="directory of reference spectra (sao2010.txt, SO2, O3, Ring files; default: [doas] "
                             "reference_dir).  --solar and --xs replace or add members; with neither a directory "
                             "nor --solar and --xs SO2=…, the labelled synthetic band model (demos only) is the "
                             "base set")
    parser.add_argument("--solar", metavar="FILE", help="high-resolution solar reference spectrum")
    parser.add_argument("--xs", metavar="NAME=FILE", action="append", default=[],
                        help="absorber cross-section, repeatable: --xs SO2=… --xs O3=… --xs Ring=… "
                             "(Ring as a -ln pseudo-absorber)")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--ils", metavar="FILE", help="measured instrument line shape (offset nm, intensity)")
    shape.add_argument("--fwem", metavar="NM", type=float,
                       help="fixed super-Gaussian line shape with this full width at 1/e maximum (nm).  Default (no "
                            "--ils/--fwem/--fit-ils, [doas] ils_mode auto): the line shape and wavelength calibration "
                            "are fitted on the first good (clear-sky) spectrum, held fixed and refitted on drift; "
                            "history in doas_calibration_history.csv beside --out")
    parser.add_argument("--fit-ils", action="store_true",
                        help="fit the super-Gaussian line shape on every spectrum (not with --ils)")
    parser.add_argument("--fit-window", nargs=2, type=float, metavar=("LO", "HI"),
                        help="SO2 fit window, nm (default: [doas] fit_window, 308 318)")
    parser.add_argument("--stray-window", nargs=2, type=float, metavar=("LO", "HI"),
                        help="stray-light window whose mean is subtracted, nm (default: [doas] stray_window, 293 296)")
    parser.add_argument("--light-dilution", action="store_true",
                        help="correct for light dilution with a second fit window (two-waveband method; also "
                             "[doas] use_light_dilution_spec, PyCam's key; [doas] spec_recal_time averages the factor); "
                             "fills the LDF column with the factor each column was corrected with")
    parser.add_argument("--ld-window", nargs=2, type=float, metavar=("LO", "HI"),
                        help="second fit window for the light-dilution correction, nm (default: [doas] ld_window, 312 322)")
    parser.add_argument("--no-warm-start", action="store_true",
                        help="start every fit from the first guess instead of the previous result")


class CliError(Exception):
    pass


def _doas_config(path: str | None) -> dict:
    from pycam.config import ConfigError, load_config
    from pycam.doas.configure import default_doas_section

    if path is None:
        return default_doas_section()
    try:
        return dict(load_config(path)["doas"])
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _overrides(args: argparse.Namespace) -> dict:
    return {
        "fit_window": args.fit_window, "stray_window": args.stray_window, "ils_file": args.ils,
        "fwem": args.fwem, "fit_ils": True if args.fit_ils else None,
        "warm_start": False if args.no_warm_start else None,
    }


def build_settings(args: argparse.Namespace, conf: dict):
    from pycam.doas.configure import DoasConfigError, settings_from_config

    if args.fit_ils and args.ils:
        raise CliError("--fit-ils fits a super-Gaussian; it cannot be combined with a measured --ils file")
    try:
        return settings_from_config(conf, _overrides(args))
    except DoasConfigError as exc:
        raise CliError(str(exc)) from None


def line_shape_mode(args: argparse.Namespace, conf: dict) -> str:
    from pycam.doas.configure import DoasConfigError, ils_mode

    try:
        return ils_mode(conf, _overrides(args))
    except DoasConfigError as exc:
        raise CliError(str(exc)) from None


def build_references(args: argparse.Namespace, conf: dict):
    from pycam.doas.configure import DoasConfigError, references_from_config
    from pycam.doas.references import ReferenceError

    xs: dict[str, str] = {}
    for item in args.xs:
        if "=" not in item:
            raise CliError(f"--xs {item!r}: expected NAME=FILE, e.g. --xs SO2=SO2_298K.txt")
        name, path = item.split("=", 1)
        if not name.strip() or not path.strip():
            raise CliError(f"--xs {item!r}: expected NAME=FILE")
        xs[name.strip()] = path.strip()
    try:
        return references_from_config(conf, {"reference_dir": args.reference_dir, "solar_file": args.solar}, xs)
    except (DoasConfigError, ReferenceError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def _log(message: str) -> None:
    print(f"pycam doas: {message}", file=sys.stderr)


def _make_retrieval(args, conf, refs, settings, dark, history_path=None):
    from pycam.doas.configure import DoasConfigError, retrieval_from_config, window_from_config

    if args.ld_window is not None:
        try:
            window_from_config({"ld_window": args.ld_window}, "ld_window")
        except DoasConfigError as exc:
            raise CliError(f"--ld-window: {exc}") from None
    overrides = dict(_overrides(args), ld_window=args.ld_window,
                     use_light_dilution_spec=True if args.light_dilution else None)
    try:
        return retrieval_from_config(conf, refs, overrides, dark=dark, history_path=history_path, log=_log)
    except DoasConfigError as exc:
        raise CliError(str(exc)) from None


class DarkFinder:
    """Darks by (integration time, co-adds): a given dark file, or the Dark spectra of a directory."""

    def __init__(self, fixed=None, candidates=()):
        from pycam.doas.spectra import mean_spectrum

        self.fixed = fixed
        groups: dict[tuple, list] = {}
        for d in candidates:
            groups.setdefault((d.integration_ms, d.coadd, d.pixels), []).append(d)
        self.darks = {key: mean_spectrum(items) for key, items in groups.items()}
        self.warned: set[tuple] = set()

    def for_spectrum(self, spectrum):
        if self.fixed is not None:
            return self.fixed
        key = (spectrum.integration_ms, spectrum.coadd, spectrum.pixels)
        dark = self.darks.get(key)
        if dark is None and key not in self.warned:
            self.warned.add(key)
            print(f"warning: no dark for {spectrum.integration_ms} ms x {spectrum.coadd} co-adds "
                  f"({Path(spectrum.source).name}): fitting without dark subtraction (stray-light subtraction "
                  "still removes the mean offset)", file=sys.stderr)
        return dark


def _read_dark(path):
    from pycam.doas.spectra import SpectrumError, check_spectrum, read_spectrum

    try:
        dark = read_spectrum(path)
        check_spectrum(dark)
    except SpectrumError as exc:
        raise CliError(f"dark: {exc}") from None
    return dark


def run_directory(args, conf, refs, settings) -> int:
    from pycam.doas.results import write_processing_params, write_results_csv
    from pycam.doas.spectra import SpectrumError, check_spectrum, is_dark, list_spectrum_files, read_spectrum

    if not args.out:
        raise CliError("--out RESULTS.csv is required when fitting a directory")
    try:
        files = list_spectrum_files(args.spec_dir)
    except SpectrumError as exc:
        raise CliError(str(exc)) from None
    dark_path = args.dark or (str(conf["dark_file"]) if conf.get("dark_file") is not None else None)
    fixed_dark = _read_dark(dark_path) if dark_path else None
    measurements, darks, skipped = [], [], []
    for path in files:
        if fixed_dark is not None and Path(path).resolve() == Path(dark_path).resolve():
            continue
        try:
            spectrum = read_spectrum(path)
        except SpectrumError as exc:
            skipped.append(str(exc))
            continue
        (darks if is_dark(spectrum) else measurements).append(spectrum)
    finder = DarkFinder(fixed_dark, [] if fixed_dark is not None else darks)
    # The instrument's pixel count: the dark's, else the most common one among the spectra.
    sizes = [s.pixels for s in measurements]
    expected = fixed_dark.pixels if fixed_dark is not None else (max(set(sizes), key=sizes.count) if sizes else None)
    from pycam.doas.selfcal import HISTORY_NAME

    retrieval = _make_retrieval(args, conf, refs, settings, None, Path(args.out).parent / HISTORY_NAME)
    print(f"pycam doas: {len(measurements)} spectra, references: {refs.label}", file=sys.stderr)
    results, flagged = [], 0
    try:
        progress = measurements
        if sys.stderr.isatty():
            from tqdm import tqdm

            progress = tqdm(measurements, desc="fitting", unit="spectrum", file=sys.stderr)
        for spectrum in progress:
            try:
                check_spectrum(spectrum, expected_pixels=expected, bad_pixels=settings.bad_pixels)
                result = retrieval.fit(spectrum, dark=finder.for_spectrum(spectrum))
            except (SpectrumError, ValueError) as exc:
                skipped.append(str(exc))
                continue
            if not result.ok:
                flagged += 1
                print(f"warning: {Path(spectrum.source).name}: {result.quality}", file=sys.stderr)
            results.append(result)
    finally:
        if results:
            out = write_results_csv(args.out, results)
            extra = {"References": refs.label, "Dark": dark_path or "Dark spectra in SPEC_DIR"}
            history = getattr(retrieval, "history", None)          # the self-calibrated line shape's
            latest = history.latest if history is not None else None
            if latest is not None:
                extra["Line shape"] = (f"self-calibrated super-Gaussian, latest FWEM={latest.fwem:.4f} k={latest.k:.3f} "
                                       f"a_w={latest.a_w:.4f} a_k={latest.a_k:.3f} (history: {HISTORY_NAME})")
            second = getattr(retrieval, "second_settings", None)          # the light-dilution correction's
            if second is not None:
                hold = retrieval.hold
                extra["Light dilution"] = (f"two-waveband, second window {second.fit_window[0]:g}:{second.fit_window[1]:g}, "
                                           + (f"factor averaged over {hold.window.total_seconds() / 60:g} min"
                                              if hold is not None else "factor per spectrum"))
            write_processing_params(out.parent / "doas_processing_params.txt", settings, extra)
            if latest is not None and history.path is not None:
                history.write()
    for message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    print(f"pycam doas: {len(results)} fitted ({flagged} flagged), {len(skipped)} skipped"
          + (f"; results in {args.out}" if results else "; no results written"), file=sys.stderr)
    return 0 if results else 1


def plot_fit(result, path) -> Path:
    """Save measured vs model and the residual (percent) of one fit as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from pycam.formats.atomic import atomic_write_bytes

    fig = Figure(figsize=(8, 6), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(result.wavelengths, result.measured, ".", ms=3, label="measured (dark and stray corrected)")
    top.plot(result.wavelengths, result.model, "-", lw=1.2, label="model")
    top.set_ylabel("counts")
    top.legend(loc="best", fontsize=8)
    top.set_title(f"{Path(result.source).name}: SO2 = {result.so2:.3e} ± {result.so2_error:.1e} molec/cm²"
                  f"  [{result.quality}]", fontsize=9)
    bottom.plot(result.wavelengths, 100.0 * result.relative_residual, "-", lw=1)
    bottom.axhline(0.0, color="0.5", lw=0.8)
    bottom.set_ylabel("residual (%)")
    bottom.set_xlabel("wavelength (nm)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def run_plot(args, conf, refs, settings) -> int:
    from pycam.doas.spectra import SpectrumError, is_dark, list_spectrum_files, read_spectrum

    try:
        spectrum = read_spectrum(args.plot)
    except SpectrumError as exc:
        raise CliError(str(exc)) from None
    dark_path = args.dark or (str(conf["dark_file"]) if conf.get("dark_file") is not None else None)
    if dark_path:
        dark = _read_dark(dark_path)
    else:
        candidates = []
        for path in list_spectrum_files(Path(args.plot).parent):
            try:
                s = read_spectrum(path)
            except SpectrumError:
                continue
            if is_dark(s):
                candidates.append(s)
        dark = DarkFinder(None, candidates).for_spectrum(spectrum)
    retrieval = _make_retrieval(args, conf, refs, settings, None)
    try:
        result = retrieval.fit(spectrum, dark=dark)
    except (SpectrumError, ValueError) as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out) if args.out else Path.cwd() / f"{Path(args.plot).stem}_fit.png"
    plot_fit(result, out)
    dilution = ""
    if getattr(retrieval, "second_settings", None) is not None:       # the light-dilution correction ran
        dilution = (f", light-dilution factor {result.ldf:.3f}" if result.ldf == result.ldf
                    else ", light dilution not constrained (column uncorrected)")
    print(f"{Path(args.plot).name}: SO2 {result.so2:.4e} ± {result.so2_error:.2e} molec/cm2{dilution}, "
          f"quality: {result.quality}; plot: {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.plot is None and args.spec_dir is None:
            raise CliError("give SPEC_DIR (and --out RESULTS.csv), or --plot SPECTRUM")
        conf = _doas_config(args.config)
        settings = build_settings(args, conf)
        refs = build_references(args, conf)
        if args.plot is not None:
            return run_plot(args, conf, refs, settings)
        return run_directory(args, conf, refs, settings)
    except CliError as exc:
        print(f"pycam doas: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad numbers in --fit-window etc.
        print(f"pycam doas: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the results file cannot be written
        print(f"pycam doas: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


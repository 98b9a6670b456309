"""Acceptance of the light-dilution correction on the realistic simulator (truth in truth.json):
with strong dilution the uncorrected rates are >= 20 % low, the corrected ones within 10 % of
the true emission rate.  Skips until the realistic simulator (scenes, dilution lines,
light_dilution.json) is part of pycam.sim."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pycam.processing.archive import find_plume_pairs, iter_pair_images
from pycam.processing.chain import ProcessingChain
from pycam.processing.outputs import RunOutputs
from pycam.processing.pipeline import BatchProcessor
from pycam.processing.settings import load_settings
from pycam.processing.setup import prepare_run
from pycam.formats.pycam_outputs import read_emission_rates

EPS_ON, EPS_OFF = 1e-4, 8e-5       # strong: about half of the AA at 5 km is lost


@pytest.fixture(scope="module")
def diluted(tmp_path_factory):
    dataset = pytest.importorskip("pycam.sim.dataset")
    fields = {f.name for f in dataclasses.fields(dataset.DatasetOptions)}
    if not {"scene", "extinction_on_per_m", "extinction_off_per_m"} <= fields:
        pytest.skip("the realistic simulator (scene, light dilution) is not in pycam.sim yet")
    d = tmp_path_factory.mktemp("sim_dilution")
    dataset.write_dataset(d, dataset.DatasetOptions(pairs=8, scene="realistic", extinction_on_per_m=EPS_ON,
                                                    extinction_off_per_m=EPS_OFF))
    if not (d / "light_dilution.json").is_file():
        pytest.skip("the simulator wrote no light_dilution.json")
    return d, json.loads((d / "truth.json").read_text())


def _process(d, out, **overrides):
    settings = load_settings(d / "process_config.yml").replace(**overrides)
    pairs = find_plume_pairs(d / "Seq_1").pairs
    inputs = prepare_run(d / "Seq_1", settings, cal_dir=d / "Cal_1", dark_dir=d / "Dark", clear_dir=d / "Clear",
                         pcs_files=[d / "pcs_line_0.txt", d / "pcs_line_1.txt"], pairs=pairs)
    first = next(iter_pair_images(pairs[:1]))
    chain = ProcessingChain(inputs.settings, first.img_a.shape, darks=inputs.darks, clear=inputs.clear,
                            calibration=inputs.calibration, pcs_lines=inputs.pcs_lines, warp=inputs.warp,
                            geometry=inputs.camera)
    outputs = RunOutputs(out)
    BatchProcessor(chain, outputs).run(iter_pair_images(pairs))
    outputs.close()
    rates = {}
    for line in ("0", "1"):
        (path,) = list((out / f"line_{line}").glob("*_EmissionRates_flow_hybrid.txt"))
        rows = read_emission_rates(path)
        rates[line] = float(np.nanmean([np.nan if r.flux is None else r.flux for r in rows]))
    return chain, rates


@pytest.mark.slow
def test_corrected_rates_within_10_percent_where_uncorrected_are_20_percent_low(diluted, tmp_path):
    d, truth = diluted
    assert truth["light_dilution"]["eps_on_per_m"] == EPS_ON
    true_rate = truth["emission_rate_kg_s"]
    _, plain = _process(d, tmp_path / "plain")
    chain, corrected = _process(d, tmp_path / "corrected", use_light_dilution=True,
                                dil_lines=str(d / "light_dilution.json"))
    eps = chain.absorbance.dilution.eps
    print(f"dilution: eps fitted on {eps['on']:.3g} off {eps['off']:.3g} (true {EPS_ON:g} {EPS_OFF:g}); "
          f"rates uncorrected {plain}, corrected {corrected}, truth {true_rate}")
    assert eps["on"] == pytest.approx(EPS_ON, rel=0.15) and eps["off"] == pytest.approx(EPS_OFF, rel=0.15)
    for line in ("0", "1"):
        assert plain[line] <= 0.8 * true_rate
        assert corrected[line] == pytest.approx(true_rate, rel=0.10)

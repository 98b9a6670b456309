"""Forward model and line shapes: analytic derivatives against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.lineshape import LineShapeError, measured_ils_from_arrays, super_gaussian
from pycam.doas.model import IntensityModel, LineShapeSpec, ModelError


def test_super_gaussian_derivatives():
    x = np.arange(-150, 151) * 0.01
    params = np.array([0.62, 2.3, 0.03, 0.2])
    kernel, deriv = super_gaussian(x, *params, derivatives=True)
    assert kernel.sum() == pytest.approx(1.0)
    for i in range(4):
        h = np.zeros(4)
        h[i] = 1e-6
        numeric = (super_gaussian(x, *(params + h))[0] - super_gaussian(x, *(params - h))[0]) / 2e-6
        np.testing.assert_allclose(deriv[i], numeric, atol=1e-6 * np.abs(numeric).max() + 1e-12)
    with pytest.raises(LineShapeError):
        super_gaussian(x, 0.1, 2.0, 0.2, 0.0)


@pytest.mark.parametrize("fit_ils", [False, True])
def test_jacobian_matches_finite_differences(synthetic_refs, flame_wavelengths, fit_ils):
    model = IntensityModel(synthetic_refs, flame_wavelengths, (308.0, 318.0),
                           line_shape=LineShapeSpec(fwem=0.6, k=2.1, fit=fit_ils), fit_ldf=True)
    p = model.default_parameters({"SO2": 8e17, "O3": 9e18, "Ring": 0.05})
    p[model.index["poly0"]], p[model.index["poly1"]] = 2e4, 1e3
    p[model.index["shift"]], p[model.index["ldf"]], p[model.index["offset0"]] = 0.037, 0.1, 50.0
    p[model.index["a_w"]] = 0.02
    _, jac = model.evaluate(p, all_columns=True)
    for name in model.names:
        if name in ("fwem", "k", "a_w", "a_k") and not fit_ils:
            continue
        i = model.index[name]
        # shift/stretch: a step spanning fine-grid cells, since the model is linearly interpolated
        h = {"shift": 0.01, "stretch": 0.002}.get(name, max(abs(p[i]) * 1e-5, 1e-6))
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        numeric = (model.evaluate(up, False)[0] - model.evaluate(down, False)[0]) / (2 * h)
        scale = np.abs(numeric).max() + 1e-30
        assert np.abs(jac[:, i] - numeric).max() / scale < 2e-2, name


def test_model_rejects_window_outside_references(synthetic_refs, flame_wavelengths):
    with pytest.raises(ModelError, match="does not cover"):
        IntensityModel(synthetic_refs, np.linspace(420, 500, 2048), (440.0, 460.0))
    with pytest.raises(ModelError, match="only"):
        IntensityModel(synthetic_refs, flame_wavelengths, (310.0, 310.3))


def test_measured_ils_is_centred_and_normalised():
    x = np.linspace(0, 2.8, 40)
    y = np.exp(-((x - 1.3) / 0.3) ** 2) + 0.01
    ils = measured_ils_from_arrays(x, y)
    assert abs(np.sum(ils.offsets * ils.values) / ils.values.sum()) < 1e-9
    k = ils.kernel(np.arange(-150, 151) * 0.01)
    assert k.sum() == pytest.approx(1.0)
    assert 2 * 0.3 * np.sqrt(np.log(2)) == pytest.approx(ils.fwhm(), abs=0.08)

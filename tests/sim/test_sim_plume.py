"""The simulated plume: mass conservation, rigid advection, column range, geometry."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pycam.sim.plume import KG_M2_PER_MOLEC_CM2, PlumeField, SceneParameters, focal_length_m
from pycam.sim.scene import line_normal, line_samples, perpendicular_line
from pycam.formats.geometry import PCSLine

T0 = 1_773_576_000.0  # 2026-03-15T12:00:00Z


@pytest.fixture(scope="module")
def field():
    return PlumeField(SceneParameters(seed=3, emission_rate_kg_s=7.0, wind_speed_m_s=6.0))


def _line_flux(field: PlumeField, line: PCSLine, t: float) -> float:
    xs, ys, spacing = line_samples(line)
    v_normal = field.params.wind_speed_m_s * float(np.dot(field.along, line_normal(line)))
    return float(np.sum(field.columns(xs, ys, t)) * spacing * v_normal * field.pixel_size_m * KG_M2_PER_MOLEC_CM2)


def test_geometry_constants(field):
    assert focal_length_m() == pytest.approx(7.2772e-3, rel=1e-4)
    assert field.pixel_size_m == pytest.approx(5000 * 5.6e-6 / focal_length_m())
    assert field.speed_px_s == pytest.approx(6.0 / field.pixel_size_m)


def test_instantaneous_flux_through_perpendicular_lines_is_rate_times_puff(field):
    """Σ S·v·Δx·K through a line perpendicular to the flow = Φ·q(ξ_line − u·t), for any line."""
    for offset in (-200.0, -50.0, 120.0, 250.0):
        line = perpendicular_line(field, offset, 235, "x")
        for t in (T0, T0 + 13.0, T0 + 101.5):
            xi_line = offset
            expected = field.params.emission_rate_kg_s * float(
                field.puff_factor_exact(np.array([(xi_line - field.speed_px_s * t) % field.params.puff_length_px]))[0])
            assert _line_flux(field, line, t) == pytest.approx(expected, rel=2e-4)


@pytest.mark.slow
@pytest.mark.parametrize("n, periods", [(12, 1), (30, 3)])
def test_mean_flux_over_a_run_equals_the_emission_rate(n, periods):
    """N equally spaced samples spanning j puff periods, harmonics with m·j ≡ 0 (mod N) left
    out: the N-sample mean flux is exactly Φ through any perpendicular line."""
    dt_s = 4.0
    probe = PlumeField(SceneParameters(seed=5, wind_speed_m_s=9.0))
    params = SceneParameters(seed=5, wind_speed_m_s=9.0, puff_length_px=n * dt_s * probe.speed_px_s / periods,
                             puff_balance_samples=n, puff_balance_periods=periods)
    field = PlumeField(params)
    lines = [perpendicular_line(field, -120.0, 235, "0"), perpendicular_line(field, 160.0, 235, "1")]
    for line in lines:
        fluxes = [_line_flux(field, line, T0 + dt_s * i) for i in range(n)]
        assert np.std(fluxes) > 0.05 * params.emission_rate_kg_s      # puffs: the flux really fluctuates
        assert np.mean(fluxes) == pytest.approx(params.emission_rate_kg_s, rel=5e-4)
    # without the balance the same sampling would not average to Φ exactly (the test can fail)
    unbalanced = PlumeField(dataclasses.replace(params, puff_balance_samples=0, puff_length_px=700.0))
    fluxes = [_line_flux(unbalanced, lines[0], T0 + dt_s * i) for i in range(n)]
    assert abs(np.mean(fluxes) / params.emission_rate_kg_s - 1) > 5e-4


def test_oblique_flow_still_conserves_mass():
    field = PlumeField(SceneParameters(seed=2, wind_direction_deg=25.0, plume_axis_xy=(324.0, 243.0)))
    line = perpendicular_line(field, 0.0, 235, "0")
    normal = line_normal(line)
    assert float(np.dot(normal, field.along)) > 0.99
    # long-time mean (a whole puff period, many samples) through an oblique-flow line
    period = field.params.puff_length_px / field.speed_px_s
    fluxes = [_line_flux(field, line, T0 + period * k / 64) for k in range(64)]
    assert np.mean(fluxes) == pytest.approx(field.params.emission_rate_kg_s, rel=0.01)


def test_structure_advects_rigidly_at_the_plume_speed(field):
    shift_px = 10
    dt_s = shift_px / field.speed_px_s
    a = field.column_image(T0)
    b = field.column_image(T0 + dt_s)
    # along +x (direction 0°): b(x) = a(x − 10)
    np.testing.assert_allclose(b[:, shift_px:], a[:, :-shift_px], rtol=1e-6, atol=1e12)
    assert not np.allclose(a, b, rtol=1e-3)   # and there is structure to see move


@pytest.mark.slow
def test_column_range_and_deterministic_seed():
    f1 = PlumeField(SceneParameters(seed=11))
    f2 = PlumeField(SceneParameters(seed=11))
    f3 = PlumeField(SceneParameters(seed=12))
    a = f1.column_image(T0)
    np.testing.assert_array_equal(a, f2.column_image(T0))
    assert not np.array_equal(a, f3.column_image(T0))
    assert a.min() >= 0
    assert 5e17 < a.max() < 5e18
    assert 1e17 < np.median(a[200:290]) < 2e18
    assert a[:20].max() < 1e16          # the image top is plume-free sky


def test_fov_column_is_the_disk_mean(field):
    mask = field.fov_mask()
    img = field.column_image(T0)
    assert mask.sum() == pytest.approx(math.pi * field.params.fov_radius_px ** 2, rel=0.1)
    assert field.fov_column(T0) == pytest.approx(img[mask].mean(), rel=1e-12)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="wind_speed"):
        SceneParameters(wind_speed_m_s=0.0)
    with pytest.raises(ValueError, match="puff_amplitude"):
        SceneParameters(puff_amplitude=0.9)

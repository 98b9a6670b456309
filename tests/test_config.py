import pytest

from pycam.config import ConfigError, SECRET_PLACEHOLDER, generate_secret, load_config, render_config


def test_rendered_config_loads(station_config):
    cfg = load_config(station_config)
    assert cfg["camera"]["framerate"] == 0.25
    assert cfg["storage"]["data_dir"].name == "data"


def test_placeholder_secret_refused(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(render_config())
    with pytest.raises(ConfigError, match=r"\[network\] secret"):
        load_config(p)
    assert SECRET_PLACEHOLDER in p.read_text()


@pytest.mark.parametrize("section,key,value,match", [
    ("camera", "framerate", 5.0, r"\[camera\] framerate"),
    ("network", "device_port", "abc", r"\[network\] device_port"),
    ("spectrometer", "coadd", 99, r"\[spectrometer\] coadd"),
    ("camera", "auto_exposure", "yes", r"\[camera\] auto_exposure"),
])
def test_bad_value_names_key(tmp_path, section, key, value, match):
    p = tmp_path / "c.toml"
    p.write_text(render_config({section: {key: value}}, secret=generate_secret()))
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_unknown_key_and_bad_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(render_config(secret=generate_secret()) + "\n[camera2]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(p)
    p.write_text("[network\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_v0_1_doas_keys_still_load_with_a_warning(tmp_path, caplog):
    """Station files written by v0.1 keep loading: [doas] use_light_dilution is PyCam's
    use_light_dilution_spec now, calibration_order is no longer used; both say so."""
    import logging

    from pycam.config import ConfigError, load_config, render_config

    text = render_config(secret="s" * 32).replace("use_light_dilution_spec = false", "use_light_dilution = true\ncalibration_order = 2")
    path = tmp_path / "old.toml"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="pycam.config"):
        config = load_config(path)
    assert config["doas"]["use_light_dilution_spec"] is True
    assert "calibration_order" not in config["doas"]
    assert "now called use_light_dilution_spec" in caplog.text and "calibration_order is no longer used" in caplog.text
    both = render_config(secret="s" * 32).replace("use_light_dilution_spec = false",
                                   "use_light_dilution_spec = false\nuse_light_dilution = true")
    path.write_text(both)
    with pytest.raises(ConfigError, match="same setting"):
        load_config(path)

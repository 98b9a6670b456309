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

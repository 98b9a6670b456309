"""The files in conf/ stay true to the code: every key known, every value the default."""
from __future__ import annotations

from pathlib import Path

import pytest

from pycam.config import ConfigError, SECRET_PLACEHOLDER, generate_secret, load_config, render_config

CONF = Path(__file__).resolve().parent.parent / "conf"


def test_station_example_is_the_rendered_default():
    assert (CONF / "station.example.toml").read_text() == render_config(), \
        "conf/station.example.toml is stale: regenerate it with pycam.config.render_config()"


def test_station_example_loads_once_a_secret_is_set(tmp_path):
    text = (CONF / "station.example.toml").read_text()
    shipped = tmp_path / "shipped.toml"
    shipped.write_text(text)
    with pytest.raises(ConfigError, match="secret"):
        load_config(shipped)     # no usable default secret is shipped
    ready = tmp_path / "ready.toml"
    ready.write_text(text.replace(SECRET_PLACEHOLDER, generate_secret()))
    assert load_config(ready)["network"]["device_port"] == 12345


def test_processing_example_holds_every_key_at_its_default():
    from pycam.processing.settings import SETTINGS_SCHEMA, default_settings, load_settings

    example = load_settings(CONF / "processing.example.yml")
    defaults = default_settings()
    text = (CONF / "processing.example.yml").read_text()
    for key in SETTINGS_SCHEMA:
        assert f"\n{key}:" in text, f"{key} missing from conf/processing.example.yml"
        assert example[key] == defaults[key], key

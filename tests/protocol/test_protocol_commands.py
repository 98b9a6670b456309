"""The command vocabulary: exact types, ranges and routing."""
from __future__ import annotations

import pytest

from pycam.protocol.commands import VOCABULARY, parse_assignment, parse_value, route
from pycam.protocol.errors import CommandValueError

KNOWN = ["IDN", "SSA", "SSB", "SSS", "FRC", "FRS", "ATA", "ATB", "ATS", "CAD", "SMN", "SMX", "PXC", "RWC",
         "PXS", "WMN", "WMX", "SNS", "SXS", "TPA", "TPB", "TPS", "DKC", "DKS", "SPC", "SPS", "STC", "STS",
         "EXT", "RSS", "RSC", "LOG"]


def test_vocabulary_has_every_pycam_key():
    assert set(KNOWN) <= set(VOCABULARY)


@pytest.mark.parametrize("key, raw, expected", [
    ("SSA", "1000", 1000), ("SSA", 6_000_001, 6_000_001), ("SSS", 1, 1), ("SSS", "10001", 10001),
    ("FRC", "0.333333333333", 0.333333333333), ("FRS", 10, 10.0), ("ATA", "1", True), ("ATS", 0, False),
    ("ATB", "false", False), ("RWC", "-486", -486), ("PXS", 2048, 2048), ("WMN", 300, 300),
    ("SMN", 0.9, 0.9), ("SXS", "0.1", 0.1), ("TPA", "Test", "Test"), ("TPB", "1257ppmm", "1257ppmm"),
    ("TPS", "Dark", "Dark"), ("LOG", "1", 1), ("CAD", 20, 20),
])
def test_good_values_keep_exact_type(key, raw, expected):
    value = parse_value(key, raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("key, raw, reason", [
    ("SSA", 0, "range"), ("SSA", 6_000_002, "range"), ("SSS", 10_002, "range"), ("FRC", 1.0001, "range"),
    ("FRS", -0.1, "range"), ("SSA", 1.5, "whole number"), ("SSA", "abc", "whole number"),
    ("SSA", True, "boolean"), ("FRC", "nan", "finite"), ("FRC", float("inf"), "finite"),
    ("ATA", 2, "boolean"), ("RWC", 487, "range"), ("WMX", 401, "range"), ("SMN", 0.95, "range"),
    ("SMX", 0.05, "range"), ("TPA", "Plume", "frame type"), ("TPA", "12ppm", "frame type"),
    ("TPS", 5, "frame type"), ("LOG", 6, "range"), ("CAD", 0, "range"), ("XYZ", 1, "unknown"),
])
def test_bad_values_name_key_and_reason(key, raw, reason):
    with pytest.raises(CommandValueError) as info:
        parse_value(key, raw)
    assert info.value.key == key
    assert reason in info.value.reason


def test_routing_is_addressed_not_broadcast():
    connected = ("CM1", "CM2", "SPC")
    assert route("SSA", "CM1", connected) == ["CM1"]
    assert route("SSA", "all", connected) == ["CM1"]
    assert route("STC", "all", connected) == ["CM1", "CM2"]
    assert route("LOG", "all", connected) == ["CM1", "CM2", "SPC", "master"]
    assert route("SSS", "all", ("CM1",)) == []
    with pytest.raises(CommandValueError) as info:
        route("SSA", "CM2", connected)
    assert "CM1" in info.value.reason
    with pytest.raises(CommandValueError) as info:
        route("SSA", "CM9", connected)
    assert info.value.key == "device"


def test_parse_assignment():
    assert parse_assignment("ssa=1000") == ("SSA", 1000)
    with pytest.raises(CommandValueError):
        parse_assignment("SSA")

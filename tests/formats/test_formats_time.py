"""PyCam's time formats have one definition (pycam/formats/names.py) and helpers that keep
the forms every writer and reader used before (issue 14)."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from pycam.formats import names
from pycam.formats.names import (FileNameError, day_folder, day_stamp, format_text_time, format_time, parse_time,
                                 read_time)

PACKAGE = Path(names.__file__).resolve().parents[1]
UTC = dt.timezone.utc
#: Modules that write a format string of someone else's, which only looks like one of PyCam's.
FOREIGN_FORMATS = {
    "ecii.py": "EC-II camera file names and FITS STIME headers",
    "schedule.py": "Witty Pi schedule script (BEGIN/END lines)",
}


def test_file_name_time_round_trip_in_utc():
    when = dt.datetime(2026, 3, 15, 13, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_time(when) == "2026-03-15T120405"
    assert parse_time("2026-03-15T120405") == dt.datetime(2026, 3, 15, 12, 4, 5, tzinfo=UTC)
    with pytest.raises(FileNameError, match="bad time field"):
        parse_time("2026-03-15 12:04:05")


def test_text_time_keeps_a_fraction_only_when_asked():
    when = dt.datetime(2026, 3, 15, 12, 4, 5, 250000, tzinfo=UTC)
    assert format_text_time(when) == "2026-03-15 12:04:05"
    assert format_text_time(when, fraction=True) == "2026-03-15 12:04:05.250000"
    assert format_text_time(when.replace(microsecond=0), fraction=True) == "2026-03-15 12:04:05"
    assert format_text_time(dt.datetime(2026, 3, 15, 12, 4, 5)) == "2026-03-15 12:04:05"  # naive = UTC


@pytest.mark.parametrize("text", ["2026-03-15 12:04:05", "2026-03-15 12:04:05.000000", "2026-03-15T12:04:05",
                                  "2026-03-15T12:04:05.000000", "2026-03-15T120405"])
def test_read_time_knows_every_pycam_form(text):
    assert read_time(text) == dt.datetime(2026, 3, 15, 12, 4, 5, tzinfo=UTC)


def test_read_time_limited_to_the_forms_given():
    assert read_time("2026-03-15 12:04:05", (names.TIME_FORMAT, names.ISO_TIME_FORMAT)) is None
    assert read_time("15/03/2026") is None


def test_day_names_are_utc_days():
    late = dt.datetime(2026, 3, 15, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert day_stamp(late) == "20260316"
    assert day_folder(late) == "2026-03-16"
    assert day_folder(dt.datetime(2026, 3, 15, 23, 30)) == "2026-03-15"


def test_no_module_writes_a_pycam_time_format_out_again():
    """Only names.py spells the formats; every other module takes them from there."""
    spelled = [names.TIME_FORMAT, names.TEXT_TIME_FORMAT, names.ISO_TIME_FORMAT, names.DAY_STAMP_FORMAT]
    pattern = re.compile("|".join(re.escape(f) for f in spelled))
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(names.__file__).resolve() or path.name in FOREIGN_FORMATS:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "PyCam time formats written out again (use pycam.formats.names):\n" + "\n".join(offenders)

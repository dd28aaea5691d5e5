from __future__ import annotations

import datetime as dt

import pytest

from gateway.events import Event, PoisonEventError, decode, encode
from lienthong.events.v1 import events_pb2 as ev


def test_cloudevents_headers_round_trip() -> None:
    at = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    event = Event("d-1/register_birth", "d-1", ev.StepCommand(dossier_id="d-1", step="x"), at)
    key, value, headers = encode(event)
    names = {name for name, _ in headers}
    assert {"ce_id", "ce_type", "ce_source", "ce_time", "ce_specversion"} <= names
    assert key == b"d-1"
    back = decode(key, value, tuple(headers))
    assert back == event


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (
            ("ce_id", b"1"),
            ("ce_type", b"unknown"),
            ("ce_time", b"2026-01-01T00:00:00+00:00"),
            ("ce_specversion", b"1.0"),
        ),
        (
            ("ce_id", b"1"),
            ("ce_type", b"vn.lienthong.step.command.v1"),
            ("ce_time", b"nope"),
            ("ce_specversion", b"1.0"),
        ),
    ],
)
def test_records_that_cannot_be_read_are_poison(headers: tuple[tuple[str, bytes], ...]) -> None:
    with pytest.raises(PoisonEventError):
        decode(b"d-1", b"", headers)

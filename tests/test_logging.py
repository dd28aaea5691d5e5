"""No full personal identification number reaches a log line, wherever it
sits: a field's text, a list or a mapping inside a field, an exception's
message in its traceback, a standard-library logger's line."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
import structlog

from common.logging import loggable_token, logging_configured

ID_NUMBER = "001099012345"
MASKED = "0010******45"
# Any run of exactly twelve digits: what must never be written.
TWELVE_DIGITS = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


@pytest.fixture
def output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The process's logging configured as a server's, writing JSON to a
    buffer (not a terminal); the process's logging as it was restored after."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)
    with logging_configured(service="test", verbose=True):
        yield buffer


def lines(buffer: io.StringIO) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if line]


def test_an_id_number_in_a_field_is_masked(output: io.StringIO) -> None:
    structlog.get_logger("t").info("lookup", who=f"citizen {ID_NUMBER}")
    [line] = lines(output)
    assert json.loads(line)["who"] == f"citizen {MASKED}"


def test_an_id_number_in_a_list_or_mapping_is_masked(output: io.StringIO) -> None:
    structlog.get_logger("t").info("batch", ids=[ID_NUMBER], parents={"mother": ID_NUMBER})
    [line] = lines(output)
    assert not TWELVE_DIGITS.search(line)
    fields = json.loads(line)
    assert fields["ids"] == [MASKED]
    assert fields["parents"] == {"mother": MASKED}


def test_an_id_number_in_an_exception_is_masked(output: io.StringIO) -> None:
    try:
        raise LookupError(f"no citizen {ID_NUMBER}")
    except LookupError:
        structlog.get_logger("t").exception("lookup failed")
    [line] = lines(output)
    assert not TWELVE_DIGITS.search(line)
    assert f"no citizen {MASKED}" in json.loads(line)["exception"]


def test_an_id_number_in_a_library_line_is_masked(output: io.StringIO) -> None:
    logging.getLogger("somelib").warning("refused %s", ID_NUMBER)
    [line] = lines(output)
    assert json.loads(line)["event"] == f"refused {MASKED}"


def test_other_numbers_are_left_alone(output: io.StringIO) -> None:
    """Eleven and thirteen digits are not an ID number: a count, a time in ms."""
    structlog.get_logger("t").info("n", short="12345678901", unix_ms=1764558716000)
    [line] = lines(output)
    fields = json.loads(line)
    assert (fields["short"], fields["unix_ms"]) == ("12345678901", 1764558716000)


def test_a_drawn_token_with_twelve_digits_in_a_row_is_drawn_again() -> None:
    draws = iter(["1234567890123abc" + "0" * 16, "ab12cd34ef56ab78" + "0" * 16])
    assert loggable_token(16, draw=lambda: next(draws)) == "ab12cd34ef56ab78"


def test_tokens_are_hex_of_the_length_asked_and_never_masked() -> None:
    tokens = [loggable_token(16) for _ in range(5_000)] + [loggable_token(32) for _ in range(5_000)]
    assert {len(t) for t in tokens} == {16, 32}
    assert all(re.fullmatch(r"[0-9a-f]+", t) for t in tokens)
    # Drawn plainly, about 1 in 80 of the short and 1 in 30 of the long ones
    # would hold such a run: ~230 of these 10,000.
    assert not any(re.search(r"[0-9]{12}", t) for t in tokens)

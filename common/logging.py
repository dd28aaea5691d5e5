"""One structlog configuration for every lienthong process.

JSON lines when stdout is not a terminal (what log shippers and CI read), a
coloured console renderer when it is. The standard library's loggers (grpc,
aiokafka) are routed through the same processors so every line looks alike.
Personal identification numbers are masked in every line, whoever logged them:
a 12-digit number never reaches the output whole.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

_ID_NUMBER = re.compile(r"(?<![0-9])([0-9]{4})[0-9]{6}([0-9]{2})(?![0-9])")


def mask_id_number(value: str) -> str:
    """Keep the province and century/sex digits and the last two: enough to
    tell records apart in a log, not enough to identify a person."""
    return _ID_NUMBER.sub(r"\1******\2", value)


# A run of twelve digits or more: a random token holding one could be masked.
_DIGIT_RUN = re.compile(r"[0-9]{12}")


def _uuid_hex() -> str:
    return uuid.uuid4().hex


def loggable_token(length: int, *, draw: Callable[[], str] = _uuid_hex) -> str:
    """A random hex token of `length` (at most 32) characters that the masking
    leaves alone: no run of twelve decimal digits. A drawn token has one now
    and then (a 16-character one about 1 time in 80, a 32-character one 1 in
    30), and the lines naming a dossier or correlation id so masked would not
    be found by searching the logs for it; such a draw is drawn again."""
    while True:
        token = draw()[:length]
        if not _DIGIT_RUN.search(token):
            return token


def _masking(render: Callable[..., Any]) -> Callable[..., str]:
    """The renderer, with every ID number in its finished line masked.

    Masked in the line rather than field by field: a number inside a list or
    a mapping, or in an exception's message (its traceback is rendered after
    the fields), reaches the line too. One substitution a line is also less
    work than one a field."""

    def render_masked(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return mask_id_number(str(render(logger, method, event_dict)))

    return render_masked


class _OncePerInterval(logging.Filter):
    """Lets a library's repeated line through once per interval.

    While a broker is down, aiokafka says "Unable connect to node ..." at
    every reconnection attempt (every 100 ms, per client): the outage would
    drown everything else. A line is keyed by its logger and message
    template; our own lines (which say once per backoff interval what is
    waited for) do not pass through the standard library at all."""

    def __init__(self, prefixes: tuple[str, ...], interval: float) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self.last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        if record.created - self.last.get(key, float("-inf")) < self.interval:
            return False
        self.last[key] = record.created
        return True


# How often the same library line may appear.
LIBRARY_LINE_INTERVAL_SECONDS = 10.0


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that knows its name, for `add_logger_name`."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self.file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self.file, str(args[0]) if args else "lienthong")


def configure_logging(
    *, service: str, verbose: bool = True, json: bool | None = None, cache_loggers: bool = True
) -> None:
    """Configure structlog and the standard library for this process.

    `verbose=False` keeps warnings and errors only (the CLI is quiet by default).
    `json=None` chooses JSON exactly when stdout is not a terminal.
    Lines go to the sys.stdout of the moment of the call.
    `cache_loggers=False` lets a logger follow a later configuration (see
    `logging_configured`).
    """
    use_json = (not sys.stdout.isatty()) if json is None else json
    level = logging.INFO if verbose else logging.WARNING
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = _masking(
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    # Our own lines skip the standard library (a LogRecord, handlers, a
    # formatter per line): with one line per RPC and per saga event, that
    # detour was about a tenth of a busy process's CPU.
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_NamedWriteLoggerFactory(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(_OncePerInterval(("aiokafka",), LIBRARY_LINE_INTERVAL_SECONDS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every rebalance step.
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


@contextmanager
def logging_configured(*, service: str, verbose: bool) -> Iterator[None]:
    """`configure_logging` for the length of a `with` block, then the process's
    logging as it was before it: structlog's configuration and context, the
    root logger's handlers and level, aiokafka's level.

    For `lienthong`'s main(), which also runs inside other programs (the test
    suite): left configured, every later line would go to the sys.stdout of
    main()'s time (pytest's capsys buffer, closed once its test is over: any
    warning then raised ValueError where it was logged) at main()'s level.
    Loggers are not cached inside: a module-level logger first used in the
    block would otherwise keep this configuration after it."""
    structlog_config = structlog.get_config()
    context = structlog.contextvars.get_contextvars()
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    aiokafka = logging.getLogger("aiokafka")
    aiokafka_level = aiokafka.level
    configure_logging(service=service, verbose=verbose, cache_loggers=False)
    try:
        yield
    finally:
        structlog.configure(**structlog_config)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        aiokafka.setLevel(aiokafka_level)

"""Quote a client's value in a message or a log line, cut to a readable length.

A value a client sent may be of any size: an error message or a log line that
quoted a 1 MB field whole would be 1 MB long (and a status message that large
is dropped by gRPC as RESOURCE_EXHAUSTED). Every message and log line that
includes a client value goes through `quote`; `cap` bounds a whole message.
"""

from __future__ import annotations

# About a hundred characters is enough to recognise a value.
QUOTE_LIMIT = 100
# A status message names a few fields and quotes a value or two at most.
MESSAGE_LIMIT = 300


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """The value as text, cut to `limit` characters with its length appended:
    `"aaaa…" (1000000 characters)` reads as what it is."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def cap(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message cut to `limit` characters (the last one an ellipsis)."""
    if len(message) <= limit:
        return message
    return message[: limit - 1] + "…"

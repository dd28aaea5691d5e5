"""Where a process keeps its records: a SQLite file or a PostgreSQL database.

One setting per process says both (LIENTHONG_GATEWAY_DB, LIENTHONG_<AGENCY>_DB):
a path is a SQLite file, the default on one host; a `postgresql://` URL is a
database on a server that any number of hosts share. Reading the setting is
done here once, so every store chooses the same way.
"""

from __future__ import annotations

from pathlib import Path

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str | Path) -> bool:
    """Whether a store setting names a PostgreSQL database (else a SQLite file)."""
    return str(location).startswith(POSTGRES_SCHEMES)


def redacted(location: str | Path) -> str:
    """The setting as it may be logged: a URL's password replaced by ***."""
    text = str(location)
    if not is_postgres(text) or "@" not in text:
        return text
    scheme, rest = text.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else text

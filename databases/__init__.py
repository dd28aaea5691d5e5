"""Databases we run ourselves: a PostgreSQL server for the tests and the CLI
(databases/postgres.py), the way brokers/ runs Kafka."""

from databases.binaries import PostgresBinaries, PostgresBinariesNotFound, PostgresError
from databases.postgres import PostgresServer, find_binaries

__all__ = [
    "PostgresBinaries",
    "PostgresBinariesNotFound",
    "PostgresError",
    "PostgresServer",
    "find_binaries",
]

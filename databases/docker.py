"""PostgreSQL in a container: the official image through testcontainers, for a
machine with a Docker engine but without PostgreSQL's server programs.

    with PostgresContainerServer() as server:
        url = server.create_database("gateway")

The same settings as our own server (postgres.SERVER_SETTINGS), given to the
image's `postgres` command; a password, since the container's port is
published on the host's interfaces. Without a Docker engine it fails with one
line: `no Docker engine found: …`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote

from databases.admin import create_database, drop_database, wait_until_accepting
from databases.binaries import PostgresError
from databases.postgres import SERVER_SETTINGS, SUPERUSER

IMAGE_ENV_VAR = "LIENTHONG_POSTGRES_IMAGE"
# The major version the local launcher runs (Debian 12's PostgreSQL 15).
DEFAULT_IMAGE = "postgres:15"
CONTAINER_PORT = 5432
# Not a secret (a throwaway container); required by the image unless it trusts everyone.
PASSWORD = "lienthong"
START_TIMEOUT_SECONDS = 120.0


def image() -> str:
    return os.environ.get(IMAGE_ENV_VAR) or DEFAULT_IMAGE


def server_command() -> list[str]:
    """The image's `postgres` with our settings (its entrypoint runs it as its user)."""
    command = ["postgres"]
    for key, value in SERVER_SETTINGS.items():
        command += ["-c", f"{key}={value}"]
    return command


def _default_client() -> Any:
    # Imported here, like testcontainers below: slow to import, and needed by nothing else.
    import docker  # type: ignore[import-untyped]  # noqa: PLC0415  (docker-py has no hints)

    return docker.from_env(timeout=5)


def check_engine(client_factory: Callable[[], Any] = _default_client) -> None:
    """Raise a short PostgresError unless a Docker engine answers a ping."""
    try:
        client = client_factory()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker-py raises DockerException, requests' and OS errors
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise PostgresError(
            "no Docker engine found: a PostgreSQL container needs a running Docker engine "
            "(DOCKER_HOST, or /var/run/docker.sock). Use databases.PostgresServer, which runs "
            f"the local PostgreSQL (`apt-get install postgresql`), instead. ({reason})"
        ) from None


class PostgresContainerServer:
    """A PostgreSQL container; the URLs carry the host port Docker published."""

    def __init__(self, *, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        self._start_timeout = start_timeout
        self._container: Any = None
        self._host = ""
        self._port = 0

    @property
    def port(self) -> int:
        if self._container is None:
            raise PostgresError("the container has no port until it is started")
        return self._port

    def url(self, dbname: str) -> str:
        return (
            f"postgresql://{SUPERUSER}:{PASSWORD}@{self._host}:{self.port}/{quote(dbname, safe='')}"
        )

    def start(self) -> PostgresContainerServer:
        if self._container is not None:
            return self
        check_engine()
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415

        container = None
        try:
            container = PostgresContainer(
                image(), username=SUPERUSER, password=PASSWORD, dbname="postgres", driver=None
            )
            container.with_command(server_command())
            container.start()
            self._container = container
            self._host = container.get_container_host_ip()
            self._port = int(container.get_exposed_port(CONTAINER_PORT))
            wait_until_accepting(
                self.url("postgres"), timeout=self._start_timeout, what=f"the {image()} container"
            )
        except BaseException as exc:
            self._container = None
            if container is not None:
                container.stop()
            if isinstance(exc, Exception) and not isinstance(exc, PostgresError):
                raise PostgresError(f"could not start the {image()} container: {exc}") from exc
            raise
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()

    def create_database(self, name: str) -> str:
        create_database(self.url("postgres"), name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        drop_database(self.url("postgres"), name)

    def __enter__(self) -> PostgresContainerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

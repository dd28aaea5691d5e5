"""The container path without a Docker engine: one clear line; its settings
and the testcontainers API it relies on, checked without one."""

from __future__ import annotations

import pytest
from testcontainers.community.postgres import PostgresContainer

from databases import PostgresError
from databases import docker as docker_postgres


def _engine_answers() -> bool:
    try:
        docker_postgres.check_engine()
    except PostgresError:
        return False
    return True


@pytest.mark.skipif(_engine_answers(), reason="a Docker engine runs here")
def test_no_engine_gives_a_short_clear_error() -> None:
    with pytest.raises(PostgresError) as caught:
        docker_postgres.PostgresContainerServer().start()
    message = str(caught.value)
    assert message.startswith("no Docker engine found")
    assert "apt-get install postgresql" in message
    assert "\n" not in message and len(message) < 450
    # Raised "from None": no chained docker-py/requests traceback under it.
    assert caught.value.__suppress_context__


class _FakeClient:
    def __init__(self, *, ping_error: Exception | None = None) -> None:
        self.ping_error = ping_error
        self.closed = False

    def ping(self) -> bool:
        if self.ping_error is not None:
            raise self.ping_error
        return True

    def close(self) -> None:
        self.closed = True


def test_engine_check_passes_when_the_engine_answers() -> None:
    client = _FakeClient()
    docker_postgres.check_engine(lambda: client)
    assert client.closed


def test_engine_check_keeps_only_the_first_line_of_the_reason() -> None:
    client = _FakeClient(ping_error=ConnectionError("refused\n" + "traceback noise\n" * 50))
    with pytest.raises(PostgresError, match=r"\(refused\)$") as caught:
        docker_postgres.check_engine(lambda: client)
    assert "noise" not in str(caught.value)
    assert client.closed


def test_the_container_runs_the_simulator_settings() -> None:
    command = docker_postgres.server_command()
    assert command[0] == "postgres"
    pairs = {command[i + 1] for i in range(1, len(command), 2) if command[i] == "-c"}
    assert {"fsync=off", "max_connections=300", "full_page_writes=off"} <= pairs


def test_image_is_postgres_15_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(docker_postgres.IMAGE_ENV_VAR, raising=False)
    assert docker_postgres.image() == "postgres:15"
    monkeypatch.setenv(docker_postgres.IMAGE_ENV_VAR, "postgres:16-alpine")
    assert docker_postgres.image() == "postgres:16-alpine"


def test_testcontainers_still_offers_what_start_uses() -> None:
    for method in ("with_command", "start", "stop", "get_container_host_ip", "get_exposed_port"):
        assert callable(getattr(PostgresContainer, method, None)), method


def test_urls_need_a_started_container() -> None:
    with pytest.raises(PostgresError, match="no port until it is started"):
        docker_postgres.PostgresContainerServer().url("gateway")

"""Every process's TLS settings and the one way to open a gRPC channel.

A process reads its identity from `LIENTHONG_TLS_CA`, `LIENTHONG_TLS_CERT`
and `LIENTHONG_TLS_KEY` (PEM paths; common/pki.py makes them). A server with
them listens with mutual TLS (common.server); a channel made with them
presents the certificate and trusts only servers the CA issued.

Plain text is the explicit opt-out: a server process without the settings
refuses to start unless `LIENTHONG_INSECURE=1` (`--insecure` on the CLI),
and then says so loudly (`server_tls`). A client channel without settings is
plain text: the code API's default, which the in-process tests use.

Replicas: an address may list several `host:port` separated by commas (the
M replicas of one registry, `lienthong up --replicas M`). The channel then
reaches all of them through gRPC's own client-side `round_robin` policy: a
subchannel per replica, each call to the next ready one, a replica that
stops answering left out until it connects again. The hosts must be IP
literals (gRPC's `ipv4:`/`ipv6:` targets): replicas on other hosts are
named by their IP addresses; they share one identity, whose certificate
must then carry every replica's IP
(`python -m common.pki DIR population --host IP`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

from common import pki

log = structlog.get_logger("trust")

TLS_CA = "LIENTHONG_TLS_CA"
TLS_CERT = "LIENTHONG_TLS_CERT"
TLS_KEY = "LIENTHONG_TLS_KEY"
INSECURE = "LIENTHONG_INSECURE"
_VARIABLES = (TLS_CA, TLS_CERT, TLS_KEY)

INSECURE_WARNING = (
    "INSECURE: plain-text gRPC (LIENTHONG_INSECURE=1): callers are not "
    "authenticated and the access policy is NOT enforced; "
    "never do this outside a developer's machine"
)

Options = Sequence[tuple[str, Any]]

# Spread calls over every address the target resolves to (gRPC's default,
# pick_first, would send them all to the first one that connects).
ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class BadAddress(ValueError):
    """An address that names no host:port (or, for replicas, no IP literal)."""


def _ip_literal(host: str) -> str | None:
    """ipv4 or ipv6 for an IP literal host ([::1] brackets included), else None."""
    try:
        return f"ipv{ipaddress.ip_address(host.strip('[]')).version}"
    except ValueError:
        return None


def target(address: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and the channel options that reach `address`.

    One host:port: itself, gRPC's defaults. Several, comma-separated: an
    `ipv4:` (or `ipv6:`) target over all of them with the round_robin policy,
    and the first address as the authority, so that the server certificates
    (which name 127.0.0.1, localhost and the identity: common/pki.py) are
    checked against a host name they carry, not the list itself."""
    parts = [part.strip() for part in address.split(",")]
    if len(parts) == 1:
        return address, []
    families = set()
    for part in parts:
        host, colon, port = part.rpartition(":")
        family = _ip_literal(host) if colon else None
        if family is None or not port.isdigit():
            raise BadAddress(
                f"replica address {part[:100]!r}: expected IP:PORT (several replicas are "
                "listed by IP; for host names use one DNS name that resolves to all of them)"
            )
        families.add(family)
    if len(families) > 1:
        raise BadAddress(f"replica addresses mix IPv4 and IPv6: {address[:100]!r}")
    options = [
        ("grpc.service_config", ROUND_ROBIN_CONFIG),
        ("grpc.default_authority", parts[0]),
    ]
    return f"{families.pop()}:{','.join(parts)}", options


class TlsMisconfigured(ValueError):
    """The TLS settings are incomplete or name files that cannot be read."""


@dataclass(frozen=True)
class TlsSettings:
    """One identity: the CA every party trusts, this party's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def for_identity(cls, pki_dir: Path, identity: str) -> TlsSettings:
        """The identity's files in a PKI directory (issued if missing)."""
        cert, key = pki.issue(pki_dir, identity)
        return cls(pki_dir / pki.CA_CERT, cert, key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TlsSettings | None:
        """The settings in the environment; None when there are none. Some but
        not all three is a mistake, said as one."""
        env = os.environ if environ is None else environ
        given = {name: env.get(name, "") for name in _VARIABLES}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise TlsMisconfigured(f"TLS settings incomplete: {', '.join(missing)} not set")
        return cls(Path(given[TLS_CA]), Path(given[TLS_CERT]), Path(given[TLS_KEY]))

    def as_env(self) -> dict[str, str]:
        return {TLS_CA: str(self.ca), TLS_CERT: str(self.cert), TLS_KEY: str(self.key)}

    def _read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise TlsMisconfigured(f"cannot read a TLS file: {exc}") from None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self._read()
        # require_client_auth: no certificate from our CA, no connection.
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )


# "Read the environment", as a default distinct from None (plain text).
FROM_ENV: Any = object()


def _resolve(tls: TlsSettings | None) -> TlsSettings | None:
    return TlsSettings.from_env() if tls is FROM_ENV else tls


def channel(
    address: str, *, options: Options = (), tls: TlsSettings | None = FROM_ENV
) -> grpc.aio.Channel:
    """An asyncio channel to `address` (one host:port, or several replicas'
    comma-separated: see `target`): mutual TLS under `tls` (default: this
    process's settings from the environment), plain text without."""
    settings = _resolve(tls)
    where, balancing = target(address)
    every = [*balancing, *options]
    if settings is None:
        return grpc.aio.insecure_channel(where, options=every)
    return grpc.aio.secure_channel(where, settings.channel_credentials(), options=every)


def sync_channel(
    address: str, *, options: Options = (), tls: TlsSettings | None = FROM_ENV
) -> grpc.Channel:
    """The same as `channel`, blocking."""
    settings = _resolve(tls)
    where, balancing = target(address)
    every = [*balancing, *options]
    if settings is None:
        return grpc.insecure_channel(where, options=every)
    return grpc.secure_channel(where, settings.channel_credentials(), options=every)


def insecure_allowed(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(INSECURE, "").strip().lower() in ("1", "true", "yes")


def server_tls(process: str) -> TlsSettings | None:
    """A server process's settings: its identity, or None (plain text) only
    when LIENTHONG_INSECURE=1 says so, with one loud warning. Otherwise the
    process refuses to start (SystemExit with the reason)."""
    try:
        settings = TlsSettings.from_env()
    except TlsMisconfigured as exc:
        raise SystemExit(f"{process}: {exc}") from None
    if settings is not None:
        return settings
    if insecure_allowed():
        log.warning(INSECURE_WARNING, process=process)
        return None
    raise SystemExit(
        f"{process}: no TLS settings ({', '.join(_VARIABLES)}): refusing to serve in plain "
        f"text; set them (python -m common.pki makes the files) or set {INSECURE}=1 to "
        "run without TLS on purpose"
    )


@contextlib.contextmanager
def identity(settings: TlsSettings | None) -> Iterator[None]:
    """Within the block, this process's channels use `settings` (None: plain
    text, and LIENTHONG_INSECURE=1); the environment is restored after, so a
    CLI command run inside a test leaves the test's environment as it was."""
    names = (*_VARIABLES, INSECURE)
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    if settings is None:
        os.environ[INSECURE] = "1"
    else:
        os.environ.update(settings.as_env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

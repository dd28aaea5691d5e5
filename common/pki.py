"""The interconnection's local certificate authority and its parties' identities.

One CA per deployment (a stack's DATA_DIR/pki, a compose volume) issues one
X.509 identity per party: an EC P-256 key and a certificate whose subject
common name IS the identity (`gateway`, `population`, `hospital`...). A
server reads its caller's identity from that name (common.rpc.caller_of),
which the TLS handshake proved, never from metadata.

Files: `ca.crt`, `ca.key`, `<identity>.crt`, `<identity>.key` (keys mode
0600). Both functions are idempotent: an existing CA or identity is reused,
so a restarted stack keeps its certificates and `python -m common.pki` can
run at every `docker compose up`.

Host names: every certificate names `localhost`, 127.0.0.1 and the identity
itself as DNS names, so a client verifies `127.0.0.1:PORT` on one machine and
`population:50051` in docker compose (whose service names are the
identities) without overriding the target name; `hosts` adds more.

    python -m common.pki DIR IDENTITY...
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "lienthong local CA"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
# A simulator's CA: long enough that a kept data directory does not expire
# under a demo, short enough not to pretend to be a real one.
CA_DAYS = 3650
IDENTITY_DAYS = 825

# The parties of the interconnection (see the conventions in README "Trust").
IDENTITIES = (
    "gateway",
    "population",
    "insurance",
    "health",
    "hospital",
    "lienthong-cli",
    "conformance",
)


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(directory: Path) -> Path:
    """The CA's certificate (created with its key unless it exists); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME))
        .issuer_name(_name(CA_NAME))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path


def identity_paths(directory: Path, identity: str) -> tuple[Path, Path]:
    """(certificate, key) of one identity."""
    return directory / f"{identity}.crt", directory / f"{identity}.key"


def issue(directory: Path, identity: str, *, hosts: Sequence[str] = ()) -> tuple[Path, Path]:
    """The identity's certificate and key, issued by the CA in `directory`
    (created if missing) unless they exist; their paths."""
    if not identity or "/" in identity or identity.startswith("."):
        raise ValueError(f"not an identity name: {identity[:40]!r}")
    create_ca(directory)
    cert_path, key_path = identity_paths(directory, identity)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / CA_KEY} is not an EC key")
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    for host in (identity, *hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(identity))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=IDENTITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        # Every party is a server to some and a client of others (the gateway both).
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue_all(directory: Path, identities: Sequence[str] = IDENTITIES) -> Path:
    """The CA and every identity; the directory."""
    for identity in identities:
        issue(directory, identity)
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.pki",
        description="Create the local CA and the identities' certificates (kept if present).",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "identities", nargs="*", help=f"default: all of them ({', '.join(IDENTITIES)})"
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        help="one more DNS name or IP address in every new certificate (repeatable)",
    )
    args = parser.parse_args(argv)
    for identity in args.identities or IDENTITIES:
        cert, _ = issue(args.directory, identity, hosts=args.host)
        print(cert)
    return 0


if __name__ == "__main__":
    sys.exit(main())

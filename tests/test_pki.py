"""The local CA and identities (common/pki.py), read back with `cryptography`."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common import pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_an_identity_is_named_by_its_certificate_and_signed_by_the_ca(tmp_path: Path) -> None:
    cert_path, key_path = pki.issue(tmp_path, "hospital")
    certificate, ca = load(cert_path), load(tmp_path / "ca.crt")
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hospital"
    assert certificate.issuer == ca.subject
    certificate.verify_directly_issued_by(ca)
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "hospital"} <= set(names.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    for key in (key_path, tmp_path / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_issuing_again_reuses_what_exists(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in pki.issue(tmp_path, "gateway")]
    ca = (tmp_path / "ca.crt").read_bytes()
    again = [p.read_bytes() for p in pki.issue(tmp_path, "gateway")]
    assert again == first
    assert (tmp_path / "ca.crt").read_bytes() == ca


def test_the_command_line_makes_every_identity_with_extra_hosts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "common.pki", str(tmp_path), "--host", "registry.example"],
        check=True,
        capture_output=True,
    )
    expected = {
        "ca",
        "gateway",
        "population",
        "insurance",
        "health",
        "hospital",
        "lienthong-cli",
        "conformance",
    }
    assert {p.stem for p in tmp_path.glob("*.crt")} == expected
    assert {p.stem for p in tmp_path.glob("*.key")} == expected
    names = load(tmp_path / "population.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "registry.example" in names.value.get_values_for_type(x509.DNSName)

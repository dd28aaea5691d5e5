"""The message log's chain and checkpoints: what verify catches, by line.

Each tampering is done to a real log file the way an intruder would (one byte
changed, a line removed, two lines swapped, a chain rewritten), and the
expected line numbers are read off the file by the test, not computed by the
code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.message_log import MessageLog, Signer, dossier_of, wire_digest
from common.message_log_verify import LogReport, Trust, verify_log
from common.rpc import CallRecord
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.population.v1 import population_pb2 as pop

SERVICE = "/lienthong.population.v1.PopulationRegistryService"
CALLS = 8
EVERY = 3


def call(
    number: int,
    *,
    request: list[object] | None = None,
    response: list[object] | None = None,
    dossier_header: str = "",
) -> CallRecord:
    return CallRecord(
        at=dt.datetime(2026, 11, 30, 2, 0, number, tzinfo=dt.UTC),
        caller="gateway",
        method=f"{SERVICE}/RegisterBirth",
        code="OK",
        reason="",
        correlation_id=f"corr-{number}",
        duration_ms=1.5,
        request=request  # type: ignore[arg-type]
        if request is not None
        else [pop.RegisterBirthRequest(request_id=f"birth-{number}/register_birth")],
        response=response,  # type: ignore[arg-type]
        dossier_id=dossier_header,
    )


def write_log(directory: Path, calls: int = CALLS, signer: Signer | None = None) -> Path:
    log = MessageLog(
        directory,
        "population",
        signer or Signer.for_log_directory(directory, "population"),
        checkpoint_records=EVERY,
    )
    for number in range(calls):
        log.observe(call(number))
    log.close()
    return log.path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def records_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines_of(path)]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def first_line(path: Path, kind: str, after: int = 1) -> int:
    """The 1-based number of the first line of `kind` after line `after`."""
    for number, record in enumerate(records_of(path), start=1):
        if number > after and record["kind"] == kind:
            return number
    raise AssertionError(f"no {kind} record after line {after}")


def verify(path: Path, trust: Trust | None = None) -> LogReport:
    return verify_log(path, trust or Trust.for_directory(path.parent))


def found(report: LogReport) -> list[tuple[str, int]]:
    return [(p.kind, p.line) for p in report.problems]


# The rule, as the format's documentation states it, written out here.
def rehash(record: dict[str, object]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def dump(record: dict[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    records = records_of(path)
    kinds = [r["kind"] for r in records]
    assert kinds.count("call") == CALLS
    # One checkpoint per EVERY calls, and one at close for the rest.
    assert kinds.count("checkpoint") == CALLS // EVERY + 1
    assert kinds[-1] == "checkpoint"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    report = verify(path)
    assert report.ok, report.problems
    assert (report.calls, report.checkpoints, report.signers) == (CALLS, 3, {"population"})
    assert any("proves the log was not altered, not who wrote it" in n for n in report.notes)


def test_one_byte_changed_is_caught_as_altered_at_its_line(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    lines = lines_of(path)
    target = first_line(path, "call", after=3)
    line = lines[target - 1]
    # One hexadecimal digit of the request's digest: still valid JSON.
    at = line.index(b'"request_sha256":"') + len(b'"request_sha256":"')
    lines[target - 1] = line[:at] + (b"0" if line[at : at + 1] != b"0" else b"1") + line[at + 1 :]
    write_lines(path, lines)
    report = verify(path)
    assert found(report) == [("altered", target)]


def test_a_dropped_record_is_caught_as_missing(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    lines = lines_of(path)
    dropped = first_line(path, "call", after=3)
    seq = records_of(path)[dropped - 1]["seq"]
    del lines[dropped - 1]
    write_lines(path, lines)
    report = verify(path)
    # Named where it should have been: the line that now holds its successor.
    assert found(report) == [("missing", dropped)]
    assert f"record #{seq}" in report.problems[0].message


def test_two_swapped_records_are_caught_as_reordered(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    lines = lines_of(path)
    first = first_line(path, "call", after=3)
    lines[first - 1], lines[first] = lines[first], lines[first - 1]
    write_lines(path, lines)
    report = verify(path)
    assert found(report) == [("reordered", first + 1)]
    seq = json.loads(lines[first])["seq"]
    assert f"record #{seq} comes after record #{seq + 1} (line {first})" in str(report.problems[0])


def test_a_replaced_record_is_caught_where_the_chain_breaks(tmp_path: Path) -> None:
    """A record rewritten with a hash of its own that matches: the record
    after it no longer follows it."""
    path = write_log(tmp_path)
    records = records_of(path)
    target = first_line(path, "call", after=3)
    records[target - 1]["code"] = "NOT_FOUND"
    records[target - 1]["hash"] = rehash(records[target - 1])
    write_lines(path, [dump(r) for r in records])
    report = verify(path)
    assert found(report) == [("altered", target + 1)]
    assert f"(line {target}): one of them was replaced" in report.problems[0].message


def test_a_rewritten_chain_is_caught_by_the_checkpoint_signature(tmp_path: Path) -> None:
    """An intruder who changes a record and recomputes every hash after it
    makes a consistent chain; the next checkpoint's signature still covers
    the old head."""
    path = write_log(tmp_path)
    records = records_of(path)
    target = first_line(path, "call")
    records[target - 1]["code"] = "NOT_FOUND"
    previous = str(records[target - 2]["hash"])
    for record in records[target - 1 :]:
        record["prev"] = previous
        record["hash"] = rehash(record)
        previous = str(record["hash"])
    write_lines(path, [dump(r) for r in records])
    report = verify(path)
    signed = first_line(path, "checkpoint", after=target)
    assert ("signature", signed) in found(report)
    assert all(kind == "signature" for kind, _ in found(report)), found(report)


def test_a_checkpoint_with_a_bad_signature_is_caught(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    records = records_of(path)
    # The closing checkpoint, signed by some other key, its hash made consistent
    # (nothing follows it, so the chain is whole).
    checkpoint = len(records)
    assert records[-1]["kind"] == "checkpoint"
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = stranger.sign(b"anything", ec.ECDSA(hashes.SHA256()))
    records[-1]["signature"] = base64.b64encode(forged).decode()
    records[-1]["hash"] = rehash(records[-1])
    write_lines(path, [dump(r) for r in records])
    report = verify(path)
    assert found(report) == [("signature", checkpoint)]


def test_a_torn_last_line_is_a_crash_not_tampering(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    whole = path.read_bytes()
    # The crash cut the last write (the closing checkpoint) in its middle.
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    torn = whole[: last_start + 40]
    path.write_bytes(torn)
    report = verify(path)
    assert report.ok, report.problems
    torn_line = torn.count(b"\n") + 1
    assert any(f"line {torn_line}: torn last line (40 bytes)" in n for n in report.notes)
    # The calls it no longer covers are said to be unsigned.
    assert any("after the last checkpoint" in n for n in report.notes)


def test_a_restart_acknowledges_the_torn_line_and_continues_the_chain(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    whole = path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(whole[: last_start + 40])
    write_log(tmp_path, calls=2)  # the process starts again
    report = verify(path)
    assert report.ok, report.problems
    torn_line = whole[:last_start].count(b"\n") + 1
    assert any(
        f"line {torn_line}: torn line (40 bytes), acknowledged by the restart at line "
        f"{torn_line + 1}" in n
        for n in report.notes
    ), report.notes
    starts = [r for r in records_of_lenient(path) if r.get("kind") == "start"]
    assert len(starts) == 2 and starts[1]["torn"] == {
        "bytes": 40,
        "sha256": hashlib.sha256(whole[last_start : last_start + 40]).hexdigest(),
    }


def records_of_lenient(path: Path) -> list[dict[str, object]]:
    out = []
    for line in lines_of(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_garbage_in_the_middle_is_not_a_torn_line(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    lines = lines_of(path)
    target = first_line(path, "call", after=3)
    lines[target - 1] = lines[target - 1][:40]  # cut, but no restart says so
    write_lines(path, lines)
    assert found(verify(path)) == [("altered", target)]


def test_the_last_newline_changed_is_altered_not_torn(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1] + b" ")
    report = verify(path)
    assert found(report) == [("altered", whole.count(b"\n"))]


def test_the_chain_continues_across_restarts(tmp_path: Path) -> None:
    path = write_log(tmp_path, calls=2)
    assert write_log(tmp_path, calls=2) == path
    records = records_of(path)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert [r["kind"] for r in records].count("start") == 2
    assert verify(path).ok


def test_a_second_writer_of_the_same_name_gets_a_file_of_its_own(tmp_path: Path) -> None:
    signer = Signer.for_log_directory(tmp_path, "gateway")
    first = MessageLog(tmp_path, "gateway", signer)
    second = MessageLog(tmp_path, "gateway", signer)
    try:
        assert (first.path.name, second.path.name) == ("gateway.jsonl", "gateway-2.jsonl")
    finally:
        first.close()
        second.close()


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _identity(
    directory: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca[0], hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_checkpoints_signed_with_the_tls_identity_verify_against_the_ca(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = _ca("test CA")
    pki.mkdir()
    (pki / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    signer = Signer.from_tls(*_identity(pki, ca, "population"))
    path = write_log(tmp_path / "messages", signer=signer)
    report = verify(path)  # finds DATA_DIR/pki/ca.crt beside DATA_DIR/messages
    assert report.ok, report.problems
    assert report.signers == {"population"}
    assert not any("not who wrote it" in n for n in report.notes), report.notes
    # The same log judged by another deployment's CA: not vouched for.
    other = tmp_path / "other-pki"
    other.mkdir()
    (other / "ca.crt").write_bytes(_ca("other CA")[1].public_bytes(serialization.Encoding.PEM))
    strange = verify(path, Trust.for_directory(path.parent, other))
    assert strange.problems and {p.kind for p in strange.problems} == {"signature"}
    assert "not issued by" in strange.problems[0].message


def test_digests_follow_grpc_framing_and_never_the_payload(tmp_path: Path) -> None:
    request = pop.GetCitizenRequest(personal_id_number="001190999999")
    data = request.SerializeToString()
    assert (
        wire_digest([request])
        == hashlib.sha256(b"\x00" + len(data).to_bytes(4, "big") + data).hexdigest()
    )
    assert wire_digest(None) is None
    log = MessageLog(tmp_path, "population", Signer.for_log_directory(tmp_path, "population"))
    log.observe(call(1, request=[request]))
    log.close()
    assert b"001190999999" not in log.path.read_bytes()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: call(1), "birth-1"),
        (
            lambda: call(1, request=[gw.GetDossierRequest(dossier_id="birth-abc")]),
            "birth-abc",
        ),
        (
            lambda: call(
                1,
                request=[gw.SubmitBirthDeclarationRequest(idempotency_key="k")],
                response=[gw.SubmitBirthDeclarationResponse(dossier_id="birth-new")],
            ),
            "birth-new",
        ),
        (
            lambda: call(
                1,
                request=[pop.GetCitizenRequest(personal_id_number="001190999999")],
                dossier_header="death-xyz",
            ),
            "death-xyz",
        ),
        (lambda: call(1, request=[pop.GetCitizenRequest()]), ""),
        # A request id that is not the gateway's <dossier>/<step> names no dossier.
        (lambda: call(1, request=[pop.RegisterBirthRequest(request_id="seed-7")]), ""),
    ],
)
def test_the_dossier_of_a_call(make: Callable[[], CallRecord], expected: str) -> None:
    assert dossier_of(make()) == expected

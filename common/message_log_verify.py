"""Checking message logs (common/message_log.py) and reading their calls back.

`verify_log` re-reads a log and names, by line, every record that is:
- altered: the line is not the canonical JSON of a record whose `hash` is its
  own content's, or a record does not follow the one before it in the chain
  (its `prev` is not that record's hash: replaced or inserted);
- missing: a sequence number that never appears;
- reordered: a record that comes after one with a higher sequence number,
  or a sequence number that appears twice;
- a checkpoint whose signature does not verify, or whose signer is not vouched
  for (a certificate the CA in DATA_DIR/pki did not issue).

A torn line (a crash cut a write short) is not tampering and is reported apart:
the last line of the file without its newline that is no complete record, or a
line the next start record names by its length and digest. So are the records
after the last checkpoint (chained but not yet signed: the process is running,
or was killed).

What a verifier cannot see from the file alone: its tail cut off after the last
checkpoint, or the whole file replaced by one signed with the same key. The
first needs the checkpoints sent somewhere else (X-Road has them timestamped by
a third party); the second, a key the writer does not hold alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.message_log import (
    GENESIS,
    LOG_PUBLIC_KEY,
    SUFFIX,
    canonical,
    chain_hash,
    common_name,
    public_key_fingerprint,
    signature_valid,
    signed_bytes,
)

CA_CERT = "ca.crt"


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    # altered, missing, reordered, signature
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"


@dataclass
class LogReport:
    path: Path
    records: int = 0
    calls: int = 0
    checkpoints: int = 0
    # Who signed the checkpoints, and how they are vouched for.
    signers: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    # Not tampering: torn lines, an unsigned tail, a signature proving integrity only.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Trust:
    """Where checkpoints' keys are vouched for: the CA that issued the
    processes' certificates, and the log directory's own public key."""

    ca: x509.Certificate | None
    ca_path: Path | None
    log_key: ec.EllipticCurvePublicKey | None

    @classmethod
    def for_directory(cls, directory: Path, pki: Path | None = None) -> Trust:
        """The CA of DATA_DIR/pki (the log directory's parent's), or `pki`'s."""
        ca_path = next(
            (
                p
                for p in ([pki / CA_CERT] if pki else [directory.parent / "pki" / CA_CERT])
                if p.is_file()
            ),
            None,
        )
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes()) if ca_path else None
        log_key: ec.EllipticCurvePublicKey | None = None
        key_path = directory / LOG_PUBLIC_KEY
        if key_path.is_file():
            loaded = serialization.load_pem_public_key(key_path.read_bytes())
            if isinstance(loaded, ec.EllipticCurvePublicKey):
                log_key = loaded
        return cls(ca, ca_path, log_key)


@dataclass(frozen=True)
class _Line:
    number: int
    raw: bytes
    # Ended by a newline: a line without one can only be the file's last.
    terminated: bool
    record: dict[str, Any] | None
    # Why it is not an intact record ("" when it is).
    fault: str


def _read_lines(path: Path) -> list[_Line]:
    data = path.read_bytes()
    pieces = data.split(b"\n")
    lines = []
    for index, raw in enumerate(pieces):
        last = index == len(pieces) - 1
        if last and raw == b"":
            break  # the file ends with a newline
        record, fault = _check(raw)
        lines.append(_Line(index + 1, raw, not last, record, fault))
    return lines


def _check(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        record = json.loads(raw)
    except ValueError:
        return None, "not a JSON record"
    if not isinstance(record, dict):
        return None, "not a JSON record"
    if not isinstance(record.get("seq"), int) or not isinstance(record.get("hash"), str):
        return record, "no sequence number or hash"
    if canonical(record) != raw:
        return record, "the line differs from its record's canonical form"
    if chain_hash(record) != record["hash"]:
        return record, "its hash does not match its content"
    return record, ""


def _record(line: _Line) -> dict[str, Any]:
    assert line.record is not None
    return line.record


def _seq(line: _Line) -> int:
    seq = _record(line)["seq"]
    assert isinstance(seq, int)
    return seq


def _is_torn_tail(line: _Line) -> bool:
    """A cut-short write: the unterminated last line holds no complete JSON
    value (a strict prefix of a record never does). A record with one byte
    changed after its end -- its newline -- is complete JSON: altered."""
    try:
        json.JSONDecoder().raw_decode(line.raw.decode("utf-8", "replace"))
    except ValueError:
        return True
    return False


def _acknowledges(start: _Line | None, torn: _Line) -> bool:
    """Whether the line after a bad one is a start record naming it as torn."""
    if start is None or start.fault or start.record is None:
        return False
    named = start.record.get("torn")
    return (
        start.record.get("kind") == "start"
        and isinstance(named, dict)
        and named.get("bytes") == len(torn.raw)
        and named.get("sha256") == hashlib.sha256(torn.raw).hexdigest()
    )


class _Verifier:
    def __init__(self, path: Path, trust: Trust) -> None:
        self.path = path
        self.trust = trust
        self.report = LogReport(path)
        self._vouched: dict[str, str] = {}

    def problem(self, line: int, kind: str, message: str) -> None:
        self.report.problems.append(Problem(self.path, line, kind, message))

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    def run(self) -> LogReport:
        lines = _read_lines(self.path)
        intact: list[_Line] = []
        # Lines that are not records but stand where one was: their seq if
        # readable, else None (placed by position below).
        bad: list[tuple[_Line, int | None]] = []
        for index, line in enumerate(lines):
            if not line.fault:
                intact.append(line)
                continue
            following = lines[index + 1] if index + 1 < len(lines) else None
            if not line.terminated and _is_torn_tail(line):
                self.note(
                    f"line {line.number}: torn last line ({len(line.raw)} bytes): "
                    "a write cut short by a crash, not a record"
                )
            elif _acknowledges(following, line):
                self.note(
                    f"line {line.number}: torn line ({len(line.raw)} bytes), "
                    f"acknowledged by the restart at line {line.number + 1}"
                )
            else:
                self.problem(line.number, "altered", line.fault)
                seq = line.record.get("seq") if line.record is not None else None
                bad.append((line, seq if isinstance(seq, int) else None))
        self._sequence(intact, bad)
        self._signatures(lines)
        self.report.records = len(intact)
        return self.report

    def _sequence(self, intact: list[_Line], bad: list[tuple[_Line, int | None]]) -> None:
        by_seq: dict[int, _Line] = {}
        highest: tuple[int, int] | None = None  # (seq, line) of the highest so far
        for line in intact:
            seq = _seq(line)
            if seq in by_seq:
                self.problem(
                    line.number,
                    "reordered",
                    f"record #{seq} appears again (first at line {by_seq[seq].number})",
                )
                continue
            by_seq[seq] = line
            if highest is not None and seq < highest[0]:
                self.problem(
                    line.number,
                    "reordered",
                    f"record #{seq} comes after record #{highest[0]} (line {highest[1]})",
                )
            else:
                highest = (seq, line.number)
        # The chain, by sequence number: each record names its predecessor's hash.
        for seq, line in by_seq.items():
            before = by_seq.get(seq - 1)
            if seq == 1:
                wanted = GENESIS
            elif before is not None:
                wanted = _record(before)["hash"]
            else:
                continue  # its predecessor is missing: said below
            if _record(line).get("prev") != wanted:
                named = (
                    "the start of the chain"
                    if before is None
                    else f"record #{seq - 1} (line {before.number})"
                )
                self.problem(
                    line.number,
                    "altered",
                    f"record #{seq} does not follow {named}: one of them was replaced",
                )
        self._missing(intact, by_seq, bad)

    def _missing(
        self,
        intact: list[_Line],
        by_seq: dict[int, _Line],
        bad: list[tuple[_Line, int | None]],
    ) -> None:
        if not by_seq:
            return
        claimed = {seq for _, seq in bad if seq is not None}
        # An unreadable line stands for the record after the intact one before it.
        for line, seq in bad:
            if seq is None:
                before = [_seq(i) for i in intact if i.number < line.number]
                claimed.add(before[-1] + 1 if before else 1)
        absent = sorted(set(range(1, max(by_seq) + 1)) - set(by_seq) - claimed)
        runs: list[list[int]] = []
        for seq in absent:
            if runs and runs[-1][-1] == seq - 1:
                runs[-1].append(seq)
            else:
                runs.append([seq])
        for run in runs:
            after = min(s for s in by_seq if s > run[-1])
            what = f"record #{run[0]}" if len(run) == 1 else f"records #{run[0]}-#{run[-1]}"
            self.problem(by_seq[after].number, "missing", f"{what} (expected before this line)")

    def _signatures(self, lines: Sequence[_Line]) -> None:
        signer: dict[str, Any] | None = None
        # A start record that is itself altered names no signer one can trust.
        altered_start = 0
        last_checkpoint = 0
        after_checkpoint = 0
        for line in lines:
            record = line.record
            if line.fault or record is None:
                if record is not None and record.get("kind") == "start":
                    signer, altered_start = None, line.number
                continue
            kind = record.get("kind")
            if kind == "start":
                signer = record.get("signer") if isinstance(record.get("signer"), dict) else None
            elif kind == "call":
                self.report.calls += 1
                after_checkpoint += 1
            elif kind == "checkpoint":
                self.report.checkpoints += 1
                last_checkpoint = line.number
                after_checkpoint = 0
                self._checkpoint(line, record, signer, altered_start)
        if after_checkpoint:
            where = f"line {last_checkpoint}" if last_checkpoint else "the start"
            self.note(
                f"{after_checkpoint} record(s) after the last checkpoint "
                f"({where}) are chained but not signed: the process is running or was killed"
            )

    def _checkpoint(
        self,
        line: _Line,
        record: dict[str, Any],
        signer: dict[str, Any] | None,
        altered_start: int,
    ) -> None:
        if signer is None:
            why = (
                f"the start record naming its signer (line {altered_start}) is altered"
                if altered_start
                else "no start record names its signer"
            )
            self.problem(line.number, "signature", f"cannot be checked: {why}")
            return
        key = self._key(line, signer)
        if key is None:
            return
        signature = record.get("signature")
        if not isinstance(signature, str) or not signature_valid(
            key, signed_bytes(record), signature
        ):
            self.problem(
                line.number,
                "signature",
                f"checkpoint #{record.get('seq')}: the signature does not verify with "
                f"{signer.get('identity')}'s key",
            )
            return
        if record.get("through") != record["seq"] - 1:
            self.problem(line.number, "altered", "a checkpoint that does not count its records")
        self.report.signers.add(str(signer.get("identity")))

    def _key(self, line: _Line, signer: dict[str, Any]) -> ec.EllipticCurvePublicKey | None:
        identity = str(signer.get("identity"))
        pem = signer.get("certificate")
        if isinstance(pem, str):
            return self._certified_key(line, identity, pem)
        if signer.get("key") == "log-dir":
            key = self.trust.log_key
            if key is None:
                self.problem(
                    line.number,
                    "signature",
                    f"signed with the log directory's key, but {LOG_PUBLIC_KEY} is not "
                    "beside the log",
                )
                return None
            if public_key_fingerprint(key) != signer.get("public_key_sha256"):
                self.problem(
                    line.number,
                    "signature",
                    f"signed with a key other than the directory's {LOG_PUBLIC_KEY}",
                )
                return None
            self.note(
                "signed with the log directory's own key (no TLS identity): proves the "
                "log was not altered, not who wrote it"
            )
            return key
        self.problem(line.number, "signature", "the start record names no signing key")
        return None

    def _certified_key(
        self, line: _Line, identity: str, pem: str
    ) -> ec.EllipticCurvePublicKey | None:
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            self.problem(line.number, "signature", "the start record's certificate does not load")
            return None
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            self.problem(line.number, "signature", "the certificate's key is not an EC key")
            return None
        if common_name(certificate) != identity:
            self.problem(
                line.number,
                "signature",
                f"the certificate is {common_name(certificate)!r}'s, not {identity!r}'s",
            )
            return None
        if self.trust.ca is None:
            self.note(
                f"no {CA_CERT} found (DATA_DIR/pki, or --pki): the checkpoints "
                "verify against the certificate the log carries, which proves the log was "
                "not altered, not who wrote it"
            )
            return key
        if pem not in self._vouched:
            try:
                certificate.verify_directly_issued_by(self.trust.ca)
                self._vouched[pem] = ""
            except (ValueError, TypeError) as exc:
                self._vouched[pem] = str(exc) or "signature mismatch"
            except Exception as exc:  # InvalidSignature carries no message
                self._vouched[pem] = type(exc).__name__
        why = self._vouched[pem]
        if why:
            self.problem(
                line.number,
                "signature",
                f"{identity}'s certificate was not issued by {self.trust.ca_path} ({why})",
            )
            return None
        return key


def verify_log(path: Path, trust: Trust) -> LogReport:
    return _Verifier(path, trust).run()


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


def verify_directories(directories: Iterable[Path], *, pki: Path | None = None) -> list[LogReport]:
    reports: list[LogReport] = []
    for directory in directories:
        trust = Trust.for_directory(directory, pki)
        reports.extend(verify_log(path, trust) for path in log_files(directory))
    return reports


@dataclass(frozen=True)
class Exchange:
    """One call as a server's log recorded it, for a dossier's trail."""

    at: str
    caller: str
    # The process whose log holds it: the callee.
    server: str
    service: str
    method: str
    code: str
    reason: str
    duration_ms: float
    path: Path
    line: int


def exchanges_of(directories: Iterable[Path], dossier_id: str) -> list[Exchange]:
    """Every call of one dossier in the logs of `directories`, in time order.
    Reads what is there; it does not verify (that is verify_log's)."""
    found: list[Exchange] = []
    for directory in directories:
        for path in log_files(directory):
            server = path.stem
            for line in _read_lines(path):
                record = line.record
                if record is None:
                    continue
                if record.get("kind") == "start":
                    server = str(record.get("process") or path.stem)
                if record.get("kind") != "call" or record.get("dossier_id") != dossier_id:
                    continue
                found.append(
                    Exchange(
                        at=str(record.get("at")),
                        caller=str(record.get("caller")),
                        server=server,
                        service=str(record.get("service")),
                        method=str(record.get("method")),
                        code=str(record.get("code")),
                        reason=str(record.get("reason") or ""),
                        duration_ms=float(record.get("duration_ms") or 0.0),
                        path=path,
                        line=line.number,
                    )
                )
    # ISO 8601 in UTC, same format everywhere: text order is time order.
    return sorted(found, key=lambda e: (e.at, str(e.path), e.line))

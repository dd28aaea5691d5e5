"""The message log (evidence): one record per call a server answered or
refused, appended to a hash-chained file, with checkpoints signed by the
process's key. `common.message_log_verify` checks such files; `lienthong
audit` is its command line.

One file per process, DIR/<process>.jsonl (DIR from LIENTHONG_MESSAGE_LOG_DIR;
no log when unset), one canonical JSON object a line (keys sorted, no spaces,
ASCII only, so a reader can re-serialize a record and compare bytes). Three
kinds of record, every one a link of the chain (`seq` counts from 1, `prev`
is the previous record's `hash`, `hash` is the SHA-256 of the record's
canonical JSON without `hash`):

- `start`: a process opened the log (the chain continues across restarts);
  names the process and its signer: the identity and certificate from
  LIENTHONG_TLS_CERT/KEY, or the log directory's own key (see below).
- `call`: time, caller (from the TLS certificate), service and method, status
  code and reason, correlation id, dossier id, duration, and SHA-256 digests
  of the request and of the response -- never the payload, so no personal
  data is copied into the log.
- `checkpoint`: every CHECKPOINT_RECORDS records or CHECKPOINT_SECONDS after
  the first unsigned one, and at shutdown: the chain head (`prev`) and the
  count, signed (ECDSA P-256 / SHA-256) with the process's key.

Durability: each record is one os.write on an O_APPEND descriptor, before
the call's answer leaves: a process crash loses nothing. Each checkpoint (and
the start) is followed by fsync, so a machine crash loses at most the records
since the last checkpoint; an fsync per call would cost ~milliseconds a call
on a real disk. A write cut short by a crash leaves a torn last line: the
next start terminates it and names its length and digest, so a verifier can
tell it from an altered record.

Without LIENTHONG_TLS_KEY the log signs with a key generated once per log
directory and kept in it (signing-key.pem, its public key beside): that proves
the log was not altered after it was signed, not who wrote it. Only a key the
CA certified (mutual TLS on) makes a checkpoint evidence of origin.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.message import Message

from common.rpc import CallRecord

log = structlog.get_logger("message_log")

ENV_DIR = "LIENTHONG_MESSAGE_LOG_DIR"
ENV_CHECKPOINT_RECORDS = "LIENTHONG_MESSAGE_LOG_CHECKPOINT_RECORDS"
ENV_CHECKPOINT_SECONDS = "LIENTHONG_MESSAGE_LOG_CHECKPOINT_SECONDS"
TLS_CERT_ENV = "LIENTHONG_TLS_CERT"
TLS_KEY_ENV = "LIENTHONG_TLS_KEY"

SUFFIX = ".jsonl"
# The `prev` of the very first record.
GENESIS = "0" * 64
LOG_KEY = "signing-key.pem"
LOG_PUBLIC_KEY = "signing-key.pub.pem"
# A signature a second (at most) under load, one per thousand calls at a
# high rate: ~0.1 ms of ECDSA and one fsync each, out of the calls' way.
CHECKPOINT_RECORDS = 1000
CHECKPOINT_SECONDS = 2.0
# Records are a few hundred bytes (a start record with a certificate ~1 KiB):
# the last one is found in the file's last 64 KiB.
_TAIL_BYTES = 64 * 1024
# A dossier id derived from a request is cut like a correlation id.
DOSSIER_ID_LIMIT = 64
ID_FIELDS = ("request_id", "dossier_id")


# Built once: json.dumps would build an encoder for each of the two
# encodings a record takes (its hash, its line).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The one serialization of a record: what is hashed, signed and written."""
    return _ENCODER.encode(record).encode()


def chain_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def signed_bytes(checkpoint: Mapping[str, Any]) -> bytes:
    """What a checkpoint's signature covers: everything but itself and its hash."""
    return canonical({k: v for k, v in checkpoint.items() if k not in ("signature", "hash")})


def wire_digest(messages: Sequence[Message] | None) -> str | None:
    """SHA-256 over the messages in gRPC's framing (a 0 flag byte, a 4-byte
    big-endian length, the message's deterministic serialization), in order:
    one rule for a unary call and a stream, and a stream's boundaries count.
    None when nothing crossed (a refusal, undecodable bytes)."""
    if messages is None:
        return None
    digest = hashlib.sha256()
    for message in messages:
        data = message.SerializeToString(deterministic=True)
        digest.update(b"\x00" + len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.hexdigest()


def _id_field(messages: Sequence[Message] | None, name: str) -> str:
    if not messages:
        return ""
    first = messages[0]
    if name not in first.DESCRIPTOR.fields_by_name:
        return ""
    value = getattr(first, name)
    return value if isinstance(value, str) else ""


def dossier_of(call: CallRecord) -> str:
    """The dossier a call served: the part before the first `/` of the
    request's request_id (the gateway's are `<dossier id>/<step>[/<call>]`),
    else a dossier_id field of the request or the answer (the gateway's own
    API), else the caller's `x-dossier-id` metadata; "" when none says."""
    request_id = _id_field(call.request, "request_id")
    found = request_id.partition("/")[0] if "/" in request_id else ""
    found = (
        found
        or _id_field(call.request, "dossier_id")
        or _id_field(call.response, "dossier_id")
        or call.dossier_id
    )
    return found[:DOSSIER_ID_LIMIT]


def public_key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def signature_valid(key: ec.EllipticCurvePublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` with `data` whole, or leave it if it exists (another
    process won the race): written aside, then linked in, which is atomic."""
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(aside, path)
        return True
    except FileExistsError:
        return False
    finally:
        aside.unlink()


def log_directory_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    """The log directory's own signing key, made by the first process that
    needs it (the registries start side by side: exactly one wins)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOG_KEY
    if not path.exists():
        made = ec.generate_private_key(ec.SECP256R1())
        pem = made.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_new(path, pem, 0o600)
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = directory / LOG_PUBLIC_KEY
    if not public_path.exists():
        _write_new(public_path, public, 0o644)
    return key


@dataclass(frozen=True)
class Signer:
    """A process's checkpoint key and how a verifier finds its public half."""

    identity: str
    key: ec.EllipticCurvePrivateKey
    # What the start record says about the key: {"certificate": PEM} or
    # {"key": "log-dir", "public_key_sha256": ...}, with the identity.
    described: dict[str, str]

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()

    @classmethod
    def from_tls(cls, cert_path: Path, key_path: Path) -> Signer:
        """The process's TLS identity: the key the CA certified."""
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        identity = common_name(certificate)
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        return cls(identity, key, {"identity": identity, "certificate": pem})

    @classmethod
    def for_log_directory(cls, directory: Path, process: str) -> Signer:
        key = log_directory_key(directory)
        return cls(
            process,
            key,
            {
                "identity": process,
                "key": "log-dir",
                "public_key_sha256": public_key_fingerprint(key.public_key()),
            },
        )

    @classmethod
    def from_env(cls, directory: Path, process: str) -> Signer:
        cert, key = os.environ.get(TLS_CERT_ENV), os.environ.get(TLS_KEY_ENV)
        if cert and key:
            return cls.from_tls(Path(cert), Path(key))
        return cls.for_log_directory(directory, process)


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str
    # A last line a crash cut short (no newline), to be acknowledged.
    torn: bytes = b""


def _read_head(descriptor: int) -> _Head:
    """The chain's head: the last complete record of the file."""
    size = os.fstat(descriptor).st_size
    if size == 0:
        return _Head(0, GENESIS)
    start = max(0, size - _TAIL_BYTES)
    tail = os.pread(descriptor, size - start, start)
    complete, _, torn = tail.rpartition(b"\n")
    lines = complete.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first may be the end of a line before the window
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("seq"), int):
                return _Head(record["seq"], str(record.get("hash")), torn)
    # Nothing readable at the end: a new chain; verify names the break.
    log.error("message log: no readable record at the end; starting a new chain")
    return _Head(0, GENESIS, torn)


def _open_locked(directory: Path, process: str) -> tuple[int, Path]:
    """The process's log, open for appending and locked: a second process
    of the same name (two gateways) gets <process>-2.jsonl, and so on, since
    two writers would interleave their chains."""
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        name = process if attempt == 1 else f"{process}-{attempt}"
        path = directory / f"{name}{SUFFIX}"
        existed = path.exists()
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        if not existed:
            # The new name must survive a machine crash too.
            directory_descriptor = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_descriptor)
            finally:
                os.close(directory_descriptor)
        return descriptor, path
    raise OSError(errno.EBUSY, f"no free message log name for {process} in {directory}")


class MessageLog:
    """A CallObserver writing the process's message log (see the module's doc)."""

    def __init__(
        self,
        directory: Path,
        process: str,
        signer: Signer,
        *,
        checkpoint_records: int = CHECKPOINT_RECORDS,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        self.process = process
        self.signer = signer
        self.checkpoint_records = checkpoint_records
        self.checkpoint_seconds = checkpoint_seconds
        self._descriptor, self.path = _open_locked(directory, process)
        head = _read_head(self._descriptor)
        self._seq, self._head = head.seq, head.hash
        self._unsigned = 0
        self._timer: Any = None
        self._closed = False
        start: dict[str, Any] = {
            "kind": "start",
            "at": _now(),
            "process": process,
            "pid": os.getpid(),
            "signer": signer.described,
        }
        if head.torn:
            # Ends the torn line, so this record starts a line of its own,
            # and says what it was: a verifier tells it from tampering.
            self._write(b"\n")
            start["torn"] = {
                "bytes": len(head.torn),
                "sha256": hashlib.sha256(head.torn).hexdigest(),
            }
        self._append(start)
        os.fsync(self._descriptor)

    @classmethod
    def from_env(cls, process: str) -> MessageLog | None:
        """The log LIENTHONG_MESSAGE_LOG_DIR asks for, closed at exit; None when unset."""
        directory = os.environ.get(ENV_DIR)
        if not directory:
            return None
        path = Path(directory)
        opened = cls(
            path,
            process,
            Signer.from_env(path, process),
            checkpoint_records=int(os.environ.get(ENV_CHECKPOINT_RECORDS) or CHECKPOINT_RECORDS),
            checkpoint_seconds=float(os.environ.get(ENV_CHECKPOINT_SECONDS) or CHECKPOINT_SECONDS),
        )
        # A clean stop (SIGTERM: run_registry and the gateway return, the
        # interpreter exits) signs the tail; a SIGKILL leaves it unsigned.
        atexit.register(opened.close)
        return opened

    # --- writing ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._descriptor, view)
            view = view[written:]

    def _append(self, record: dict[str, Any]) -> None:
        record["seq"] = self._seq + 1
        record["prev"] = self._head
        record["hash"] = chain_hash(record)
        self._write(canonical(record) + b"\n")
        self._seq, self._head = record["seq"], record["hash"]

    def observe(self, record: CallRecord) -> None:
        if self._closed:
            return
        self._append(
            {
                "kind": "call",
                "at": record.at.isoformat(),
                "caller": record.caller,
                "service": record.service,
                "method": record.method_name,
                "code": record.code,
                "reason": record.reason,
                "correlation_id": record.correlation_id,
                "dossier_id": dossier_of(record),
                "duration_ms": record.duration_ms,
                "request_sha256": wire_digest(record.request),
                "response_sha256": wire_digest(record.response),
            }
        )
        self._unsigned += 1
        if self._unsigned >= self.checkpoint_records:
            self.checkpoint()
        elif self._timer is None:
            self._arm_timer()

    def _arm_timer(self) -> None:
        # Observers are called on the server's event loop; a test calling
        # observe() without one gets checkpoints by count and at close only.
        import asyncio  # noqa: PLC0415 - only servers pay for it

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.checkpoint_seconds, self._timed_checkpoint)

    def _timed_checkpoint(self) -> None:
        self._timer = None
        if self._unsigned and not self._closed:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Sign the chain's head now, and make everything so far durable."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        checkpoint: dict[str, Any] = {
            "kind": "checkpoint",
            "at": _now(),
            "process": self.process,
            "identity": self.signer.identity,
            "seq": self._seq + 1,
            "prev": self._head,
            # Records before this one: all of them are under the signature.
            "through": self._seq,
        }
        checkpoint["signature"] = self.signer.sign(signed_bytes(checkpoint))
        self._append(checkpoint)
        os.fsync(self._descriptor)
        self._unsigned = 0

    def close(self) -> None:
        """Sign what is unsigned and release the file; safe to call twice."""
        if self._closed:
            return
        try:
            if self._unsigned:
                self.checkpoint()
        finally:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            os.close(self._descriptor)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()

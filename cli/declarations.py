"""Read a declaration file (protobuf JSON mapping of BirthDeclaration / DeathDeclaration).

A person edits these files by hand, so every problem is reported as the field
it concerns and what is wrong with it, never as a parser's stack trace:
a missing file, invalid JSON (line and column), an unknown field (with the
closest known name), a value of the wrong JSON type, an unknown enum name,
and finally the contract's own rules (protovalidate, worded as the
registries and the gateway word them).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from common.errors import InvalidArgument
from common.quoting import quote
from common.rpc import validate_message
from lienthong.gateway.v1 import gateway_pb2 as gw

KINDS: dict[str, type[Message]] = {
    "birth": gw.BirthDeclaration,
    "death": gw.DeathDeclaration,
}

_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (a field path, or line/column) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class DeclarationError(Exception):
    """The file cannot be submitted; `problems` says why, field by field."""

    def __init__(self, path: Path, headline: str, problems: list[Problem]) -> None:
        super().__init__(headline)
        self.path = path
        self.headline = headline
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([self.headline, *(f"  {p}" for p in self.problems)])


class InvalidDeclaration(Exception):
    """A document that is not a declaration of its kind; `what` says so in
    words ("is not a valid birth declaration"), `problems` field by field."""

    def __init__(self, what: str, problems: list[Problem]) -> None:
        super().__init__(what)
        self.what = what
        self.problems = problems


def read_declaration(path: Path, kind: str) -> Message:
    """Parse and check `path` as a `kind` ("birth" or "death") declaration."""
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeclarationError(
            path,
            f"{path} is not valid JSON",
            [Problem(f"line {exc.lineno}, column {exc.colno}", exc.msg)],
        ) from None
    try:
        return check_declaration(document, kind)
    except InvalidDeclaration as exc:
        raise DeclarationError(path, f"{path} {exc.what}", exc.problems) from None


def check_declaration(document: Any, kind: str) -> Message:
    """A parsed JSON document as a `kind` declaration: its shape (field names,
    JSON types, enum names), then the contract's protovalidate rules. Used
    for files (`submit`) and for the console's forms alike."""
    declaration = KINDS[kind]()
    problems = check_shape(document, declaration.DESCRIPTOR)
    if not problems:
        try:
            json_format.ParseDict(document, declaration)
        except json_format.ParseError as exc:
            # Whatever the shape check did not foresee: protobuf's own words.
            problems = [Problem("(document)", str(exc))]
    if problems:
        raise InvalidDeclaration(f"is not a valid {kind} declaration", problems)
    try:
        validate_message(declaration)
    except InvalidArgument as exc:
        raise InvalidDeclaration(
            f"breaks the rules of a {kind} declaration",
            [Problem(v.field, v.description) for v in exc.violations],
        ) from None
    return declaration


def idempotency_key(kind: str, declaration: Message) -> str:
    """A key derived from the content: submitting the same file twice yields one dossier."""
    digest = hashlib.sha256(
        kind.encode() + b"\0" + declaration.SerializeToString(deterministic=True)
    )
    return f"{kind}-{digest.hexdigest()[:40]}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = Problem(str(path), "no such file")
    except IsADirectoryError:
        problem = Problem(str(path), "is a directory, not a declaration file")
    except PermissionError:
        problem = Problem(str(path), "cannot be read (permission denied)")
    except UnicodeDecodeError as exc:
        problem = Problem(str(path), f"is not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        problem = Problem(str(path), f"cannot be read ({exc.strerror})")
    raise DeclarationError(path, f"cannot read {path}", [problem])


def check_shape(document: Any, descriptor: Any, path: str = "") -> list[Problem]:
    """Every field name and JSON type that does not fit the message, with its path.

    `descriptor` is a message Descriptor (typed Any: the C and pure-Python
    implementations are distinct types to mypy)."""
    problems: list[Problem] = []
    _check_message(document, descriptor, path, problems)
    return problems


def _check_message(value: Any, descriptor: Descriptor, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, dict):
        problems.append(
            Problem(path or "(document)", f"must be a JSON object, not {_json_type(value)}")
        )
        return
    # The JSON mapping accepts both the proto name and its lowerCamelCase JSON name.
    fields: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        fields[field.name] = field
        fields[field.json_name] = field
    seen: dict[str, str] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        found = fields.get(key)
        if found is None:
            problems.append(Problem(where, _unknown_field(key, descriptor)))
            continue
        field = found
        if field.name in seen:
            problems.append(Problem(where, f"given twice (also as {seen[field.name]!r})"))
            continue
        seen[field.name] = key
        if item is None:  # null means "not set" in the JSON mapping
            continue
        if _is_repeated(field):
            if not isinstance(item, list):
                problems.append(Problem(where, f"must be a JSON array, not {_json_type(item)}"))
                continue
            for index, element in enumerate(item):
                _check_value(field, element, f"{where}[{index}]", problems)
        else:
            _check_value(field, item, where, problems)


def _is_repeated(field: FieldDescriptor) -> bool:
    # `label` is deprecated in newer protobuf releases in favour of is_repeated.
    repeated = getattr(field, "is_repeated", None)
    if isinstance(repeated, bool):
        return repeated
    return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)


def _check_value(field: FieldDescriptor, value: Any, where: str, problems: list[Problem]) -> None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        message = field.message_type
        if message is not None and not message.full_name.startswith("google.protobuf."):
            _check_message(value, message, where, problems)
        # Well-known types have their own JSON forms; ParseDict checks them.
    elif kind == FieldDescriptor.TYPE_ENUM:
        _check_enum(field, value, where, problems)
    elif kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            problems.append(Problem(where, f"must be a string, not {_json_type(value)}"))
    elif kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            problems.append(Problem(where, f"must be true or false, not {_json_type(value)}"))
    elif kind in _INTEGER_TYPES:
        if not _is_integer(value):
            problems.append(Problem(where, f"must be a whole number, not {_json_type(value)}"))
    elif kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            problems.append(Problem(where, f"must be a number, not {_json_type(value)}"))
    elif kind == FieldDescriptor.TYPE_BYTES and not isinstance(value, str):
        problems.append(Problem(where, f"must be a base64 string, not {_json_type(value)}"))


def _check_enum(field: FieldDescriptor, value: Any, where: str, problems: list[Problem]) -> None:
    enum = field.enum_type
    assert enum is not None
    names = [v.name for v in enum.values]
    if isinstance(value, str):
        if value in names:
            return
        # "FEMALE" for SEX_FEMALE: the JSON mapping wants the full name.
        close = [n for n in names if n.endswith("_" + value.upper())] or difflib.get_close_matches(
            value.upper(), names, n=1
        )
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(
            Problem(
                where, f"unknown value {quote(repr(value))}{hint}; one of: {', '.join(names[1:])}"
            )
        )
    elif _is_integer(value) and not isinstance(value, str):
        if int(value) not in {v.number for v in enum.values}:
            problems.append(Problem(where, f"{value} is not a value of {enum.name}"))
    else:
        problems.append(
            Problem(where, f"must be one of {', '.join(names[1:])}, not {_json_type(value)}")
        )


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    # 64-bit integers may be written as strings in the JSON mapping.
    return isinstance(value, str) and value.lstrip("-").isdigit()


def _unknown_field(key: str, descriptor: Descriptor) -> str:
    known = [f.name for f in descriptor.fields]
    close = difflib.get_close_matches(key, known + [f.json_name for f in descriptor.fields], n=1)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return f"unknown field; {descriptor.name} has: {', '.join(known)}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        # A hand-edited file or a form: a long value is quoted cut short.
        return f"the string {quote(repr(value))}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

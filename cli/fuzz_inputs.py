"""Requests of every shape for every RPC of the four services, built from the
protobuf descriptors (hypothesis strategies).

A message is built field by field from its descriptor: strings from the
field's protovalidate pattern, from values the fuzz targets were seeded with
(so some requests name real people and documents and reach the rules behind
the contract), arbitrary unicode, and now and then a huge one (up to 1 MB);
numbers across the whole range of their type; enum numbers defined or not;
nested and repeated messages. Besides messages: raw bytes, truncated and
corrupted encodings, hand-made malformed ones. Client-streaming RPCs get a
list of those.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from buf.validate import validate_pb2
from lienthong.gateway.v1 import gateway_pb2
from lienthong.health.v1 import health_pb2
from lienthong.insurance.v1 import insurance_pb2
from lienthong.population.v1 import population_pb2

# The four services: the three registries and the gateway.
MODULES: tuple[ModuleType, ...] = (health_pb2, population_pb2, insurance_pb2, gateway_pb2)
HUGE_SIZES = (101, 1_000, 100_000, 1_000_000)
FILLERS = ("9", "a", "ệ", "-", " ")
MAX_DEPTH = 3
MAX_ITEMS = 3
# Values the targets were seeded with, by field name (see strings_by_field).
Pool = Mapping[str, Sequence[str]]
# Bytes no request decodes from (or hardly any): a string field holding
# invalid UTF-8, a varint cut short, a length past the end, an end-group tag
# with no group, a field number 0, a 64-bit value cut short.
MALFORMED = (
    b"\x0a\x02\xff\xfe",
    b"\x08",
    b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x0c",
    b"\x00\x00",
    b"\x09\x01\x02",
    b"\xff" * 16,
)

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Rpc:
    """One RPC of one of the four services."""

    method: MethodDescriptor

    @property
    def full_name(self) -> str:
        return str(self.method.full_name)

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def service(self) -> str:
        return str(self.method.containing_service.full_name)

    @property
    def request(self) -> Descriptor:
        return self.method.input_type

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)


def all_rpcs() -> list[Rpc]:
    return [
        Rpc(method)
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


@dataclass(frozen=True)
class Input:
    """What is sent: one encoded request, or (client streaming) a list of
    them; and the long strings it carries, which no answer may quote whole."""

    payload: bytes | tuple[bytes, ...]
    long_strings: tuple[str, ...]

    @property
    def size(self) -> int:
        if isinstance(self.payload, bytes):
            return len(self.payload)
        return sum(len(p) for p in self.payload)


@dataclass(frozen=True)
class _Built:
    message: Message
    long_strings: tuple[str, ...]


def strings_by_field(messages: Iterable[Message]) -> dict[str, list[str]]:
    """Every non-empty string field value in these messages, recursively, by
    field name; under "" all of them, under "*id_number" every ID number."""
    found: dict[str, set[str]] = {"": set()}

    def visit(message: Message) -> None:
        for field, value in message.ListFields():
            values = value if field.is_repeated else [value]
            for item in values:
                if field.type == FieldDescriptor.TYPE_STRING and item:
                    for key in ("", field.name, *_aliases(field.name)):
                        found.setdefault(key, set()).add(item)
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    visit(item)

    for message in messages:
        visit(message)
    return {key: sorted(values) for key, values in found.items()}


def _aliases(name: str) -> tuple[str, ...]:
    return ("*id_number",) if name.endswith("id_number") else ()


def _rules(field: FieldDescriptor) -> validate_pb2.FieldRules:
    rules: validate_pb2.FieldRules = field.GetOptions().Extensions[validate_pb2.field]
    return rules


def _bounds(field: FieldDescriptor, low: int, high: int) -> tuple[int, int]:
    """The contract's bounds for a number field (gte/gt, lte/lt), else these."""
    rules = _rules(field)
    kind = rules.WhichOneof("type")
    if kind is None:
        return low, high
    numeric = getattr(rules, kind)
    fields = {f.name for f, _ in numeric.ListFields()}
    if "gte" in fields:
        low = numeric.gte
    elif "gt" in fields:
        low = numeric.gt + 1
    if "lte" in fields:
        high = numeric.lte
    elif "lt" in fields:
        high = numeric.lt - 1
    return low, max(low, high)


def _dates(today: dt.date) -> st.SearchStrategy[str]:
    near = st.integers(-40_000, 3).map(lambda days: (today + dt.timedelta(days=days)).isoformat())
    anywhere = st.dates(dt.date.min, dt.date.max).map(dt.date.isoformat)
    impossible = st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}"
    )
    edges = st.sampled_from(["0001-01-01", "9999-12-31", "2024-02-29", "2025-02-29", "1899-12-31"])
    return st.one_of(near, anywhere, impossible, edges)


@st.composite
def _huge(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(FILLERS)) * draw(st.sampled_from(HUGE_SIZES))


def _string(
    field: FieldDescriptor, pool: Pool, today: dt.date, plausible: bool
) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [] if plausible else [st.text(max_size=24), st.just("")]
    everything = pool.get("", ())
    if everything and not plausible:
        options.append(st.sampled_from(everything))
    mine = [v for key in (field.name, *_aliases(field.name)) for v in pool.get(key, ())]
    if mine:
        # Values seeded in a field of this name: real people, documents, places.
        options.extend([st.sampled_from(mine)] * (3 if plausible else 1))
    rules = _rules(field)
    if rules.HasField("string") and rules.string.pattern:
        # `$` would let a trailing newline through; the contract's does not.
        pattern = rules.string.pattern.removesuffix("$") + r"\Z"
        options.extend([st.from_regex(pattern, fullmatch=True)] * 2)
    if "date" in field.name or field.name.endswith("_on") or field.name.endswith("_from"):
        options.append(_dates(today))
        options.append(_dates(today))
    if plausible and not options:
        options.append(st.text(min_size=1, max_size=24))
    common = st.one_of(options)
    if plausible:
        return common

    @st.composite
    def value(draw: st.DrawFn) -> str:
        # About one string in forty is huge, one in 160 a megabyte.
        if draw(st.integers(0, 39)) == 0:
            return draw(_huge())
        return draw(common)

    return value()


def _scalar(
    field: FieldDescriptor, pool: Pool, today: dt.date, depth: int, plausible: bool
) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string(field, pool, today, plausible)
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if plausible:
            return st.integers(*_bounds(field, max(low, -1), 5_000))
        return st.one_of(st.integers(max(low, -5), 10_000), st.integers(low, high))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [v.number for v in field.enum_type.values]
        if plausible:
            return st.sampled_from([n for n in defined if n != 0] or defined)
        return st.one_of(st.sampled_from(defined), st.integers(-(2**31), 2**31 - 1))
    if kind == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return built_messages(field.message_type, pool, today, depth + 1, plausible=plausible)
    raise ValueError(f"no strategy for field type {kind} ({field.full_name})")


def _field(
    field: FieldDescriptor, pool: Pool, today: dt.date, depth: int, plausible: bool
) -> st.SearchStrategy[Any]:
    one = _scalar(field, pool, today, depth, plausible)
    if field.is_repeated:
        return st.lists(one, max_size=MAX_ITEMS)
    return one


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def _unknown_field(draw: st.DrawFn) -> bytes:
    """A length-delimited field of a number no message here has: decoded and
    kept as an unknown field, and as large as a client likes."""
    number = draw(st.integers(1000, 2**29 - 1))
    size = draw(st.sampled_from([0, 10, 1000, 10, 1000, 1_100_000]))
    return _varint(number << 3 | 2) + _varint(size) + b"u" * size


UNKNOWN = "(unknown field)"


def _assemble(descriptor: Descriptor, values: dict[str, Any]) -> _Built:
    message = message_factory.GetMessageClass(descriptor)()
    long_strings: list[str] = []
    unknown = values.pop(UNKNOWN, b"")
    if unknown:
        message.MergeFromString(unknown)
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        items = value if field.is_repeated else [value]
        for item in items:
            if isinstance(item, _Built):
                long_strings.extend(item.long_strings)
            elif isinstance(item, str) and len(item) > 100:
                long_strings.append(item)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                getattr(message, name).extend([item.message for item in items])
            else:
                getattr(message, name).CopyFrom(value.message)
        elif field.is_repeated:
            getattr(message, name).extend(items)
        else:
            setattr(message, name, value)
    return _Built(message, tuple(long_strings))


def built_messages(
    descriptor: Descriptor,
    pool: Pool,
    today: dt.date,
    depth: int = 0,
    *,
    plausible: bool = False,
) -> st.SearchStrategy[_Built]:
    """`plausible`: every field set, each value of the kind the contract asks
    for (a pattern's, a seeded one, a date), so that more requests pass the
    contract and reach the rules behind it."""
    if depth >= MAX_DEPTH:
        return st.just(_Built(message_factory.GetMessageClass(descriptor)(), ()))
    fields = {f.name: _field(f, pool, today, depth, plausible) for f in descriptor.fields}
    unknown = {UNKNOWN: _unknown_field()}
    if plausible:
        return st.fixed_dictionaries(fields, optional=unknown).map(
            lambda values: _assemble(descriptor, values)
        )
    return st.fixed_dictionaries({}, optional={**fields, **unknown}).map(
        lambda values: _assemble(descriptor, values)
    )


def messages(
    descriptor: Descriptor, pool: Pool | None = None, today: dt.date | None = None
) -> st.SearchStrategy[Message]:
    """Messages of this type with fields of every shape."""
    return built_messages(descriptor, pool or {}, today or dt.date.today()).map(lambda b: b.message)


@st.composite
def _one_request(
    draw: st.DrawFn, descriptor: Descriptor, pool: Pool, today: dt.date
) -> tuple[bytes, tuple[str, ...]]:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=256)), ()
    if kind == 1:
        return draw(st.sampled_from(MALFORMED)), ()
    plausible = kind >= 6
    built = draw(built_messages(descriptor, pool, today, plausible=plausible))
    encoded = built.message.SerializeToString()
    if kind == 2 and encoded:
        # A valid encoding cut short (usually not decodable any more).
        return encoded[: draw(st.integers(0, len(encoded) - 1))], ()
    if kind == 3 and encoded:
        # One byte overwritten.
        at = draw(st.integers(0, len(encoded) - 1))
        byte = draw(st.integers(0, 255))
        return encoded[:at] + bytes([byte]) + encoded[at + 1 :], built.long_strings
    return encoded, built.long_strings


def inputs(
    rpc: Rpc, pool: Pool | None = None, today: dt.date | None = None
) -> st.SearchStrategy[Input]:
    """What one call of this RPC sends."""
    one = _one_request(rpc.request, pool or {}, today or dt.date.today())
    if rpc.client_streaming:
        return st.lists(one, max_size=4).map(
            lambda requests: Input(
                tuple(r[0] for r in requests), tuple(s for r in requests for s in r[1])
            )
        )
    return one.map(lambda request: Input(request[0], request[1]))

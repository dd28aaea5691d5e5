"""proto/asyncapi.yaml, the Kafka event contract, checked against the code.

- It is a valid AsyncAPI 3.0.0 document: the official JSON schema (vendored
  from the npm package @asyncapi/specs, tests/schemas/README.md), plus what
  the schema cannot see: every local `$ref` resolves, and an operation's
  messages are messages of its own channel.
- Its channels are the topics of gateway.events.Topics, both ways, under any
  prefix; the prefix's default and the partition count are the gateway's.
- Its messages are the event types of gateway.events.EVENT_TYPES, each with
  its protobuf message; the CloudEvents headers it lists are the ones
  gateway.events.encode writes, with the values it writes.
- What the saga's operations receive is what the saga handles
  (gateway.worker.TRANSITIONS); the executor's receive step commands only;
  each receiving operation names the consumer group the gateway runs for its
  topic (Topics.consumer_groups).

`test_the_checks_bite` breaks a copy of the document in memory, once per
check, and shows each check fails.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config import GatewayConfig
from gateway.events import EVENT_TYPES, Event, Topics, encode
from gateway.worker import TRANSITIONS
from lienthong.events.v1 import events_pb2 as ev

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "proto" / "asyncapi.yaml"
SCHEMA = ROOT / "tests" / "schemas" / "asyncapi-3.0.0.json"

Doc = dict[str, Any]


def _load() -> Doc:
    loaded: Doc = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def _pointer(doc: Doc, ref: str) -> Any:
    """The node a local reference (`#/a/b`) points at; KeyError if none."""
    assert ref.startswith("#/"), f"only local references are used here, not {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolved(doc: Doc, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(doc, node["$ref"])
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """An error under a oneOf (a Reference or an Operation...) says only "not
    valid under any of the given schemas": the cause worth reading is the
    one deepest in the document."""
    leaves = [error]
    while any(e.context for e in leaves):
        leaves = [c for e in leaves for c in (e.context or [e])]
    return max(leaves, key=lambda e: len(e.absolute_path))


# --- the checks, each raising AssertionError -----------------------------------


def check_valid_asyncapi(doc: Doc) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "not valid AsyncAPI 3.0.0:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
        for e in map(_deepest, errors[:10])
    )
    assert doc["asyncapi"] == "3.0.0"


def check_references_resolve(doc: Doc) -> None:
    dangling = []
    for ref in _refs(doc):
        try:
            _pointer(doc, ref)
        except (KeyError, TypeError):
            dangling.append(ref)
    assert not dangling, f"references to nothing: {dangling}"
    # "It MUST contain a subset of the messages defined in the channel
    # referenced in this operation" (AsyncAPI 3.0.0, Operation Object).
    for name, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation.get("messages", []):
            assert message["$ref"].startswith(channel + "/messages/"), (
                f"operation {name} on {channel} lists {message['$ref']}"
            )


def _addresses(doc: Doc, prefix: str) -> set[str]:
    found = set()
    for name, channel in doc["channels"].items():
        address = channel["address"].replace("{prefix}", prefix)
        assert "{" not in address, f"channel {name}: a parameter other than prefix in {address}"
        found.add(address)
    return found


def check_topics(doc: Doc) -> None:
    for prefix in ("lienthong", "staging-7"):
        described, defined = _addresses(doc, prefix), set(Topics.with_prefix(prefix).all())
        assert described == defined, (
            f"topics the code defines and the document lacks: {sorted(defined - described)}; "
            f"channels the code does not define: {sorted(described - defined)}"
        )


def check_gateway_defaults(doc: Doc, defaults: GatewayConfig) -> None:
    assert doc["components"]["parameters"]["prefix"]["default"] == defaults.topic_prefix
    for name, channel in doc["channels"].items():
        kafka = _resolved(doc, channel["bindings"])["kafka"]
        assert kafka["partitions"] == defaults.partitions, f"channel {name}"


def _event_messages(doc: Doc) -> dict[str, tuple[str, dict[str, Any]]]:
    """ce_type → (name, message) of every message with a fixed ce_type."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, message in doc["components"]["messages"].items():
        for part in message["headers"].get("allOf", []):
            ce_type = part.get("properties", {}).get("ce_type", {}).get("const")
            if ce_type is not None:
                assert ce_type not in found, f"{ce_type} described twice"
                found[ce_type] = (name, message)
    return found


def check_event_types(doc: Doc) -> None:
    described = {
        t: m["payload"]["x-protobuf-message"] for t, (_, m) in _event_messages(doc).items()
    }
    defined = {t: cls.DESCRIPTOR.full_name for t, cls in EVENT_TYPES.items()}
    assert described == defined, (
        f"event types the code maps and the document lacks or types differently: "
        f"{sorted(set(defined.items()) - set(described.items()))}; "
        f"described and not mapped so: {sorted(set(described.items()) - set(defined.items()))}"
    )


def _header_schema(doc: Doc, message: dict[str, Any]) -> tuple[set[str], dict[str, str]]:
    """The headers a message requires and the fixed values it gives them."""
    required: set[str] = set()
    fixed: dict[str, str] = {}
    for part in message["headers"]["allOf"]:
        schema = _resolved(doc, part)
        required.update(schema.get("required", []))
        for header, rule in schema.get("properties", {}).items():
            if "const" in rule:
                fixed[header] = rule["const"]
    return required, fixed


def check_headers(doc: Doc) -> None:
    messages = _event_messages(doc)
    for ce_type, cls in EVENT_TYPES.items():
        name, message = messages[ce_type]
        key, _, headers = encode(
            Event("birth-0/x", "birth-0", cls(), dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
        )
        written = {header: value.decode() for header, value in headers}
        required, fixed = _header_schema(doc, message)
        assert required == set(written), f"{name}: the document requires {sorted(required)}"
        for header, value in fixed.items():
            assert written[header] == value, f"{name}: {header} is {written[header]!r}"
        assert message["contentType"] == written["content-type"], name
        # The key and ce_subject are the dossier id, as the document says.
        assert key.decode() == written["ce_subject"] == "birth-0"


def _received_by(doc: Doc, wanted: Callable[[str, dict[str, Any]], bool]) -> set[type[Any]]:
    types = set()
    for name, operation in doc["operations"].items():
        if operation["action"] == "receive" and wanted(name, operation):
            for ref in operation["messages"]:
                message = _resolved(doc, _pointer(doc, ref["$ref"]))
                types.add(EVENT_TYPES[_ce_type(message)])
    return types


def _ce_type(message: dict[str, Any]) -> str:
    for part in message["headers"]["allOf"]:
        if "ce_type" in part.get("properties", {}):
            return str(part["properties"]["ce_type"]["const"])
    raise AssertionError(f"{message['name']} has no ce_type")


def _group(doc: Doc, operation: dict[str, Any]) -> str:
    bindings = _resolved(doc, operation.get("bindings", {}))
    return str(bindings.get("kafka", {}).get("groupId", {}).get("const", ""))


def check_consumers(doc: Doc) -> None:
    saga = _received_by(doc, lambda _, op: _group(doc, op) == "lienthong-saga")
    assert saga == set(TRANSITIONS), "what the saga's operations receive is not what it handles"
    steps = _received_by(doc, lambda _, op: _group(doc, op).startswith("lienthong-steps"))
    assert steps == {ev.StepCommand}


def check_groups(doc: Doc) -> None:
    described: dict[str, set[str]] = {}
    for name, operation in doc["operations"].items():
        if operation["action"] != "receive":
            continue
        group = _group(doc, operation)
        assert group, f"operation {name} receives without a consumer group"
        topic = _pointer(doc, operation["channel"]["$ref"])["address"]
        described.setdefault(group, set()).add(topic.replace("{prefix}", "lienthong"))
    defined = {
        group: set(topics)
        for group, topics in Topics.with_prefix("lienthong").consumer_groups().items()
    }
    assert described == defined, (
        f"groups → topics the code runs: {sorted(defined.items())}; "
        f"the document says: {sorted(described.items())}"
    )


CHECKS: dict[str, Callable[[Doc], None]] = {
    "valid AsyncAPI 3.0.0": check_valid_asyncapi,
    "references resolve": check_references_resolve,
    "topics": check_topics,
    "event types": check_event_types,
    "headers": check_headers,
    "consumers": check_consumers,
    "consumer groups": check_groups,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_document_agrees_with_the_code(check: str) -> None:
    CHECKS[check](_load())


def test_the_prefix_and_partitions_are_the_gateways_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIENTHONG_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("LIENTHONG_KAFKA_PARTITIONS", raising=False)
    check_gateway_defaults(_load(), GatewayConfig.from_env())


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def breaking(doc: Doc) -> None:
        *parents, last = path.split("/")
        node = doc
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return breaking


def _several(*changes: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def breaking(doc: Doc) -> None:
        for change in changes:
            change(doc)

    return breaking


# (the check that must catch it, what it says, the change to a copy of the document)
BREAKAGES: dict[str, tuple[str, str, Callable[[Doc], None]]] = {
    "an AsyncAPI 2 word": (
        "valid AsyncAPI 3.0.0",
        "at operations/announceDossier/action",
        _set("operations/announceDossier/action", "publish"),
    ),
    "a reference to nothing": (
        "references resolve",
        "references to nothing: ['#/components/messages/DossierWithdrawn']",
        _set(
            "channels/dossiers/messages/DossierWithdrawn",
            {"$ref": "#/components/messages/DossierWithdrawn"},
        ),
    ),
    "an operation receiving another channel's message": (
        "references resolve",
        "operation applyStepOutcome on #/channels/stepOutcomes lists",
        _set(
            "operations/applyStepOutcome/messages",
            [{"$ref": "#/channels/dossiers/messages/DossierSubmitted"}],
        ),
    ),
    "a lane left out": (
        "topics",
        "the document lacks: ['lienthong.step-commands.population']",
        _several(
            _set("channels/stepCommandsPopulation", None),
            _set("operations/sendPopulationStep", None),
            _set("operations/runPopulationStep", None),
        ),
    ),
    "a topic the code does not have": (
        "topics",
        "channels the code does not define: ['lienthong.dossier-withdrawn']",
        _set(
            "channels/dossierWithdrawn",
            {"address": "{prefix}.dossier-withdrawn", "messages": {}},
        ),
    ),
    "a wrong protobuf type": (
        "event types",
        "lienthong.events.v1.StepCommand",
        _set(
            "components/messages/StepOutcome/payload/x-protobuf-message",
            "lienthong.events.v1.StepCommand",
        ),
    ),
    "an event type left out": (
        "event types",
        "vn.lienthong.dossier.settled.v1",
        _set("components/messages/DossierSettled/headers", {"allOf": []}),
    ),
    "a wrong ce_source": (
        "headers",
        "ce_source is '/lienthong/gateway'",
        _set(
            "components/schemas/CloudEventsHeaders/properties/ce_source/const", "/lienthong/portal"
        ),
    ),
    "a header the gateway does not write": (
        "headers",
        "the document requires",
        _set(
            "components/schemas/CloudEventsHeaders/required",
            [
                "ce_id",
                "ce_type",
                "ce_source",
                "ce_time",
                "ce_specversion",
                "ce_subject",
                "content-type",
                "ce_dataschema",
            ],
        ),
    ),
    "the saga's outcomes given to another group": (
        "consumers",
        "what the saga's operations receive is not what it handles",
        _set(
            "operations/applyStepOutcome/bindings",
            {"kafka": {"groupId": {"type": "string", "const": "lienthong-steps"}}},
        ),
    ),
    "a lane read by a group of another name": (
        "consumer groups",
        "groups → topics the code runs",
        _set(
            "operations/runHealthStep/bindings",
            {"kafka": {"groupId": {"type": "string", "const": "lienthong-hospital"}}},
        ),
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_checks_bite(breakage: str) -> None:
    check, says, change = BREAKAGES[breakage]
    broken = copy.deepcopy(_load())
    change(broken)
    with pytest.raises(AssertionError) as caught:
        CHECKS[check](broken)
    assert says in str(caught.value)

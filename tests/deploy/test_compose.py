"""docker-compose.yml, Dockerfile and .dockerignore, checked against the code
without a Docker engine.

- The compose file is valid against the Compose Specification's JSON schema
  (vendored: see README.md here).
- Every container of ours runs a real entry point (`python -m X`, X importable
  with a __main__), its own one, and its health check is our probe with
  arguments the probe accepts, asking its own port and gRPC service.
- Every LIENTHONG_*/KAFKA_* variable set on a container of ours is read by
  that process's configuration code (recorded while the code reads them),
  and the configuration it yields (host, port, the agencies' and Kafka's
  addresses) is what compose means: the ports of common/config.py, published
  on the host; the gateway started only once Kafka and the three registries
  are healthy.
- PostgreSQL: the official postgres:15 image, its data on a named volume, a
  pg_isready health check over TCP; every container of ours names, in its
  *_DB URL, the postgres service, its user and password, and its own kind's
  database, one that the init script (deploy/) creates; and starts only once
  postgres is healthy.
- Every container of ours serves its Prometheus metrics (common/metrics.py)
  on its default metrics port (common/config.py), on all its interfaces,
  published on the host's 127.0.0.1 on the same port.
- Kafka: the image of the pinned Kafka version, consistent listeners, the
  single-node settings of brokers/apache.py.
- The Dockerfile: multi-stage, installs exactly uv.lock (frozen, no dev tools)
  with the Makefile's uv, copies every package the wheel ships, runs as a user
  who is not root and can write the volumes; .dockerignore leaves out the
  local environments and data but nothing the build copies.

Each check is a function that raises AssertionError; `test_each_check_catches_*`
break the files on purpose (in memory) to show that each one bites.
With a `docker` CLI on PATH, `docker compose config -q` runs too.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from brokers.apache import SINGLE_NODE_SETTINGS
from brokers.kafka_jars import kafka_version
from common import healthcheck
from common.channels import INSECURE, TlsMisconfigured, TlsSettings
from common.clock import clock_from_env
from common.config import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, RegistryConfig
from common.database_url import is_postgres
from common.injected_latency import InjectedLatency
from common.metrics import MetricsSettings
from common.provinces import provinces
from gateway.config import GatewayConfig
from gateway.working_days import holidays
from services.health import config as health_config
from services.insurance import base_salary
from services.insurance import config as insurance_config
from services.population import config as population_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
# The vendored schema, unchanged (README.md here says where it comes from).
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

REGISTRIES = ("population", "insurance", "health")
OURS = (*REGISTRIES, "gateway")
ENTRY_POINTS = {
    "population": "services.population",
    "insurance": "services.insurance",
    "health": "services.health",
    "gateway": "gateway",
}
HEALTH_PROBE = "common.healthcheck"
# The one-shot service that creates the CA and identities, its module and volume.
PKI_SERVICE = "pki"
PKI_MODULE = "common.pki"
KAFKA_HEALTH_TOOL = "/opt/kafka/bin/kafka-broker-api-versions.sh"
POSTGRES_SERVICE = "postgres"
# The major version the tests run (databases/postgres.py on Debian's 15).
POSTGRES_IMAGE = "postgres:15"
POSTGRES_PORT = 5432
# The official image's defaults and its init-script folder (its documentation).
POSTGRES_DEFAULT_DATA = "/var/lib/postgresql/data"
POSTGRES_INIT_DIR = "/docker-entrypoint-initdb.d"
# The setting naming each process's store (common/database_url.py).
DATABASE_VARIABLES = {
    "population": "LIENTHONG_POPULATION_DB",
    "insurance": "LIENTHONG_INSURANCE_DB",
    "health": "LIENTHONG_HEALTH_DB",
    "gateway": "LIENTHONG_GATEWAY_DB",
}
# Compose's default when a service sets no stop_grace_period.
DEFAULT_STOP_GRACE = "10s"
# What each process reads from its environment: its configuration, the data
# tables it loads (functools.cache bypassed), and what every server of ours
# reads: the shared clock, the latency a load test may inject (common/rpc.py),
# where its metrics are served (common/metrics.py) and its identity
# (common/channels.py).
COMMON_READERS: tuple[Callable[[], object], ...] = (
    clock_from_env,
    InjectedLatency.from_env,
    MetricsSettings.from_env,
    TlsSettings.from_env,
)
READERS: dict[str, tuple[Callable[[], object], ...]] = {
    "population": (population_config.load_config, *COMMON_READERS, provinces.__wrapped__),
    "insurance": (
        insurance_config.load_config,
        base_salary.table_path,
        *COMMON_READERS,
        provinces.__wrapped__,
    ),
    "health": (health_config.load_config, *COMMON_READERS, provinces.__wrapped__),
    "gateway": (GatewayConfig.from_env, *COMMON_READERS, holidays.__wrapped__),
}
OUR_PREFIXES = ("LIENTHONG_", "KAFKA_")
# Files in our packages that the image needs (code, stubs, data tables, examples).
PACKAGE_FILE_SUFFIXES = {".py", ".pyi", ".csv", ".json", ".yaml", ".yml", ".xml", ".md", ".typed"}

Compose = dict[str, Any]


# ---- reading the files ---------------------------------------------------------


def load_compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return loaded


def service(compose: Compose, name: str) -> dict[str, Any]:
    services = compose.get("services") or {}
    assert name in services, f"docker-compose.yml has no service {name!r}"
    found = services[name]
    assert isinstance(found, dict), f"service {name!r} is not a mapping"
    return found


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment (mapping or KEY=VALUE list) as strings."""
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        return {k: v for k, _, v in (str(item).partition("=") for item in raw)}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    published: int | None
    target: int


def published_ports(spec: dict[str, Any]) -> list[PublishedPort]:
    ports: list[PublishedPort] = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            ports.append(
                PublishedPort(
                    str(entry.get("host_ip", "")),
                    int(published) if published is not None else None,
                    int(entry["target"]),
                )
            )
            continue
        text = str(entry).removesuffix("/tcp")
        assert "/" not in text, f"only TCP ports are expected, got {entry!r}"
        parts = text.split(":")
        if len(parts) == 1:
            ports.append(PublishedPort("", None, int(parts[0])))
        elif len(parts) == 2:
            ports.append(PublishedPort("", int(parts[0]), int(parts[1])))
        else:
            ports.append(PublishedPort(":".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    return ports


def named_volume_mounts(compose: Compose, spec: dict[str, Any]) -> dict[str, str]:
    """Mount target → named volume, for the service's named volumes only."""
    declared = compose.get("volumes") or {}
    mounts: dict[str, str] = {}
    for entry in spec.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
        else:
            source, _, rest = str(entry).partition(":")
            target = rest.split(":")[0]
        if source in declared:
            mounts[target] = source
    return mounts


def bind_mounts(spec: dict[str, Any]) -> dict[str, str]:
    """Mount target → host path, for the service's bind mounts (./relative) only."""
    mounts: dict[str, str] = {}
    for entry in spec.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                mounts[entry["target"]] = entry["source"]
            continue
        source, _, rest = str(entry).partition(":")
        if source.startswith(("./", "../", "/")):
            mounts[rest.split(":")[0]] = source
    return mounts


def seconds(duration: str | int | float) -> float:
    """A compose duration ("1m30s", "500ms", "10s") in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = str(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, equals, value = token.partition("=")
                assert equals, f"ENV {args!r}: use the KEY=VALUE form"
                values[key] = value
        return values

    def shell_commands(self) -> list[list[str]]:
        """Each RUN split into its simple commands (at &&, ||, ;)."""
        commands: list[list[str]] = []
        for args in self.all("RUN"):
            current: list[str] = []
            for token in shlex.split(args):
                if token in ("&&", "||", ";"):
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            commands.append(current)
        return [c for c in commands if c]


def parse_dockerfile(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Global instructions (ARG before the first FROM) and the stages."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # Docker drops comment lines, also inside a continuation.
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((pending + line).strip())
        pending = ""
    assert not pending.strip(), "the Dockerfile ends in a line continuation"
    preamble: list[Instruction] = []
    stages: list[tuple[str, str | None, list[Instruction]]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append((words[0], name, []))
        elif stages:
            stages[-1][2].append(instruction)
        else:
            preamble.append(instruction)
    return preamble, [Stage(image, name, tuple(body)) for image, name, body in stages]


def stage_arg(stage: Stage, name: str) -> str | None:
    for args in stage.all("ARG"):
        key, equals, value = args.partition("=")
        if key.strip() == name and equals:
            return value.strip().strip('"')
    return None


def dockerignore_patterns(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over /-separated paths:
    `*` and `?` stay within one path element, `**` crosses any number of them."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` (relative, /-separated) is left out of the build context.

    Enough of Docker's rules for this file: patterns match from the root, a
    pattern that matches a folder leaves out everything in it, the last
    matching pattern wins and `!` re-includes."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _pattern_regex(raw.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


class RecordingEnviron(MutableMapping[str, str]):
    """os.environ for the length of a check: the values given, and the names read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@contextlib.contextmanager
def process_environment(values: Mapping[str, str]) -> Iterator[RecordingEnviron]:
    recording = RecordingEnviron(values)
    saved = os.environ
    setattr(os, "environ", recording)  # noqa: B010  (os.environ's declared type is _Environ)
    try:
        yield recording
    finally:
        setattr(os, "environ", saved)  # noqa: B010


def container_environment(compose: Compose, dockerfile: str, name: str) -> dict[str, str]:
    """What a container of ours sees: the image's LIENTHONG_/KAFKA_ ENV, then compose's."""
    _, stages = parse_dockerfile(dockerfile)
    image = {k: v for k, v in stages[-1].env().items() if k.startswith(OUR_PREFIXES)}
    return {**image, **environment(service(compose, name))}


def read_configuration(name: str, env: Mapping[str, str]) -> tuple[object, set[str]]:
    """The process's configuration under `env`, and every variable name it read."""
    with process_environment(env) as recording:
        results = [reader() for reader in READERS[name]]
    return results[0], recording.read


def assert_only_known_variables(name: str, env: Mapping[str, str], read: set[str]) -> None:
    unknown = sorted(k for k in env if k.startswith(OUR_PREFIXES) and k not in read)
    assert not unknown, f"{name}: set but never read by its configuration: {unknown}"


def registry_config(name: str, env: Mapping[str, str]) -> tuple[RegistryConfig, set[str]]:
    loaded, read = read_configuration(name, env)
    config = loaded.registry if isinstance(loaded, population_config.PopulationConfig) else loaded
    assert isinstance(config, RegistryConfig)
    return config, read


def service_port(compose: Compose, dockerfile: str, name: str) -> int:
    """The port a registry or the gateway listens on, as its configuration reads it."""
    env = container_environment(compose, dockerfile, name)
    if name == "gateway":
        gateway, _ = read_configuration(name, env)
        assert isinstance(gateway, GatewayConfig)
        return gateway.port
    return registry_config(name, env)[0].port


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    listeners: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        listener, _, address = item.strip().partition("://")
        listeners[listener] = split_address(address)
    return listeners


def module_with_main(module: str) -> bool:
    """`python -m module` runs something: a module, or a package with a __main__."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations is None:
        return True
    return importlib.util.find_spec(module + ".__main__") is not None


def python_module(argv: list[str], what: str) -> str:
    """X of a `python -m X ...` command; fails unless it runs a module of ours."""
    assert argv[:2] == ["python", "-m"] and len(argv) >= 3, f"{what}: not `python -m X`: {argv}"
    assert module_with_main(argv[2]), f"{what}: `python -m {argv[2]}` has nothing to run"
    return argv[2]


# ---- the checks ------------------------------------------------------------------


def check_schema(compose: Compose) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "not a valid compose file:\n" + "\n".join(
        f"  {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )


def check_services(compose: Compose) -> None:
    assert set(compose.get("services") or {}) == {"kafka", POSTGRES_SERVICE, PKI_SERVICE, *OURS}
    images = {service(compose, name).get("image") for name in (*OURS, PKI_SERVICE)}
    assert len(images) == 1, f"one image for all our services, got {images}"
    for name in OURS:
        build = service(compose, name).get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name}: built from the repository root, got {build!r}"


def check_commands(compose: Compose) -> None:
    for name in OURS:
        command = service(compose, name).get("command")
        assert isinstance(command, list), f"{name}: command in exec form (a list)"
        module = python_module(command, f"{name}'s command")
        assert module == ENTRY_POINTS[name], f"{name} runs {module}, not {ENTRY_POINTS[name]}"


def check_healthchecks(compose: Compose, dockerfile: str) -> None:
    for name in OURS:
        spec = service(compose, name)
        test = (spec.get("healthcheck") or {}).get("test")
        assert isinstance(test, list) and test[:1] == ["CMD"], f"{name}: no CMD health check"
        module = python_module(test[1:], f"{name}'s health check")
        assert module == HEALTH_PROBE, f"{name}'s health check runs {module}"
        try:
            args = healthcheck.build_parser().parse_args(test[4:])
        except SystemExit:
            raise AssertionError(f"{name}: the probe refuses its arguments {test[4:]}") from None
        host, port = split_address(args.address)
        assert host in ("127.0.0.1", "localhost"), f"{name}: probe its own container, not {host}"
        assert port == service_port(compose, dockerfile, name), f"{name}: probes port {port}"
        app = importlib.import_module(f"{ENTRY_POINTS[name]}.app")
        assert args.service == app.SERVICE_NAME, f"{name}: probes {args.service!r}"
        timeout = seconds(spec["healthcheck"].get("timeout", "30s"))
        assert timeout >= args.timeout + 1, f"{name}: the probe needs more than {timeout} s"

    kafka = service(compose, "kafka")
    test = (kafka.get("healthcheck") or {}).get("test")
    assert isinstance(test, list) and test[:2] == ["CMD", KAFKA_HEALTH_TOOL], "kafka: health"
    assert test[2] == "--bootstrap-server", "kafka: health check without --bootstrap-server"
    host, port = split_address(test[3])
    listeners = kafka_listeners(environment(kafka)["KAFKA_LISTENERS"])
    assert host == "localhost" and port in {p for _, p in listeners.values()}, (
        f"kafka's health check asks {test[3]}, where no listener is"
    )


def check_registry(compose: Compose, dockerfile: str, name: str) -> None:
    spec = service(compose, name)
    env = container_environment(compose, dockerfile, name)
    config, read = registry_config(name, env)
    assert_only_known_variables(name, env, read)
    assert config.host == "0.0.0.0", f"{name} listens on {config.host}: unreachable from outside"
    assert config.port == DEFAULT_PORTS[name], f"{name} listens on {config.port}"
    assert PublishedPort("127.0.0.1", config.port, config.port) in published_ports(spec), (
        f"{name}: port {config.port} is not published on the host's 127.0.0.1:{config.port}"
    )
    check_database(compose, dockerfile, name)
    grace = seconds(spec.get("stop_grace_period", DEFAULT_STOP_GRACE))
    assert grace > config.grace_seconds, f"{name}: killed before its {config.grace_seconds} s grace"


def check_gateway(compose: Compose, dockerfile: str) -> None:
    spec = service(compose, "gateway")
    env = container_environment(compose, dockerfile, "gateway")
    config, read = read_configuration("gateway", env)
    assert isinstance(config, GatewayConfig)
    assert_only_known_variables("gateway", env, read)
    assert config.host == "0.0.0.0", f"the gateway listens on {config.host}"
    assert config.port == DEFAULT_PORTS["gateway"], f"the gateway listens on {config.port}"
    assert PublishedPort("127.0.0.1", config.port, config.port) in published_ports(spec)
    check_database(compose, dockerfile, "gateway")
    assert sorted(config.agency_addresses) == ["health", "insurance", "population"]
    for name, address in config.agency_addresses.items():
        expected = f"{name}:{service_port(compose, dockerfile, name)}"
        assert address == expected, f"the gateway calls {name} at {address}, not {expected}"
    advertised = kafka_listeners(
        environment(service(compose, "kafka"))["KAFKA_ADVERTISED_LISTENERS"]
    )
    internal = {f"{host}:{port}" for host, port in advertised.values() if host == "kafka"}
    bootstrap = set(config.bootstrap_servers.split(","))
    assert bootstrap and bootstrap <= internal, (
        f"the gateway's Kafka {config.bootstrap_servers} is not what kafka advertises "
        f"to the containers ({sorted(internal)})"
    )
    depends = spec.get("depends_on")
    assert isinstance(depends, dict), "the gateway's depends_on needs conditions"
    assert set(depends) == {"kafka", POSTGRES_SERVICE, *REGISTRIES}, (
        f"the gateway waits for {sorted(depends)}"
    )
    for name, condition in depends.items():
        assert (condition or {}).get("condition") == "service_healthy", (
            f"the gateway starts before {name} is healthy"
        )


def metrics_settings(compose: Compose, dockerfile: str, name: str) -> MetricsSettings:
    """Where a container of ours serves its metrics, as common/metrics.py reads it."""
    env = container_environment(compose, dockerfile, name)
    with process_environment(env):
        return MetricsSettings.from_env()


def check_metrics(compose: Compose, dockerfile: str) -> None:
    """Each container serves its Prometheus metrics on its default metrics
    port (common/config.py), reachable from outside it, published on the
    host's 127.0.0.1 on the same port, and on no port its gRPC uses."""
    for name in OURS:
        settings = metrics_settings(compose, dockerfile, name)
        assert settings.port is not None, f"{name} serves no metrics (LIENTHONG_METRICS_PORT)"
        assert settings.port == DEFAULT_METRICS_PORTS[name], (
            f"{name} serves its metrics on {settings.port}, not {DEFAULT_METRICS_PORTS[name]}"
        )
        assert settings.host == "0.0.0.0", f"{name}'s metrics on {settings.host}: unreachable"
        assert settings.port != service_port(compose, dockerfile, name), f"{name}: one port"
        published = published_ports(service(compose, name))
        assert PublishedPort("127.0.0.1", settings.port, settings.port) in published, (
            f"{name}: metrics port {settings.port} is not published on the host's "
            f"127.0.0.1:{settings.port}"
        )


def check_volumes(compose: Compose, dockerfile: str) -> None:
    declared = set(compose.get("volumes") or {})
    owners: dict[str, str] = {}
    # The identities' volume is the one that is shared (read-only: check_trust).
    shared = set(named_volume_mounts(compose, service(compose, PKI_SERVICE)).values())
    for name, spec in (compose.get("services") or {}).items():
        mounts = named_volume_mounts(compose, spec)
        assert mounts, f"{name} keeps its data on no named volume"
        for volume in set(mounts.values()) - (shared if name != PKI_SERVICE else set()):
            assert volume not in owners, f"{owners[volume]} and {name} share the volume {volume}"
            owners[volume] = name
    assert set(owners) == declared, f"declared but unused volumes: {declared - set(owners)}"

    kafka = service(compose, "kafka")
    log_dirs = environment(kafka)["KAFKA_LOG_DIRS"]
    assert log_dirs in named_volume_mounts(compose, kafka), f"Kafka's {log_dirs} is not a volume"
    postgres = service(compose, POSTGRES_SERVICE)
    pgdata = environment(postgres).get("PGDATA", POSTGRES_DEFAULT_DATA)
    assert pgdata in named_volume_mounts(compose, postgres), f"PostgreSQL's {pgdata} is no volume"

    # A fresh named volume takes the owner of the image's folder it is mounted
    # on: the image must create each mount point and give it to its user.
    _, stages = parse_dockerfile(dockerfile)
    runtime = stages[-1]
    user = runtime.all("USER")[-1].split(":")[0]
    made = {p for c in runtime.shell_commands() if c[0] == "mkdir" for p in c[1:]}
    given = {
        p
        for c in runtime.shell_commands()
        if c[0] == "chown" and c[1].split(":")[0] == user
        for p in c[2:]
    }
    for name in OURS:
        for target in named_volume_mounts(compose, service(compose, name)):
            assert target in made, f"the image does not create {name}'s mount point {target}"
            assert target in given, f"{target} in the image does not belong to {user}"


def check_trust(compose: Compose, dockerfile: str) -> None:
    """Every server of ours has its own identity from the pki volume, created
    before it starts; none is told to run in plain text."""
    pki = service(compose, PKI_SERVICE)
    command = pki.get("command")
    assert isinstance(command, list), "pki: command in exec form (a list)"
    assert python_module(command, "pki's command") == PKI_MODULE
    pki_mounts = named_volume_mounts(compose, pki)
    assert len(pki_mounts) == 1, f"pki writes into one volume, not {pki_mounts}"
    [(pki_dir, volume)] = pki_mounts.items()
    assert command[3:4] == [pki_dir], f"pki creates {command[3:4]}, not its volume {pki_dir}"
    for name in OURS:
        spec = service(compose, name)
        env = container_environment(compose, dockerfile, name)
        assert INSECURE not in env, f"{name} is told to run in plain text"
        try:
            tls = TlsSettings.from_env(env)
        except TlsMisconfigured as exc:
            raise AssertionError(f"{name}: {exc}") from None
        assert tls is not None, f"{name} has no TLS settings: it would refuse to start"
        mounted = {target: v for target, v in named_volume_mounts(compose, spec).items()}
        where = [t for t, v in mounted.items() if v == volume]
        assert where, f"{name} does not mount the identities' volume {volume}"
        entries = [str(e) for e in spec.get("volumes") or [] if str(e).startswith(f"{volume}:")]
        assert all(e.endswith(":ro") for e in entries), f"{name} mounts {volume} writable"
        for path in (tls.ca, tls.cert, tls.key):
            assert any(path.is_relative_to(t) for t in where), f"{name}: {path} is not in {volume}"
        # The identity is the service's name: what its callers dial and verify.
        assert tls.cert.name == f"{name}.crt" and tls.key.name == f"{name}.key", (
            f"{name} serves the identity of {tls.cert.stem}"
        )
        assert tls.ca.name == "ca.crt", f"{name} trusts {tls.ca}"
        if name in REGISTRIES:
            depends = spec.get("depends_on") or {}
            assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
            assert (depends.get(PKI_SERVICE) or {}).get(
                "condition"
            ) == "service_completed_successfully", f"{name} may start before its identity exists"


def init_databases(compose: Compose) -> set[str]:
    """The databases the postgres image's init scripts (our files, bind-mounted) create."""
    created: set[str] = set()
    for target, source in bind_mounts(service(compose, POSTGRES_SERVICE)).items():
        if PurePosixPath(target).parent != PurePosixPath(POSTGRES_INIT_DIR):
            continue
        script = (ROOT / source).resolve()
        assert script.is_relative_to(ROOT), f"postgres runs {source}, outside the repository"
        assert script.is_file(), f"postgres runs {source}, which does not exist"
        assert target.endswith(".sql"), f"{target}: the image runs *.sql and *.sh only"
        text = re.sub(r"--[^\n]*", "", script.read_text(encoding="utf-8"))
        created |= set(re.findall(r"\bCREATE\s+DATABASE\s+(\w+)\s*;", text, re.IGNORECASE))
    return created


def option_value(argv: list[str], *names: str) -> str | None:
    """The word after the first of `names` in a command line."""
    return next((value for word, value in itertools.pairwise(argv) if word in names), None)


def check_postgres(compose: Compose) -> None:
    postgres = service(compose, POSTGRES_SERVICE)
    assert postgres.get("image") == POSTGRES_IMAGE, postgres.get("image")
    env = environment(postgres)
    assert env.get("POSTGRES_USER"), "postgres: no POSTGRES_USER (the image would use postgres)"
    assert env.get("POSTGRES_PASSWORD"), "postgres: no POSTGRES_PASSWORD (the image refuses)"
    test = (postgres.get("healthcheck") or {}).get("test")
    assert isinstance(test, list) and test[:2] == ["CMD", "pg_isready"], "postgres: health"
    # The image's init phase runs a server on the Unix socket only: a probe
    # over TCP is healthy only once the init scripts have run.
    host = option_value(test, "-h", "--host")
    assert host in ("127.0.0.1", "localhost"), f"postgres: pg_isready over TCP, not {host}"
    user = option_value(test, "-U", "--username")
    assert user == env["POSTGRES_USER"], f"postgres: pg_isready as {user}"
    assert init_databases(compose) >= set(DATABASE_VARIABLES), (
        f"the init script creates {sorted(init_databases(compose))}"
    )


def check_database(compose: Compose, dockerfile: str, name: str) -> None:
    """The process keeps its records in its own kind's database on the postgres
    service, and starts only once that is healthy."""
    variable = DATABASE_VARIABLES[name]
    value = container_environment(compose, dockerfile, name).get(variable, "")
    assert is_postgres(value), f"{name}: {variable}={value!r} is not a postgresql:// URL"
    url = urllib.parse.urlsplit(value)
    postgres_env = environment(service(compose, POSTGRES_SERVICE))
    assert url.hostname == POSTGRES_SERVICE, f"{name}'s database is on {url.hostname}"
    assert (url.port or POSTGRES_PORT) == POSTGRES_PORT, f"{name}: port {url.port}"
    assert url.username == postgres_env.get("POSTGRES_USER"), f"{name}: user {url.username}"
    assert url.password == postgres_env.get("POSTGRES_PASSWORD"), f"{name}: wrong password"
    database = url.path.removeprefix("/")
    assert database == name, f"{name} keeps its records in the database {database!r}"
    assert database in init_databases(compose), f"nothing creates the database {database!r}"
    depends = service(compose, name).get("depends_on") or {}
    assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
    assert (depends.get(POSTGRES_SERVICE) or {}).get("condition") == "service_healthy", (
        f"{name} may start before postgres is healthy"
    )


def check_kafka(compose: Compose) -> None:
    kafka = service(compose, "kafka")
    assert kafka.get("image") == f"apache/kafka:{kafka_version()}", kafka.get("image")
    env = environment(kafka)
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    advertised = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = {
        name: protocol
        for name, _, protocol in (
            p.partition(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
    }
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) == set(protocols), "every listener needs a security protocol"
    assert set(advertised) == set(listeners) - {controller}, "advertise every client listener"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"], "the one voter is this node"
    assert split_address(voter)[1] == listeners[controller][1], "the voter is the controller"
    published = published_ports(kafka)
    for name, (host, port) in advertised.items():
        assert port == listeners[name][1], f"{name} advertises {port}, listens on another"
        if host != "kafka":  # for the host's clients: published on the same port
            assert PublishedPort("127.0.0.1", port, port) in published, f"{name} not published"
    assert any(host == "kafka" for host, _ in advertised.values()), "no listener for containers"
    for key, value in SINGLE_NODE_SETTINGS.items():
        variable = "KAFKA_" + key.upper().replace(".", "_")
        assert env.get(variable) == value, f"{variable} should be {value} (brokers/apache.py)"


def check_dockerfile(dockerfile: str) -> None:
    preamble, stages = parse_dockerfile(dockerfile)
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    runtime = stages[-1]
    python = re.fullmatch(r"python:(\d+\.\d+)-slim", runtime.image)
    assert python, f"the runtime stage is {runtime.image}, not python:X.Y-slim"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requires = project["project"]["requires-python"]
    assert f">={python.group(1)}" in requires, f"{runtime.image} against {requires}"

    users = runtime.all("USER")
    assert users, "the runtime stage runs as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"USER {users[-1]}"
    env = runtime.env()
    assert env.get("PYTHONUNBUFFERED") == "1", "PYTHONUNBUFFERED=1, or logs arrive late"

    copied_from = {
        word.removeprefix("--from=")
        for args in runtime.all("COPY")
        for word in shlex.split(args)
        if word.startswith("--from=")
    }
    builders = [s for s in stages[:-1] if s.name in copied_from]
    assert builders, "the runtime stage copies nothing from a builder stage"
    builder = builders[0]
    assert builder.image == runtime.image, "the venv needs the same Python in both stages"
    syncs = [c for c in builder.shell_commands() if c[:2] == ["uv", "sync"]]
    assert syncs, "the builder installs nothing with uv sync"
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, f"{shlex.join(sync)}: not uv.lock as is"
    copied = [shlex.split(args) for args in builder.all("COPY")]
    assert any("uv.lock" in c[:-1] for c in copied), "uv.lock is not copied into the builder"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert pinned, "the Makefile pins no UV_VERSION"
    installs = [c for c in builder.shell_commands() if c[:2] == ["pip", "install"]]
    uv_pins = [t for c in installs for t in c if t.startswith("uv==")]
    assert uv_pins == ["uv==${UV_VERSION}"], f"uv installed as {uv_pins}"
    assert stage_arg(builder, "UV_VERSION") == pinned.group(1), "not the Makefile's uv"

    venv = builder.env().get("UV_PROJECT_ENVIRONMENT", "")
    assert venv, "the builder does not say where uv puts the venv"
    from_builder = [
        shlex.split(args) for args in runtime.all("COPY") if f"--from={builder.name}" in args
    ]
    assert [venv, venv] in [c[1:] for c in from_builder], f"the runtime lacks {venv}"
    assert env.get("PATH", "").startswith(f"{venv}/bin:"), "`python` must be the venv's"

    sources = {PurePosixPath(p) for c in copied for p in c[:-1] if not p.startswith("--")}
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in packages:
        path = PurePosixPath(package)
        assert any(path == s or s in path.parents for s in sources), f"{package} not copied"
    assert not preamble or all(i.keyword == "ARG" for i in preamble)


def check_dockerignore(dockerignore: str, dockerfile: str) -> None:
    patterns = dockerignore_patterns(dockerignore)
    for local in (
        ".git/HEAD",
        ".venv/bin/python",
        ".tools/bin/uv",
        "data/stack.json",
        "data/population.sqlite3",
        "out/report.html",
        "common/__pycache__/config.cpython-311.pyc",
        "services/population/test.sqlite3",
        ".mypy_cache/3.11/x.json",
    ):
        assert dockerignored(local, patterns), f".dockerignore lets {local} into the image build"
    _, stages = parse_dockerfile(dockerfile)
    needed = {
        p
        for stage in stages
        for args in stage.all("COPY")
        if "--from=" not in args
        for p in shlex.split(args)[:-1]
        if not p.startswith("--")
    }
    for path in sorted(needed):
        assert not dockerignored(path, patterns), f".dockerignore leaves out {path}"
        assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
        # What the packages ship besides code: data tables, examples, broker settings.
        for file in sorted((ROOT / path).rglob("*")):
            relative = file.relative_to(ROOT).as_posix()
            if file.suffix in PACKAGE_FILE_SUFFIXES and "__pycache__" not in file.parts:
                assert not dockerignored(relative, patterns), f".dockerignore leaves out {relative}"


# ---- the tests -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_vendored_schema_is_unchanged() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text("utf-8")))


def test_compose_file_follows_the_compose_spec(compose: Compose) -> None:
    check_schema(compose)


def test_services_and_image(compose: Compose) -> None:
    check_services(compose)


def test_every_command_is_an_entry_point_of_ours(compose: Compose) -> None:
    check_commands(compose)


def test_every_service_has_a_working_health_check(compose: Compose, dockerfile: str) -> None:
    check_healthchecks(compose, dockerfile)


@pytest.mark.parametrize("name", REGISTRIES)
def test_registry_configuration_is_what_compose_means(
    compose: Compose, dockerfile: str, name: str
) -> None:
    check_registry(compose, dockerfile, name)


def test_gateway_configuration_and_start_order(compose: Compose, dockerfile: str) -> None:
    check_gateway(compose, dockerfile)


def test_every_process_serves_its_metrics_on_a_published_port(
    compose: Compose, dockerfile: str
) -> None:
    check_metrics(compose, dockerfile)


def test_data_lives_on_named_volumes_the_user_can_write(compose: Compose, dockerfile: str) -> None:
    check_volumes(compose, dockerfile)


def test_every_server_has_its_identity_and_mutual_tls(compose: Compose, dockerfile: str) -> None:
    check_trust(compose, dockerfile)


def test_kafka_single_node_kraft(compose: Compose) -> None:
    check_kafka(compose)


def test_postgres_serves_every_kind_its_database(compose: Compose) -> None:
    check_postgres(compose)


def test_dockerfile(dockerfile: str) -> None:
    check_dockerfile(dockerfile)


def test_dockerignore(dockerfile: str) -> None:
    check_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"), dockerfile)


def test_the_recording_environment_sees_what_configuration_reads() -> None:
    with process_environment({"LIENTHONG_HEALTH_PORT": "1"}) as recording:
        config = health_config.load_config()
    assert config.port == 1
    assert {"LIENTHONG_HEALTH_PORT", "LIENTHONG_HEALTH_DB", "LIENTHONG_DATA_DIR"} <= recording.read
    assert not isinstance(os.environ, RecordingEnviron)


def test_docker_compose_config(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on PATH")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    result = subprocess.run(
        [docker, "compose", "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


# ---- each check bites ------------------------------------------------------------

DELETE = object()


@dataclass(frozen=True)
class ComposeBreak:
    path: tuple[str | int, ...]
    value: object


COMPOSE_BREAKS: dict[str, tuple[ComposeBreak, Callable[[Compose, str], None]]] = {
    "unknown service key": (
        ComposeBreak(("services", "health", "healthchek"), {}),
        lambda c, d: check_schema(c),
    ),
    "unknown depends_on condition": (
        ComposeBreak(("services", "gateway", "depends_on", "kafka", "condition"), "service_ready"),
        lambda c, d: check_schema(c),
    ),
    "a misspelt module": (
        ComposeBreak(("services", "population", "command", 2), "services.populaton"),
        lambda c, d: check_commands(c),
    ),
    "a package without __main__": (
        ComposeBreak(("services", "gateway", "command", 2), "common"),
        lambda c, d: check_commands(c),
    ),
    "another registry's entry point": (
        ComposeBreak(("services", "health", "command", 2), "services.insurance"),
        lambda c, d: check_commands(c),
    ),
    "a missing health check": (
        ComposeBreak(("services", "insurance", "healthcheck"), DELETE),
        check_healthchecks,
    ),
    "a health check on the wrong port": (
        ComposeBreak(("services", "insurance", "healthcheck", "test", 4), "127.0.0.1:50053"),
        check_healthchecks,
    ),
    "a health check for another service": (
        ComposeBreak(
            ("services", "gateway", "healthcheck", "test", 6),
            "lienthong.health.v1.HealthRegistryService",
        ),
        check_healthchecks,
    ),
    "a probe option it does not have": (
        ComposeBreak(("services", "health", "healthcheck", "test", 5), "--servce"),
        check_healthchecks,
    ),
    "a health check timeout shorter than the probe's": (
        ComposeBreak(("services", "health", "healthcheck", "timeout"), "2s"),
        check_healthchecks,
    ),
    "a kafka health check on a closed port": (
        ComposeBreak(("services", "kafka", "healthcheck", "test", 3), "localhost:9999"),
        check_healthchecks,
    ),
    "a misspelt variable": (
        ComposeBreak(("services", "population", "environment", "LIENTHONG_POPULATON_PORT"), "1"),
        lambda c, d: check_registry(c, d, "population"),
    ),
    "a registry on another port": (
        ComposeBreak(("services", "insurance", "environment", "LIENTHONG_INSURANCE_PORT"), "50062"),
        lambda c, d: check_registry(c, d, "insurance"),
    ),
    "a registry on loopback": (
        ComposeBreak(("services", "health", "environment", "LIENTHONG_HEALTH_HOST"), DELETE),
        lambda c, d: check_registry(c, d, "health"),
    ),
    "a registry on a SQLite file": (
        ComposeBreak(("services", "health", "environment", "LIENTHONG_HEALTH_DB"), "/data/h.db"),
        lambda c, d: check_registry(c, d, "health"),
    ),
    "a registry in another kind's database": (
        ComposeBreak(
            ("services", "insurance", "environment", "LIENTHONG_INSURANCE_DB"),
            "postgresql://lienthong:lienthong@postgres:5432/health",
        ),
        lambda c, d: check_registry(c, d, "insurance"),
    ),
    "a registry on the container's own loopback": (
        ComposeBreak(
            ("services", "population", "environment", "LIENTHONG_POPULATION_DB"),
            "postgresql://lienthong:lienthong@localhost:5432/population",
        ),
        lambda c, d: check_registry(c, d, "population"),
    ),
    "a registry with the wrong password": (
        ComposeBreak(
            ("services", "health", "environment", "LIENTHONG_HEALTH_DB"),
            "postgresql://lienthong:secret@postgres:5432/health",
        ),
        lambda c, d: check_registry(c, d, "health"),
    ),
    "a registry not waiting for postgres": (
        ComposeBreak(("services", "population", "depends_on", "postgres"), DELETE),
        lambda c, d: check_registry(c, d, "population"),
    ),
    "the gateway in another database": (
        ComposeBreak(
            ("services", "gateway", "environment", "LIENTHONG_GATEWAY_DB"),
            "postgresql://lienthong:lienthong@postgres:5432/sagas",
        ),
        check_gateway,
    ),
    "the gateway in a database nothing creates": (
        ComposeBreak(
            ("services", "postgres", "volumes", 1),
            "./deploy/README.md:/docker-entrypoint-initdb.d/init.sql:ro",
        ),
        check_gateway,
    ),
    "the gateway not waiting for postgres": (
        ComposeBreak(("services", "gateway", "depends_on", "postgres"), DELETE),
        check_gateway,
    ),
    "another PostgreSQL version": (
        ComposeBreak(("services", "postgres", "image"), "postgres:16"),
        lambda c, d: check_postgres(c),
    ),
    "a postgres health check on the socket": (
        ComposeBreak(
            ("services", "postgres", "healthcheck", "test"),
            ["CMD", "pg_isready", "--username", "lienthong"],
        ),
        lambda c, d: check_postgres(c),
    ),
    "no init script": (
        ComposeBreak(("services", "postgres", "volumes", 1), DELETE),
        lambda c, d: check_postgres(c),
    ),
    "an init script that is not there": (
        ComposeBreak(
            ("services", "postgres", "volumes", 1),
            "./deploy/missing.sql:/docker-entrypoint-initdb.d/init.sql:ro",
        ),
        lambda c, d: check_postgres(c),
    ),
    "postgres data off its volume": (
        ComposeBreak(("services", "postgres", "environment", "PGDATA"), "/srv/pgdata"),
        check_volumes,
    ),
    "an unpublished port": (
        ComposeBreak(("services", "population", "ports", 0), "127.0.0.1:50061:50051"),
        lambda c, d: check_registry(c, d, "population"),
    ),
    "a short stop grace": (
        ComposeBreak(("services", "population", "stop_grace_period"), "2s"),
        lambda c, d: check_registry(c, d, "population"),
    ),
    "the gateway calling the wrong port": (
        ComposeBreak(
            ("services", "gateway", "environment", "LIENTHONG_HEALTH_ADDRESS"), "health:50052"
        ),
        check_gateway,
    ),
    "the gateway on the host's Kafka": (
        ComposeBreak(
            ("services", "gateway", "environment", "KAFKA_BOOTSTRAP_SERVERS"), "localhost:29092"
        ),
        check_gateway,
    ),
    "a variable the gateway does not read": (
        ComposeBreak(("services", "gateway", "environment", "KAFKA_BOOTSTRAP_SERVER"), "kafka"),
        check_gateway,
    ),
    "the gateway not waiting for health": (
        ComposeBreak(
            ("services", "gateway", "depends_on", "insurance", "condition"), "service_started"
        ),
        check_gateway,
    ),
    "the gateway not waiting for a registry": (
        ComposeBreak(("services", "gateway", "depends_on", "health"), DELETE),
        check_gateway,
    ),
    "a registry serving no metrics": (
        ComposeBreak(("services", "health", "environment", "LIENTHONG_METRICS_PORT"), DELETE),
        check_metrics,
    ),
    "the gateway's metrics on another port": (
        ComposeBreak(("services", "gateway", "environment", "LIENTHONG_METRICS_PORT"), "9651"),
        check_metrics,
    ),
    "metrics on the container's loopback": (
        ComposeBreak(("services", "insurance", "environment", "LIENTHONG_METRICS_HOST"), DELETE),
        check_metrics,
    ),
    "a metrics port not published": (
        ComposeBreak(("services", "population", "ports", 1), DELETE),
        check_metrics,
    ),
    "a misspelt metrics variable": (
        ComposeBreak(("services", "gateway", "environment", "LIENTHONG_METRIC_PORT"), "9650"),
        check_gateway,
    ),
    "a service without a volume": (
        ComposeBreak(("services", "population", "volumes"), DELETE),
        check_volumes,
    ),
    "two services on one volume": (
        ComposeBreak(("services", "kafka", "volumes", 0), "postgres-data:/var/lib/kafka/data"),
        check_volumes,
    ),
    "a mount point the image does not own": (
        ComposeBreak(("services", "gateway", "volumes", 0), "pki:/srv:ro"),
        check_volumes,
    ),
    "a registry without its identity": (
        ComposeBreak(("services", "insurance", "environment", "LIENTHONG_TLS_KEY"), DELETE),
        check_trust,
    ),
    "a registry serving another's identity": (
        ComposeBreak(
            ("services", "health", "environment", "LIENTHONG_TLS_CERT"), "/pki/gateway.crt"
        ),
        check_trust,
    ),
    "a server told to run in plain text": (
        ComposeBreak(("services", "gateway", "environment", INSECURE), "1"),
        check_trust,
    ),
    "the identities' volume writable by a server": (
        ComposeBreak(("services", "population", "volumes", 0), "pki:/pki"),
        check_trust,
    ),
    "a registry started before the identities exist": (
        ComposeBreak(("services", "population", "depends_on"), DELETE),
        check_trust,
    ),
    "another Kafka version": (
        ComposeBreak(("services", "kafka", "image"), "apache/kafka:3.9.0"),
        lambda c, d: check_kafka(c),
    ),
    "an external listener not published": (
        ComposeBreak(("services", "kafka", "ports"), DELETE),
        lambda c, d: check_kafka(c),
    ),
    "internal topics with three replicas": (
        ComposeBreak(
            ("services", "kafka", "environment", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), "3"
        ),
        lambda c, d: check_kafka(c),
    ),
    "the containers' listener advertised as localhost": (
        ComposeBreak(
            ("services", "kafka", "environment", "KAFKA_ADVERTISED_LISTENERS"),
            "INTERNAL://localhost:9092,EXTERNAL://localhost:29092",
        ),
        check_gateway,
    ),
}


def _broken(compose: Compose, change: ComposeBreak) -> Compose:
    broken = copy.deepcopy(compose)
    node: Any = broken
    for key in change.path[:-1]:
        node = node[key]
    last = change.path[-1]
    if change.value is DELETE:
        del node[last]
    else:
        node[last] = change.value
    return broken


def test_the_real_files_pass_the_checks_the_breaks_use(compose: Compose, dockerfile: str) -> None:
    for _, check in COMPOSE_BREAKS.values():
        check(compose, dockerfile)


@pytest.mark.parametrize("what", sorted(COMPOSE_BREAKS))
def test_each_check_catches_a_broken_compose_file(
    compose: Compose, dockerfile: str, what: str
) -> None:
    change, check = COMPOSE_BREAKS[what]
    with pytest.raises(AssertionError):
        check(_broken(compose, change), dockerfile)


DOCKERFILE_BREAKS = {
    "one stage": ("FROM python:3.11-slim AS builder\n", ""),
    "root": ("USER 10001:10001", "USER root"),
    "no user": ("USER 10001:10001", ""),
    "buffered output": ("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"),
    "unlocked install": ("uv sync --frozen --no-dev --no-editable", "uv sync --no-dev"),
    "dev tools": ("uv sync --frozen --no-dev --no-install-project", "uv sync --frozen"),
    "another uv": ("ARG UV_VERSION=0.13.9", "ARG UV_VERSION=0.13.8"),
    "a package left behind": ("COPY brokers ./brokers\n", ""),
    "another python": ("FROM python:3.11-slim AS runtime", "FROM python:3.12-slim AS runtime"),
    "venv not on PATH": ('PATH="/opt/lienthong/venv/bin:${PATH}"', 'PATH="${PATH}"'),
    "no venv copied": ("COPY --from=builder /opt/lienthong/venv /opt/lienthong/venv\n", ""),
}


@pytest.mark.parametrize("what", sorted(DOCKERFILE_BREAKS))
def test_each_check_catches_a_broken_dockerfile(dockerfile: str, what: str) -> None:
    old, new = DOCKERFILE_BREAKS[what]
    assert old in dockerfile, f"the break {what!r} no longer applies to the Dockerfile"
    with pytest.raises(AssertionError):
        check_dockerfile(dockerfile.replace(old, new))


def test_volume_check_catches_a_mount_point_left_to_root(compose: Compose, dockerfile: str) -> None:
    old = "chown 10001:10001 /app /data /pki"
    assert old in dockerfile
    with pytest.raises(AssertionError):
        check_volumes(compose, dockerfile.replace(old, "chown 10001:10001 /app /data"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (".venv\n", ""),
        (".tools\n", ""),
        ("data\n", ""),
        ("**/*.sqlite3\n", "*.sqlite3\n"),
        ("", "uv.lock\n"),
        ("", "**/data\n"),
        ("", "**/*.csv\n"),
    ],
)
def test_each_check_catches_a_broken_dockerignore(dockerfile: str, old: str, new: str) -> None:
    text = DOCKERIGNORE.read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(AssertionError):
        check_dockerignore(text.replace(old, new, 1) if old else text + new, dockerfile)

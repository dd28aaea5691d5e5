"""The access policy's logic (common/access.py) and the bundled file's
grants, against the issue's own list written out here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.access import AccessPolicy, PolicyError

POPULATION = "lienthong.population.v1.PopulationRegistryService"
INSURANCE = "lienthong.insurance.v1.InsuranceRegistryService"
HEALTH = "lienthong.health.v1.HealthRegistryService"
GATEWAY = "lienthong.gateway.v1.GatewayService"

SMALL = """
any_identity:
  grpc.health.v1.Health: ["*"]
services:
  svc.A:
    alice: [Read]
    root: ["*"]
"""


def small() -> AccessPolicy:
    return AccessPolicy.parse(yaml.safe_load(SMALL))


def test_a_grant_allows_exactly_its_methods() -> None:
    policy = small()
    assert policy.allows("alice", "/svc.A/Read")
    assert policy.allows("alice", "svc.A/Read")
    assert not policy.allows("alice", "/svc.A/Write")


def test_a_star_allows_every_method_of_that_service_only() -> None:
    policy = small()
    assert policy.allows("root", "/svc.A/Anything")
    assert not policy.allows("root", "/svc.B/Read")


def test_default_deny_for_unknown_callers_services_and_anonymous() -> None:
    policy = small()
    assert not policy.allows("mallory", "/svc.A/Read")
    assert not policy.allows("anonymous", "/svc.A/Read")
    assert not policy.allows("alice", "/svc.Unknown/Read")


def test_any_identity_grants_reach_every_caller() -> None:
    assert small().allows("mallory", "/grpc.health.v1.Health/Check")


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("services: {svc.A: {alice: Read}}", "services.svc.A.alice"),
        ("services: {svc.A: [alice]}", "services.svc.A"),
        ("servics: {}", "servics"),
        ("any_identity: {grpc.health.v1.Health: [1]}", "any_identity.grpc.health.v1.Health"),
        ("- just a list", "mapping"),
    ],
)
def test_a_malformed_policy_is_refused_naming_where(document: str, named: str) -> None:
    with pytest.raises(PolicyError, match=named.replace(".", r"\.")):
        AccessPolicy.parse(yaml.safe_load(document))


def test_the_environment_names_another_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "policy.yaml"
    other.write_text(SMALL, encoding="utf-8")
    monkeypatch.setenv("LIENTHONG_ACCESS_POLICY", str(other))
    assert AccessPolicy.load().allows("alice", "/svc.A/Read")
    monkeypatch.setenv("LIENTHONG_ACCESS_POLICY", str(tmp_path / "missing.yaml"))
    with pytest.raises(PolicyError, match=r"missing\.yaml"):
        AccessPolicy.load()


# --- the bundled file ----------------------------------------------------------------

# What the saga's steps call (gateway/steps.py), written out.
GATEWAY_STEPS = {
    POPULATION: [
        "RegisterBirth",
        "RegisterPermanentResidence",
        "RemovePermanentResidence",
        "RegisterDeath",
        "GetCitizen",
    ],
    INSURANCE: ["IssueChildHealthInsuranceCard", "EndCoverage", "SettleFuneralAllowance"],
    HEALTH: ["VerifyBirthCertificate", "VerifyDeathNotice", "GetFacility"],
}


@pytest.fixture(scope="module")
def bundled() -> AccessPolicy:
    return AccessPolicy.load()


def test_the_gateway_may_run_its_steps_and_nothing_else(bundled: AccessPolicy) -> None:
    for service, methods in GATEWAY_STEPS.items():
        for method in methods:
            assert bundled.allows("gateway", f"/{service}/{method}"), method
    for refused in (
        f"/{POPULATION}/SeedPopulation",
        f"/{HEALTH}/IssueBirthCertificate",
        f"/{INSURANCE}/CheckCoverage",
        f"/{GATEWAY}/SubmitBirthDeclaration",
    ):
        assert not bundled.allows("gateway", refused), refused


def test_the_hospital_may_only_look_coverage_up(bundled: AccessPolicy) -> None:
    assert bundled.allows("hospital", f"/{INSURANCE}/CheckCoverage")
    for service, methods in GATEWAY_STEPS.items():
        for method in methods:
            assert not bundled.allows("hospital", f"/{service}/{method}"), method
    assert not bundled.allows("hospital", f"/{INSURANCE}/GetParticipant")


def test_the_cli_seeds_reads_and_uses_the_gateway_api(bundled: AccessPolicy) -> None:
    for method in (
        f"/{POPULATION}/SeedPopulation",
        f"/{HEALTH}/SeedHospitalRecords",
        f"/{INSURANCE}/SeedParticipants",
        f"/{POPULATION}/GetCitizen",
        f"/{POPULATION}/GetHousehold",
        f"/{INSURANCE}/GetParticipant",
        f"/{GATEWAY}/SubmitBirthDeclaration",
        f"/{GATEWAY}/SubmitDeathDeclaration",
        f"/{GATEWAY}/GetDossier",
        f"/{GATEWAY}/WatchDossier",
        f"/{GATEWAY}/SupplementDossier",
    ):
        assert bundled.allows("lienthong-cli", method), method
    for method in (f"/{POPULATION}/RegisterBirth", f"/{INSURANCE}/EndCoverage"):
        assert not bundled.allows("lienthong-cli", method), method


def test_conformance_may_call_everything_and_anyone_may_probe(bundled: AccessPolicy) -> None:
    for service in (POPULATION, INSURANCE, HEALTH, GATEWAY):
        assert bundled.allows("conformance", f"/{service}/AnyMethod")
    for caller in ("hospital", "gateway", "someone-new"):
        assert bundled.allows(caller, "/grpc.health.v1.Health/Check")
        assert bundled.allows(
            caller, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
    assert not bundled.allows("someone-new", f"/{POPULATION}/GetCitizen")

"""JUnit XML, the form CI servers read: one testsuite per contract, one
testcase per rule, a failing rule's evidence as its failure message."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from conformance.runner import Verdict


def to_xml(contract: str, target: str, verdicts: Sequence[Verdict]) -> ET.ElementTree:
    failures = sum(not v.passed for v in verdicts)
    total = sum(v.seconds for v in verdicts)
    suites = ET.Element(
        "testsuites", tests=str(len(verdicts)), failures=str(failures), time=f"{total:.3f}"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"lienthong.conform.{contract}",
        tests=str(len(verdicts)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="target", value=target)
    for verdict in verdicts:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=verdict.rule.name.rsplit(".", 1)[0],
            name=verdict.rule.name,
            time=f"{verdict.seconds:.3f}",
        )
        if verdict.passed:
            ET.SubElement(case, "system-out").text = verdict.evidence
        else:
            failure = ET.SubElement(case, "failure", message=verdict.evidence)
            failure.text = f"{verdict.rule.description}\n{verdict.evidence}"
    return ET.ElementTree(suites)


def write(path: Path, contract: str, target: str, verdicts: Sequence[Verdict]) -> None:
    tree = to_xml(contract, target, verdicts)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)

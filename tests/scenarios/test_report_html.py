"""report.html: one well-formed page that needs nothing from outside, saying the
verdict and the figures of a report typed in by hand, with everything from
files escaped."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from scenarios.report import write_report
from scenarios.report_html import render_html
from tests.scenarios.report_samples import hand_report
from tests.scenarios.test_report import sample_run

# Elements that never have an end tag in HTML.
VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "source", "wbr"})
EXTERNAL = re.compile(
    r"""(src|href)\s*=\s*["']?\s*(https?:)?//|@import|url\(\s*["']?(https?:)?//"""
)
SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'>"
    "<rect width='10' height='10'/></svg>"
)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag:
                    found.append(child)
                found += child.all(tag)
        return found

    def by_id(self, ident: str) -> Node:
        for node in [self, *self.all_nodes()]:
            if node.attrs.get("id") == ident:
                return node
        raise AssertionError(f"no element with id {ident}")

    def all_nodes(self) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                found += [child, *child.all_nodes()]
        return found


class StrictTree(HTMLParser):
    """A tree of the page that refuses anything not well formed: every element
    closed, in order (void elements and <x/> aside), one doctype, nothing left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.doctypes: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctypes.append(decl)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"</{tag}>"
        open_tag = self.stack[-1].tag
        assert tag == open_tag, f"</{tag}> closes <{open_tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    tree = StrictTree()
    tree.feed(page)
    tree.close()
    assert [n.tag for n in tree.stack] == ["#document"], "left open"
    assert [d.lower() for d in tree.doctypes] == ["doctype html"]
    return tree.root


def words(node: Node) -> str:
    return " ".join(node.text().split())


def row_of(table_owner: Node, first: str) -> list[str]:
    for row in table_owner.all("tr"):
        cells = [words(c) for c in row.children if isinstance(c, Node)]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r}")


def test_a_clean_report_says_so_with_its_figures() -> None:
    page = render_html(hand_report(), {"throughput": SVG, "latency_over_time": SVG})
    root = parse(page)
    assert (
        words(root.all("title")[0])
        == "Replay report: smoke, 2026-11-30 07:10:00 UTC, commit 985062f"
    )
    assert words(root.all("h1")[0]) == "Replay report: smoke"
    assert "24.5 s of wall time; 3.18 dossiers ended per second" in words(root)
    verdict = root.by_id("verdict")
    assert verdict.attrs["class"] == "verdict ok"
    items = [words(li) for li in verdict.all("li")]
    assert items == [
        "lost 0 OK: no dossier lost",
        "duplicated 0 OK: no effect made twice",
        "unexpected 0 OK: every dossier ended as planned",
        "concurrent 0 OK: no step run by two gateways at once",
    ]
    outcomes = root.by_id("outcomes")
    assert row_of(outcomes, "completed") == ["completed", "60"]
    assert row_of(outcomes, "rejected") == ["rejected", "9"]
    assert row_of(root.by_id("faults"), "missing_fields") == ["missing_fields", "6", "6"]
    procedures = root.by_id("procedures")
    assert row_of(procedures, "health_insurance_card") == [
        "health_insurance_card",
        "37",
        "3",
        "0",
        "0",
        "0",
    ]
    assert row_of(procedures, "health_insurance_card by insurance: CHILD_TOO_OLD")[1] == "3"
    latency = root.by_id("latency")
    assert row_of(latency, "end to end") == ["end to end", "78", "83.2", "110", "132", "140"]
    assert row_of(latency, "register_birth") == [
        "register_birth",
        "43",
        "6.50",
        "11.0",
        "15.2",
        "16.0",
    ]
    assert row_of(latency, "inside") == ["inside", "12", "2,950", "3,100", "3,150", "3,160"]
    assert row_of(latency, "outside")[2] == "80.5"
    chaos = root.by_id("chaos")
    assert "2 gateway process(es)" in words(chaos)
    assert row_of(chaos, "steps run more than once") == ["steps run more than once", "4"]
    assert row_of(chaos, "agency_kill insurance") == [
        "agency_kill insurance",
        "5.0 s",
        "8.1 s",
        "8.7 s",
        "8.7 s",
        "2.0 s",
    ]
    assert row_of(chaos, "gateway_kill gateway-2")[-1] == "never"
    assert row_of(root.by_id("memory"), "gateway") == ["gateway", "81.5", "84.0", "86.2", "2.50"]
    scenario = words(root.by_id("scenario"))
    assert "outage: insurance down from 5 s for 3 s" in scenario
    assert "added latency: health +150 ms from 8 s for 4 s" in scenario
    # Each table's headers are headers, for a screen reader to announce.
    assert all(table.all("th") for table in root.all("table"))


def test_every_plot_has_a_text_alternative_and_a_caption() -> None:
    root = parse(render_html(hand_report(), {"throughput": SVG, "latency_over_time": SVG}))
    figures = root.by_id("plots").all("figure")
    assert len(figures) == 3
    drawn = [figure.all("svg")[0] for figure in figures[:2]]
    assert all(svg.attrs["role"] == "img" for svg in drawn)
    assert drawn[0].attrs["aria-label"] == (
        "Throughput over 24 s: on average 3.18 dossiers ended per second."
    )
    assert "p50 83.2 ms, p99 132 ms" in drawn[1].attrs["aria-label"]
    assert all(words(figure.all("figcaption")[0]) for figure in figures)
    # A plot that was not drawn is named, not silently left out.
    assert figures[2].all("svg") == []
    assert "latency_per_step.png" in words(figures[2])


def test_a_report_with_losses_says_what_went_wrong() -> None:
    report = hand_report(
        lost=2,
        duplicated_effects=1,
        unexpected_outcomes={"COMPLETED -> REJECTED (population)": 3},
        audit_not_checked=["cards, through the contract"],
    )
    root = parse(render_html(report, {}))
    verdict = root.by_id("verdict")
    assert verdict.attrs["class"] == "verdict bad"
    assert words(verdict.all("h2")[0]) == "Warning: something went wrong"
    items = [words(li) for li in verdict.all("li")]
    assert items[0] == "lost 2 PROBLEM: dossiers accepted, then never heard of again"
    assert items[1].startswith("duplicated 1 PROBLEM")
    assert items[2] == "unexpected 3 PROBLEM: dossiers that ended otherwise than planned"
    assert "Not checked: cards, through the contract." in words(verdict)
    assert row_of(root.by_id("unexpected"), "COMPLETED -> REJECTED (population)")[1] == "3"


def test_without_chaos_or_memory_those_sections_are_left_out() -> None:
    report = hand_report(chaos=None, memory_mb={}, faults={}, procedures={}, refusals={}, plots=[])
    report["scenario_detail"]["description"] = None
    root = parse(render_html(report, {}))
    ids = {node.attrs.get("id") for node in root.all("section")}
    assert ids == {"verdict", "scenario", "outcomes", "latency"}
    # No step executions measured: the verdict does not claim them.
    assert [words(li).split()[0] for li in root.by_id("verdict").all("li")] == [
        "lost",
        "duplicated",
        "unexpected",
    ]


def test_what_comes_from_files_is_escaped() -> None:
    hostile = "<script>alert('x')</script> & <b>"
    report = hand_report(scenario=hostile, commit='"><img src=x onerror=alert(1)>')
    report["scenario_detail"]["description"] = hostile
    report["chaos"]["faults"][0]["error"] = "<i>refused</i>"
    report["latency_ms"]["steps"] = {hostile: report["latency_ms"]["steps"]["register_birth"]}
    report["memory_mb"] = {hostile: report["memory_mb"]["gateway"]}
    page = render_html(report, {})
    root = parse(page)
    assert root.all("script") == [] and root.all("b") == [] and root.all("img") == []
    assert root.all("i") == []
    assert words(root.all("h1")[0]) == "Replay report: <script>alert('x')</script> & <b>"
    assert row_of(root.by_id("latency"), "<script>alert('x')</script> & <b>")[1] == "43"
    assert "agency_kill insurance (<i>refused</i>)" in words(root.by_id("chaos"))
    assert "&lt;script&gt;" in page


def test_the_written_page_holds_the_real_plots_and_nothing_from_outside(tmp_path: Path) -> None:
    scenario, counts, recorder = sample_run()
    scenario = dataclasses.replace(scenario, name="<script>x</script>")
    paths = write_report(
        tmp_path,
        scenario=scenario,
        counts=counts,
        recorder=recorder,
        started_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        wall_seconds=22.5,
    )
    assert paths.html == tmp_path / "report.html"
    page = paths.html.read_text(encoding="utf-8")
    root = parse(page)
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page)
    assert root.all("script") == [] and root.all("link") == [] and root.all("img") == []
    # The plots' own text (titles naming the scenario) escaped by matplotlib.
    svgs = root.by_id("plots").all("svg")
    assert len(svgs) == 3
    assert all(svg.all("path") for svg in svgs), "each plot draws something"
    assert "<script>x</script>: throughput" in [words(t) for t in svgs[0].all("text")]
    assert words(root.by_id("verdict").all("li")[0]) == "lost 0 OK: no dossier lost"
    assert row_of(root.by_id("outcomes"), "completed") == ["completed", "78"]
    # The SVGs' ids (clip paths, markers) are unique in the page.
    ids = [node.attrs["id"] for node in root.all_nodes() if "id" in node.attrs]
    assert len(ids) == len(set(ids))
    # ...and every reference to one (a clip path, a marker) finds it.
    references = re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', page)
    assert references
    assert {a or b for a, b in references} <= set(ids)


def test_the_external_reference_check_bites() -> None:
    for reference in (
        '<script src="https://cdn.example.org/x.js"></script>',
        "<link href='http://fonts.example.org/a.css'>",
        "<style>@import 'x.css';</style>",
        "<style>body { background: url(https://x.example.org/a.png) }</style>",
        '<img src="//cdn.example.org/a.png">',
    ):
        assert EXTERNAL.search(reference), reference

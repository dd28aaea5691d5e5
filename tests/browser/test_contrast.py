"""The console's colours meet WCAG 2.x AA: 4.5:1 for text, 3:1 for lines and
the focus ring. The colours are read from console.css's custom properties;
the ratio is WCAG's formula, written out here (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "cli" / "web" / "static" / "console.css"
TEXT = 4.5
NON_TEXT = 3.0

# (foreground, background, minimum): every pairing the stylesheet uses.
PAIRS = [
    ("ink", "paper", TEXT),
    ("muted", "paper", TEXT),
    ("ink", "panel", TEXT),
    ("muted", "panel", TEXT),
    ("paper", "accent", TEXT),  # the primary buttons
    ("accent", "paper", TEXT),  # the secondary buttons
    ("accent", "panel", TEXT),
    *((state, "paper", TEXT) for state in ("up", "down", "slow", "external")),
    *((state, "panel", TEXT) for state in ("up", "down", "slow", "external")),
    *((state, "lit", TEXT) for state in ("ink", "up", "down", "slow", "external")),
    ("up", "good-bg", TEXT),
    ("down", "bad-bg", TEXT),
    ("ink", "bad-bg", TEXT),
    ("focus", "paper", NON_TEXT),
    ("rule", "paper", NON_TEXT),
    ("rule", "panel", NON_TEXT),
]


def colours() -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text(encoding="utf-8")))


def luminance(colour: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def ratio(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_formula_gives_wcags_own_figures() -> None:
    assert ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("foreground", "background", "minimum"), PAIRS)
def test_each_pairing_meets_aa(foreground: str, background: str, minimum: float) -> None:
    palette = colours()
    found = ratio(palette[foreground], palette[background])
    assert found >= minimum, f"{foreground} on {background}: {found:.2f}:1"

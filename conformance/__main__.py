"""python -m conformance: print RULES.md (the documented list of rules)."""

from __future__ import annotations

import sys

from conformance.contracts import rules_markdown

if __name__ == "__main__":
    sys.stdout.write(rules_markdown())

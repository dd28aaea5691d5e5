"""Which Chromium the browser tests drive: Debian's package, never a browser
Playwright downloads (`playwright install` is not part of the setup).

Without one those tests are skipped, saying why, unless CI is set: CI must not
pass by skipping them (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.machine import found_or_skip

# Where Debian's `chromium` package puts its launcher.
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
ENVIRONMENT_VARIABLE = "LIENTHONG_CHROMIUM"


class ChromiumNotFound(Exception):
    """No Chromium to drive; the message says what was looked at and what to do."""


def find_chromium(
    environ: Mapping[str, str] = os.environ,
    debian: Path = DEBIAN_CHROMIUM,
    which: Callable[[str], str | None] = shutil.which,
) -> Path:
    """$LIENTHONG_CHROMIUM, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    chosen = environ.get(ENVIRONMENT_VARIABLE)
    if chosen:
        # Named on purpose: a wrong name is an error, not a cue to use another browser.
        if not os.access(chosen, os.X_OK):
            raise ChromiumNotFound(f"{ENVIRONMENT_VARIABLE}={chosen} is not an executable file")
        return Path(chosen)
    if os.access(debian, os.X_OK):
        return debian
    on_path = which("chromium")
    if on_path:
        return Path(on_path)
    raise ChromiumNotFound(
        f"no Chromium: {ENVIRONMENT_VARIABLE} is unset, {debian} is missing and no `chromium`"
        " is on PATH; apt-get install chromium (or set LIENTHONG_CHROMIUM)"
    )


def chromium_or_skip(find: Callable[[], Path] = find_chromium) -> Path:
    return found_or_skip(find, ChromiumNotFound, "Chromium")

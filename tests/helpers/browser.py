"""Debian's headless Chromium, run on a local file with no network, its DOM read after scripts ran."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def dump_dom(page: Path, profile: Path, timeout_s: float = 90) -> str:
    """The page's DOM after load (and after its own scripts changed it)."""
    exe = shutil.which("chromium") or CHROMIUM
    assert Path(exe).exists(), "chromium is missing: `make setup` (scripts/bootstrap.sh) installs it"
    done = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,2400", "--virtual-time-budget=5000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout

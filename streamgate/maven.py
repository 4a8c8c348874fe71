"""Java artifacts from Maven Central, resolved once per pom and cached (Kafka broker, delta-spark)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path


class MavenError(RuntimeError):
    pass


def maven_classpath(pom: Path, name: str, cache_dir: Path, *, force: bool = False) -> str:
    """The runtime classpath of `pom` (its jars downloaded to ~/.m2), cached under `cache_dir`."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    cached = cache_dir / f"{name}-classpath-{digest}.txt"
    if cached.exists() and not force:
        classpath = cached.read_text().strip()
        if all(Path(p).exists() for p in classpath.split(os.pathsep)):
            return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError(f"Maven is required to fetch the {name} jars: apt-get install maven")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
                          f"-Dmdep.outputFile={cached}"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not cached.exists():
        log = f"{out.stdout[-3000:]}{out.stderr[-2000:]}"
        raise MavenError(f"Maven could not resolve the {name} jars:\n{log}")
    return cached.read_text().strip()

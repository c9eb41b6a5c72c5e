"""Java and Maven: checked up front, jars resolved from Maven Central once and cached."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from stack.processes import StackError

MIN_JAVA = 17


def require_java() -> str:
    """Path of ``java`` (17+), or a one-sentence StackError on what to install."""
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java was not found on PATH: install a Java 17+ runtime "
            "(e.g. `apt-get install openjdk-17-jre-headless`) and try again."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0" style
            major = int(match.group(2))
        if major < MIN_JAVA:
            raise StackError(
                f"Java {major} was found at {java}, but the local stack needs Java "
                f"{MIN_JAVA}+: install a newer JDK/JRE and put it first on PATH."
            )
    return java


def require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (`mvn`) was not found on PATH: install it (e.g. `apt-get install maven`); "
            "it fetches the Kafka and Hazelcast jars from Maven Central once."
        )
    return mvn


def pom_path(name: str) -> Path:
    return Path(str(resources.files("stack") / "poms" / f"{name}.xml"))


def resolve_jars(name: str, lib_root: Path) -> Path:
    """Copy the jars that ``poms/<name>.xml`` needs into ``lib_root/<name>`` and return it.

    Cached: a marker holds the pom's hash, so a second start runs no Maven at all. Maven itself
    caches in ~/.m2, so after ``stack down --purge`` the copy is tried offline first.
    """
    pom = pom_path(name)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = lib_root / name
    marker = target / ".resolved"
    if marker.exists() and marker.read_text().strip() == digest:
        return target
    mvn = require_maven()
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    base = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={target}"]
    offline = subprocess.run([*base, "-o"], capture_output=True, text=True)
    if offline.returncode != 0:
        online = subprocess.run(base, capture_output=True, text=True)
        if online.returncode != 0:
            tail = "\n".join((online.stdout + online.stderr).splitlines()[-15:])
            raise StackError(f"Maven could not resolve the {name} jars:\n{tail}")
    if not any(target.glob("*.jar")):
        raise StackError(f"Maven resolved no jars for {name} into {target}")
    marker.write_text(digest + "\n")
    return target

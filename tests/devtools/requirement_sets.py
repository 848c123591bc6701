"""The three pinned dependency sets: each a `requirements*.in` of direct pins and the `.txt` uv compiles
from it (`make lock`), read without a resolver or the network."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# `name[extra,...]==version`, then an optional comment.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)$")


def canonical(name: str) -> str:
    """The distribution name as package indexes compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class RequirementSet:
    name: str
    stem: str  # requirements-dashboard -> requirements-dashboard.in / requirements-dashboard.txt

    @property
    def source(self) -> Path:
        return PROJECT_ROOT / f"{self.stem}.in"

    @property
    def lock(self) -> Path:
        return PROJECT_ROOT / f"{self.stem}.txt"

    def lines(self) -> list[str]:
        """The .in file's lines without comments and blank lines."""
        stripped = (line.partition("#")[0].strip() for line in self.source.read_text().splitlines())
        return [line for line in stripped if line]

    def constraints(self) -> list[str]:
        """The files the .in constrains itself to (`-c FILE`), in order."""
        return [line.split(None, 1)[1] for line in self.lines() if line.startswith("-c ")]

    def direct_pins(self) -> dict[str, str]:
        """Canonical name -> version of every direct requirement; a requirement without `==` is an error."""
        pins = {}
        for line in self.lines():
            if line.startswith("-"):
                continue
            match = PIN.match(line)
            assert match, f"{self.source.name}: {line!r} is not pinned with =="
            pins[canonical(match["name"])] = match["version"]
        return pins

    def locked(self) -> dict[str, str]:
        """Canonical name -> version of every package in the compiled .txt."""
        found = {}
        for line in self.lock.read_text().splitlines():
            if line.startswith((" ", "#")) or not line.strip():
                continue  # uv's `# via` annotations
            match = PIN.match(line.strip())
            assert match, f"{self.lock.name}: {line!r} is not an exact pin"
            found[canonical(match["name"])] = match["version"]
        return found


RUNTIME = RequirementSet("runtime", "requirements")
DASHBOARD = RequirementSet("dashboard", "requirements-dashboard")
DEV = RequirementSet("dev", "requirements-dev")
SETS = (RUNTIME, DASHBOARD, DEV)

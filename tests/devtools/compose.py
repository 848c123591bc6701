"""Read docker-compose.yaml, .env.example and the Dockerfile the way Docker would, without a Docker engine."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; "$$" is a literal "$".
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(ValueError):
    pass


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def variables_used(text: str) -> dict[str, list[tuple[str | None, str | None]]]:
    """Every variable compose interpolates, with the operator and argument of each use."""
    uses: dict[str, list[tuple[str | None, str | None]]] = {}
    for match in VARIABLE.finditer(text):
        if match.group(0) == "$$":
            continue
        uses.setdefault(match["name"], []).append((match["op"], match["arg"]))
    return uses


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution over a loaded YAML value."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        unset_or_empty = not current
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else current is None) else current
        if op in (":?", "?") and (unset_or_empty if op == ":?" else current is None):
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return VARIABLE.sub(substitute, value)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines, '#' comments, optional single or double quotes around the value."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def command_argv(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
            pending = ""
    return instructions


@dataclass(frozen=True)
class Stage:
    """One build stage of the Dockerfile: `FROM base AS name` and the instructions after it."""

    name: str
    base: str
    instructions: tuple[tuple[str, str], ...]

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """The build stages by name, in the Dockerfile's order (the last one is what a plain build gives)."""
    stages: list[tuple[str, str, list]] = []
    for keyword, arguments in dockerfile_instructions(path):
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            assert name, f"the Dockerfile's FROM {arguments} names no stage (FROM image AS name)"
            stages.append((name.strip(), base.strip(), []))
        else:
            assert stages, f"{keyword} before the Dockerfile's first FROM"
            stages[-1][2].append((keyword, arguments))
    return {name: Stage(name, base, tuple(body)) for name, base, body in stages}

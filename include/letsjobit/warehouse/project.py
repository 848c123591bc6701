"""The dbt project in ``sql/`` as plain data: its models, their layers, keys and documented columns.

Read from the project's yml files with PyYAML, without dbt, so that the dashboard (whose image has no
dbt) and the tests can name a model's columns. dbt itself checks that the yml matches the SQL: the
marts' contracts are enforced, so a column documented here is a column of the warehouse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from letsjobit import config

LAYERS = ("staging", "intermediate", "marts")
PROJECT_DIR = config.SQL_DIR
# What dbt writes inside a project it runs in; never part of the project itself.
_GENERATED = ("target", "logs", "dbt_packages")


@dataclass(frozen=True)
class ModelDoc:
    """One model as its yml documents it."""

    name: str
    layer: str
    description: str
    columns: dict[str, str]  # column -> description, in the documented order
    key: tuple[str, ...]  # from its unique / unique_key test
    contract: bool  # dbt enforces the column names and types

    @property
    def relation(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def path(self) -> Path:
        return PROJECT_DIR / "models" / self.layer / f"{self.name}.sql"


def _key(entry: dict[str, Any]) -> tuple[str, ...]:
    """From the unique / unique_key test, else ``meta.key``: a staging model's key is tested where it
    is materialised, and an intermediate table's holds by construction (a union, a group by, the
    latest version per visit) and is checked by the tests of the marts it feeds."""
    if (entry.get("meta") or {}).get("key"):
        return tuple(entry["meta"]["key"])
    for test in entry.get("data_tests") or ():
        if isinstance(test, dict) and "unique_key" in test:
            return tuple(test["unique_key"]["arguments"]["columns"])
    return tuple(
        column["name"]
        for column in entry.get("columns") or ()
        if "unique" in (column.get("data_tests") or ())
    )


@cache
def models(project_dir: Path = PROJECT_DIR) -> dict[str, ModelDoc]:
    """Every documented model by name, staging first, then intermediate, then marts."""
    found: dict[str, ModelDoc] = {}
    for layer in LAYERS:
        for path in sorted((project_dir / "models" / layer).glob("*.yml")):
            for entry in yaml.safe_load(path.read_text()).get("models") or ():
                found[entry["name"]] = ModelDoc(
                    name=entry["name"],
                    layer=layer,
                    description=entry.get("description", ""),
                    columns={
                        column["name"]: column.get("description", "") for column in entry.get("columns") or ()
                    },
                    key=_key(entry),
                    contract=bool(((entry.get("config") or {}).get("contract") or {}).get("enforced")),
                )
    return found


def model(name: str) -> ModelDoc:
    return models()[name]


def analyses(project_dir: Path = PROJECT_DIR) -> list[Path]:
    return sorted((project_dir / "analyses").glob("*.sql"))


def digest(project_dir: Path = PROJECT_DIR, *salt: str) -> str:
    """Digest of every file of the project (what dbt generates excluded): a change forces a full build."""
    hashed = hashlib.sha256("\n".join(salt).encode())
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        if path.is_file() and relative.parts[0] not in _GENERATED:
            hashed.update(str(relative).encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()[:16]

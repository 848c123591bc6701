"""The SQL models in ``sql/``: read them, order them, document them.

A model is one ``.sql`` file named as the relation it builds (``sql/marts/fct_visits.sql`` builds
``marts.fct_visits``). Its leading comment block is its contract, read by the runner and by the
data dictionary::

    -- fct_visits: one line saying what the relation is.
    --
    -- grain: one row per visit
    -- key: visit_id
    -- key_nullable: ...                  (optional: key columns that may be null, e.g. an unknown date)
    -- materialized: incremental          (view | table | incremental)
    -- replace_where: visit_id in (...)   (incremental only: the rows an incremental build replaces)
    --
    -- Free text: the description.
    --
    -- columns:
    --   visit_id: what the column means.
    --   visit_date:                       (empty: the description of the same column upstream)

The body is plain DuckDB SQL. Models refer to each other by ``schema.name``; that is how the
dependencies are found (``marts.nps(...)``, a call, is a macro of ``sql/macros/``, not a relation).
``{{ source('visits') }}`` stands for a lake table and is the only template.
This module knows nothing about DuckDB connections; ``warehouse`` runs what it returns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

LAYERS = ("staging", "intermediate", "marts")
MATERIALIZATIONS = ("view", "table", "incremental")

# Relations the runner creates before the models run (build parameters and state), documented here
# because no SQL file defines them.
BUILD_RELATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "build.parameters": (
        "One row: what this build was asked to do (read by marts.build_info).",
        {
            "built_at": "when the build started (UTC).",
            "run_id": "the pipeline run that built the warehouse.",
            "build_mode": "full or incremental.",
            "changed_partitions": "number of visit_date partitions this build read.",
            "validation_verdict": "the validation gate's verdict, when passed in.",
            "validation_report": "path of the validation report, when passed in.",
            "models_digest": "digest of the SQL models.",
            "builds_since_full": "incremental builds since the last full build.",
        },
    ),
    "build.changed_partitions": (
        "The visit_date partitions this build reads from the lake: every partition on a full build.",
        {"visit_date": "a partition date."},
    ),
    "build.previous_visits": (
        "The visits the previous build showed from the changed partitions (empty on a full build).",
        {"visit_id": "the visit.", "visit_date": "the partition its shown version came from."},
    ),
    "build.lake_partitions": (
        "A fingerprint of every lake partition as this build saw it; the next incremental build also "
        "reloads any partition whose fingerprint changed, so a build that failed is caught up.",
        {
            "table_name": "lake table: visits, visit_lines or line_extra_data.",
            "visit_date": "the partition date.",
            "fingerprint": "digest of the partition's file names, sizes and modification times.",
        },
    ),
}

_SOURCE = re.compile(r"\{\{\s*source\(\s*'([a-z_]+)'\s*\)\s*\}\}")
_REFERENCE = re.compile(r"\b(staging|intermediate|marts|build)\.([a-z][a-z0-9_]*)\b(?!\s*\()")
_SETTING = re.compile(r"^([a-z_]+):\s*(.*)$")
_COLUMN = re.compile(r"^  ([a-z][a-z0-9_]*):\s*(.*)$")


class ModelError(ValueError):
    """A model file breaks the conventions above; the message names the file."""


@dataclass(frozen=True)
class Model:
    """One SQL model file and its header."""

    name: str
    layer: str
    path: Path
    summary: str
    description: str
    grain: str
    key: tuple[str, ...]
    key_nullable: tuple[str, ...]
    materialized: str
    replace_where: str | None
    columns: dict[str, str]
    sql: str
    references: tuple[str, ...] = field(default=())  # relations used, in order of first use

    @property
    def relation(self) -> str:
        return f"{self.layer}.{self.name}"

    def render(self, source_sql: dict[str, str]) -> str:
        """The model's SQL with each ``{{ source('x') }}`` replaced by ``source_sql[x]``."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in source_sql:
                raise ModelError(f"{self.path}: unknown source {name!r}")
            return source_sql[name]

        return _SOURCE.sub(replace, self.sql)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def parse_model(path: Path, layer: str) -> Model:
    """Read one model file; raises ModelError naming the file when its header is incomplete."""
    text = path.read_text()
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line[3:] if line.startswith("-- ") else line[2:])
    if not header or ":" not in header[0]:
        raise ModelError(f"{path}: the first line must be '-- <name>: <summary>'")
    name, summary = (part.strip() for part in header[0].split(":", 1))
    if name != path.stem:
        raise ModelError(f"{path}: header names {name!r}, file is {path.stem!r}")

    settings: dict[str, str] = {}
    columns: dict[str, str] = {}
    description: list[str] = []
    in_columns = False
    last_column = None
    for line in header[1:]:
        if in_columns:
            column = _COLUMN.match(line)
            if column:
                last_column = column.group(1)
                if last_column in columns:
                    raise ModelError(f"{path}: column {last_column!r} documented twice")
                columns[last_column] = column.group(2).strip()
            elif line.startswith("    ") and last_column:
                columns[last_column] = f"{columns[last_column]} {line.strip()}".strip()
            elif line.strip():
                raise ModelError(f"{path}: unexpected header line in columns: {line!r}")
            continue
        if line.strip() == "columns:":
            in_columns = True
            continue
        setting = _SETTING.match(line)
        if setting and setting.group(1) in ("grain", "key", "key_nullable", "materialized", "replace_where"):
            settings[setting.group(1)] = setting.group(2).strip()
        else:
            description.append(line)

    for required in ("grain", "key", "materialized"):
        if not settings.get(required):
            raise ModelError(f"{path}: header lacks '-- {required}: ...'")
    materialized = settings["materialized"]
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{path}: materialized {materialized!r} is not one of {MATERIALIZATIONS}")
    if (materialized == "incremental") != bool(settings.get("replace_where")):
        raise ModelError(f"{path}: an incremental model, and only one, declares replace_where")
    if not columns:
        raise ModelError(f"{path}: header lists no columns")
    key = tuple(part.strip() for part in settings["key"].split(","))
    missing = [column for column in key if column not in columns]
    if missing:
        raise ModelError(f"{path}: key columns {missing} are not among the documented columns")
    key_nullable = tuple(part.strip() for part in settings.get("key_nullable", "").split(",") if part.strip())
    if not set(key_nullable) <= set(key):
        raise ModelError(f"{path}: key_nullable {list(key_nullable)} are not all key columns")

    body = _strip_comments(text)
    references: list[str] = []
    for schema_name, relation in _REFERENCE.findall(body + " " + settings.get("replace_where", "")):
        reference = f"{schema_name}.{relation}"
        if reference not in references:
            references.append(reference)
    return Model(
        name=name,
        layer=layer,
        path=path,
        summary=summary,
        description="\n".join(description).strip(),
        grain=settings["grain"],
        key=key,
        key_nullable=key_nullable,
        materialized=materialized,
        replace_where=settings.get("replace_where"),
        columns=columns,
        sql=text,
        references=tuple(references),
    )


def load_models(sql_dir: Path) -> list[Model]:
    """Every model under ``sql_dir``, in an order that builds each after what it reads."""
    models: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((sql_dir / layer).glob("*.sql")):
            model = parse_model(path, layer)
            if model.name in {known.name for known in models.values()}:
                raise ModelError(f"{path}: another layer already has a model named {model.name!r}")
            models[model.relation] = model

    graph: dict[str, set[str]] = {}
    for relation, model in models.items():
        upstream = set()
        for reference in model.references:
            if reference == relation:
                raise ModelError(f"{model.path}: a model cannot read itself")
            if reference in models:
                upstream.add(reference)
            elif reference not in BUILD_RELATIONS:
                raise ModelError(f"{model.path}: refers to {reference}, which no model builds")
        graph[relation] = upstream

    rank = {layer: position for position, layer in enumerate(LAYERS)}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as error:
        raise ModelError(f"models depend on each other in a cycle: {error.args[1]}") from error
    # Always take the first ready model by (layer, name): staging, then intermediate, then marts.
    ordered: list[Model] = []
    ready: list[str] = []
    while sorter.is_active():
        ready.extend(sorter.get_ready())
        ready.sort(key=lambda relation: (rank[models[relation].layer], relation))
        relation = ready.pop(0)
        ordered.append(models[relation])
        sorter.done(relation)
    return ordered


def load_macros(sql_dir: Path) -> list[Path]:
    return sorted((sql_dir / "macros").glob("*.sql"))


def load_analyses(sql_dir: Path) -> list[Path]:
    return sorted((sql_dir / "analyses").glob("*.sql"))


def models_digest(sql_dir: Path, runner_version: int) -> str:
    """Digest of every macro and model: an incremental build needs the same SQL as the last build."""
    digest = hashlib.sha256(f"runner-{runner_version}".encode())
    for path in load_macros(sql_dir) + [
        p for layer in LAYERS for p in sorted((sql_dir / layer).glob("*.sql"))
    ]:
        digest.update(str(path.relative_to(sql_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def column_docs(model: Model, models: list[Model]) -> dict[str, str]:
    """The model's column descriptions; an empty one is taken from the first model it reads that has
    a column of that name (following empty descriptions upstream)."""
    by_relation = {m.relation: m for m in models}

    def describe(column: str, current: Model) -> str:
        if current.columns.get(column):
            return current.columns[column]
        for reference in current.references:
            upstream = by_relation.get(reference)
            if upstream is not None and column in upstream.columns:
                return describe(column, upstream)
        return ""

    return {column: describe(column, model) for column in model.columns}
